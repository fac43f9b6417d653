"""What the daemon's log says about its device, with a real emulator and daemon (issue 13: device
lost/found and the work the owner does by itself are logged at their levels, not only the access
lines). The emulator is killed and started again under the running daemon; a Z closes the day and
is archived (issue 10). Each line is looked for as the operator reads it on stderr."""

import json
import re
import time

import pytest

from tests.daemonkit import Stack, sample

pytestmark = pytest.mark.slow


def _log(path):
    with open(path, encoding="utf-8") as fh:
        return fh.read()


def test_the_log_tells_the_devices_story(tmp_path):
    stack = Stack(tmp_path)
    err = tmp_path / "daemon.log"
    try:
        with open(err, "wb") as fh:
            stack.start_daemon(stderr=fh)
        status, sealed = stack.pos.seal(sample(cashier_id="log-1"), key="log-1")
        assert status == 200, sealed
        device = sealed["payload"]["fiscal_authority_id"]
        stack.restart_emulator()                                   # the same flash, a new process and pty
        deadline = time.monotonic() + 60
        while True:                                                # the first seal after it may see the loss
            status, answer = stack.pos.seal(sample(cashier_id="log-2"), key="log-2")
            if status == 200 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert status == 200 and answer["payload"]["counter"] == 2, answer
        status, data = stack.pos.post("/api/v1/reports", json.dumps({"type": "Z"}).encode(), timeout=60)
        assert status == 201, data
        deadline = time.monotonic() + 30
        while "archived records" not in _log(err) and time.monotonic() < deadline:
            time.sleep(0.1)
        stack.stop_daemon()
        text = _log(err)
        levels = r"\S+ (INFO|WARNING) +"
        assert re.search(levels + r"fiscal\.owner: device %s connected on \S+: counter 0" % device, text), text
        assert re.search(r"WARNING +fiscal\.device: device %s lost: device link lost" % device, text), text
        assert re.search(r"INFO +fiscal\.device: device %s found \(counter 1\)" % device, text), text
        assert re.search(r"INFO +fiscal\.owner: closed Z \d{4}-\d\d-\d\d at record \d+", text), text
        assert re.search(r"INFO +fiscal\.owner: archived records 1\.\.\d+; the device checkpointed", text), text
        assert "Traceback" not in text
    finally:
        stack.close()
