"""Test kit for the daemon: real ``fiscal emulator`` / ``fiscal daemon`` / ``fiscal up`` processes,
and a POS client speaking HTTP over the unix socket."""

import json
import os
import signal
import subprocess
import sys
import time

from hostd.sdk.transport import DaemonUnavailable, request
from hostd.daemon.supervisor import start_emulator, stop_emulator
from protocol import invoice, timefmt

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMPLES = os.path.join(ROOT, "samples")


ORDER = [entry[1] for entry in invoice.INVOICE]


def utc_now():
    """The current UTC time to the second, as a POS that dates its own invoices sends it."""
    return timefmt.format_time(int(time.time()))


_AUTHORED = []


def authored():
    """One timestamp for the whole test run (the first call's UTC time): a test that dates its
    invoices itself sends the same bytes all run long, so a retry is a retry, inside the
    device's -48 h window."""
    if not _AUTHORED:
        _AUTHORED.append(utc_now())
    return _AUTHORED[0]


def sample(name="invoice-002-services.json", **changes):
    """Sample invoice JSON bytes as shipped, with top-level or dotted changes (e.g. cashier_id="c-2").
    The samples carry no timestamp (the daemon dates an invoice without one as it accepts it), so
    the same arguments always give the same bytes and a retry is a retry; ``timestamp=...`` adds
    one, in its canonical place, for a POS that dates its own invoices."""
    with open(os.path.join(SAMPLES, name)) as fh:
        doc = json.load(fh)
    for path, value in changes.items():
        target, keys = doc, path.split("__")
        for key in keys[:-1]:
            target = target[int(key)] if key.isdigit() else target[key]
        target[keys[-1]] = value
    if [k for k in doc if k in ORDER] != sorted((k for k in doc if k in ORDER), key=ORDER.index):
        doc = {k: doc[k] for k in sorted(doc, key=lambda k: ORDER.index(k) if k in ORDER else len(ORDER))}
    return json.dumps(doc).encode()


def wait_for_socket(path, proc=None, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise AssertionError("process exited with %s before serving" % proc.returncode)
        if os.path.exists(path):
            try:
                request(path, "GET", "/api/v1/tax-groups", timeout=2)
                return
            except DaemonUnavailable:
                pass
        time.sleep(0.05)
    raise AssertionError("no daemon on %s after %.0f s" % (path, timeout))


def no_bug(status, data):
    """500 is reserved for bugs (issue 8): every daemon test fails on one it sees."""
    assert status != 500, "the daemon answered 500: %r" % (data[:500],)
    return status, data


class Pos:
    """What a POS does: POST JSON with an Idempotency-Key, read the envelope."""

    def __init__(self, socket_path):
        self.socket = socket_path

    def post(self, path, body, key=None, timeout=30.0, headers=None):
        sent = {"Content-Type": "application/json"}
        sent.update(headers or {})
        if key is not None:
            sent["Idempotency-Key"] = key
        status, _, data = request(self.socket, "POST", path, body, sent, timeout)
        return no_bug(status, data)

    def seal(self, body, key=None):
        status, data = self.post("/api/v1/invoices", body, key)
        return status, json.loads(data)

    def get(self, path):
        status, _, data = request(self.socket, "GET", path)
        no_bug(status, data)
        return status, json.loads(data)


class Stack:
    """An emulator and a daemon as separate processes, so the daemon can die alone."""

    def __init__(self, tmp_path, seed=11, journal_kib=None):
        self.profile = str(tmp_path / "profile")
        self.socket = str(tmp_path / "api.sock")
        self.db = str(tmp_path / "fiscal.sqlite")
        self.emulator, _ = start_emulator(self.profile, ["--seed", str(seed)] +
                                          (["--journal-kib", str(journal_kib)] if journal_kib else []))
        self.daemon = None
        self.pos = Pos(self.socket)

    def start_daemon(self, crash_at=None, extra=(), stderr=subprocess.DEVNULL, preexec_fn=None):
        env = dict(os.environ)
        env.pop("FISCAL_TEST_CRASH_AT", None)
        if crash_at:
            env["FISCAL_TEST_CRASH_AT"] = crash_at
        extra = list(extra)
        if "--close-at" not in extra:   # no day's close in the middle of a test run near 23:55 UTC
            extra += ["--close-at", "off"]
        self.daemon = subprocess.Popen([sys.executable, "-m", "hostd", "daemon", "--device",
                                        os.path.join(self.profile, "tty"), "--socket", self.socket,
                                        "--db", self.db] + extra, env=env, stderr=stderr,
                                       preexec_fn=preexec_fn)
        wait_for_socket(self.socket, self.daemon)

    def stop_daemon(self):
        if self.daemon is not None and self.daemon.poll() is None:
            self.daemon.terminate()
            self.daemon.wait(10)

    def kill_daemon(self):
        if self.daemon is not None and self.daemon.poll() is None:
            self.daemon.send_signal(signal.SIGKILL)
        if self.daemon is not None:
            self.daemon.wait()

    def restart_emulator(self, seed=12):
        os.kill(self.emulator.pid, signal.SIGKILL)
        self.emulator.wait()
        self.emulator, _ = start_emulator(self.profile, ["--seed", str(seed)])

    def close(self):
        if self.daemon is not None and self.daemon.poll() is None:
            self.daemon.terminate()
            self.daemon.wait(10)
        if self.emulator.poll() is None:
            stop_emulator(self.emulator)
