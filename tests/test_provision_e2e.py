"""Provisioning end to end with real processes: a factory-fresh emulator, the real ``fiscal``
CLI, then the daemon sealing an invoice, and ``fiscal verify --authority`` on its export."""

import json
import os
import subprocess
import sys

from hostd.daemon.supervisor import start_emulator, stop_emulator
from tests.daemonkit import Pos, sample, wait_for_socket

FISCAL = [sys.executable, "-m", "hostd"]


def _fiscal(*args, check=True):
    proc = subprocess.run(FISCAL + [str(a) for a in args], capture_output=True, text=True, timeout=120)
    if check:
        assert proc.returncode == 0, proc.stderr + proc.stdout
    return proc


def test_fresh_emulator_is_provisioned_certified_and_verified(tmp_path):
    profile, auth = str(tmp_path / "emu"), str(tmp_path / "authority")
    _fiscal("authority", "init", "--dir", auth)
    emu, pty = start_emulator(profile, ["--factory-fresh", "--authority", os.path.join(auth, "authority.pub")])
    daemon = None
    try:
        assert not os.path.exists(os.path.join(profile, "key.bin"))
        sock = str(tmp_path / "api.sock")
        refused = subprocess.Popen(FISCAL + ["daemon", "--device", pty, "--socket", sock,
                                             "--db", str(tmp_path / "x.db")], stderr=subprocess.PIPE, text=True)
        wait_for_socket(sock, refused)
        status = Pos(sock).get("/api/v1/outlets/local/status")
        assert status[0] == 200 and status[1]["payload"]["device_state"] == "unavailable"
        assert "fiscal board provision" in json.dumps(status[1])
        code, doc = Pos(sock).seal(sample())
        assert code == 503 and "fiscal board provision" in doc["detail"], doc
        refused.terminate()
        refused.wait(10)

        first = json.loads(_fiscal("board", "provision", "--device", pty, "--authority", auth, "--json").stdout)
        assert first["key_created"] is True and first["certificate_stored"] is True
        # a factory-fresh device has no tax profile: provisioning installs the default one, once
        assert (first["tax_profile"], first["tax_profile_installed"]) == ("seed-tg", True)
        assert os.path.exists(os.path.join(profile, "key.bin"))          # made inside the device
        again = json.loads(_fiscal("board", "provision", "--device", pty, "--authority", auth, "--json").stdout)
        assert again == dict(first, key_created=False, certificate_stored=False, tax_profile_installed=False)
        assert open(os.path.join(auth, "devices", first["device_id"] + ".pub")).read().strip() == first["public_key"]

        daemon = subprocess.Popen(FISCAL + ["daemon", "--device", pty, "--socket", sock, "--db", str(tmp_path / "d.db")])
        wait_for_socket(sock, daemon)
        code, doc = Pos(sock).seal(sample())
        assert code == 200, doc
        export = tmp_path / "export.json"
        code, body = Pos(sock).get("/api/v1/audit/export")
        assert code == 200 and body["certificate"]
        export.write_text(json.dumps(body))
    finally:
        if daemon is not None:
            daemon.terminate()
            daemon.wait(10)
        stop_emulator(emu)
    ok = _fiscal("verify", export, "--authority", os.path.join(auth, "authority.pub"), "--json")
    assert json.loads(ok.stdout)["certificate"].startswith("verified: issued to " + first["device_id"])
    other = tmp_path / "other"
    _fiscal("authority", "init", "--dir", other)
    bad = _fiscal("verify", export, "--authority", other / "authority.pub", check=False)
    assert bad.returncode == 1 and "not by the given authority" in bad.stderr
