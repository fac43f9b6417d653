"""`fiscal board deploy` for real: the real mpremote driving real MicroPython 1.27 over a pty.

tests/boardsim.py's SimBoard runs tools/upy_board.mjs (the pinned WebAssembly build with its own
raw REPL) behind a pty; ``fiscal board deploy --port <pty>`` runs as a user would run it, and the
board's files are then read back from the board's own dump, independently of mpremote.
"""

import hashlib
import json
import os
import subprocess
import sys

import pytest

from hostd.boards import deploy
from hostd.boards.manifest import ROOT, load_manifest
from tests.boardsim import SimBoard

MANIFEST = load_manifest()


@pytest.fixture(scope="module")
def mpy_plan():
    return deploy.build_plan(MANIFEST)


def _local_mip_index(root):
    """An offline mip index (mpremote reads a directory like the https one) with a stand-in
    usb-device-cdc, so the deps step runs for real without network access."""
    data = b"# stand-in for micropython-lib usb-device-cdc (tests only)\nclass CDCInterface:\n    pass\n"
    short = hashlib.sha256(data).hexdigest()[:8]
    os.makedirs(root / "file" / short[:2])
    (root / "file" / short[:2] / short).write_bytes(data)
    os.makedirs(root / "package" / "6" / "usb-device-cdc")
    (root / "package" / "6" / "usb-device-cdc" / "latest.json").write_text(
        json.dumps({"hashes": [["usb/device/cdc.py", short]], "version": "0.0.0"}))
    return data


def _fiscal(*args):
    proc = subprocess.run([sys.executable, "-m", "hostd"] + list(args), cwd=ROOT, capture_output=True,
                          text=True, timeout=600)
    return proc.returncode, proc.stdout, proc.stderr


def _mpremote(port, *args):
    proc = subprocess.run([sys.executable, "-m", "mpremote", "connect", port] + list(args), capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def _board_files(dump):
    found = {}
    for dirpath, _, names in os.walk(dump):
        for name in names:
            with open(os.path.join(dirpath, name), "rb") as fh:
                found[os.path.relpath(os.path.join(dirpath, name), dump)] = fh.read()
    return found


@pytest.fixture
def sim_board(tmp_path):
    board = SimBoard(str(tmp_path / "board-files"))
    yield board
    if board.proc.poll() is None:
        board.stop()


@pytest.mark.slow
def test_deploy_to_real_micropython_with_real_mpremote(sim_board, tmp_path, mpy_plan):
    cdc = _local_mip_index(tmp_path / "index")
    code, out, err = _fiscal("board", "deploy", "--port", sim_board.path, "--index", str(tmp_path / "index"),
                             "--json")
    assert code == 0, out + err + "\n".join(sim_board.log)
    summary = json.loads(out)
    assert summary["board_mpy"] == 6 and summary["deps"] == ["usb-device-cdc@latest"]
    assert [f["dest"] for f in summary["files"]] == [i.dest for i in mpy_plan["items"]]
    assert all(f["copied"] for f in summary["files"]) and summary["reset"] == "hard"

    # The deployed modules load in MicroPython 1.27 and sign with the deployed table file exactly
    # as CPython does: compiled .mpy, p256_table.bin and package layout all work together.
    script = ("from device.signer import Signer\nfrom device.table_file import TableFile\nimport binascii\n"
              "s = Signer(bytes(range(1, 33)), TableFile('/lib/device/p256_table.bin'))\n"
              "print('sig', binascii.hexlify(s.sign(b'fiscal')).decode())")
    from device.signer import Signer
    assert "sig " + Signer(bytes(range(1, 33))).sign(b"fiscal").hex() in _mpremote(sim_board.path, "exec", script)

    log = list(sim_board.log)
    assert sim_board.stop() == 0
    files = _board_files(sim_board.dump_dir)
    for item in mpy_plan["items"]:
        assert files.pop(item.dest) == item.data, item.dest
    assert files == {"lib/usb/device/cdc.py": cdc}   # nothing else on the board
    assert "upy_board: hard reset (friendly REPL)" in log
    assert "upy_board: power boot in friendly REPL: main.py would run (no --run-main)" in log


@pytest.mark.slow
def test_redeploy_as_source_replaces_every_mpy(sim_board):
    assert _fiscal("board", "deploy", "--port", sim_board.path, "--no-deps", "--no-reset")[0] == 0
    code, out, err = _fiscal("board", "deploy", "--port", sim_board.path, "--no-deps", "--source", "--json")
    assert code == 0, out + err
    summary = json.loads(out)
    lib_modules = [dest for _, dest in MANIFEST["files"] if dest.startswith("lib/")]
    assert sorted(summary["removed"]) == sorted(d[:-3] + ".mpy" for d in lib_modules)
    assert sim_board.stop() == 0
    files = _board_files(sim_board.dump_dir)
    assert not [p for p in files if p.endswith(".mpy")]
    for src, dest in MANIFEST["files"]:
        with open(os.path.join(ROOT, src), "rb") as fh:
            assert files[dest] == fh.read(), dest


class _Tamper:
    """The real runner, but a file on the board is overwritten between copy and verify."""

    def __init__(self, port, victim, data, staging):
        self.real, self.victim, self.data, self.staging = deploy.MpremoteRunner(port, 300), victim, data, staging

    def run(self, args):
        if args[:2] == ["fs", "sha256sum"]:
            path = os.path.join(self.staging, "garbage")
            with open(path, "wb") as fh:
                fh.write(self.data)
            _mpremote(self.real.port, "fs", "cp", "-f", path, ":" + self.victim)
        return self.real.run(args)


@pytest.mark.slow
def test_a_file_changed_on_a_real_board_fails_verification(sim_board, tmp_path):
    plan = deploy.build_plan(MANIFEST, source=True)
    sent = {item.dest: item.data for item in plan["items"]}
    garbage = b"print('not the fiscal core')\n"
    runner = _Tamper(sim_board.path, "lib/device/core.py", garbage, str(tmp_path))
    with pytest.raises(deploy.VerifyMismatch) as caught:
        deploy.deploy(plan, runner, deps=False, reset=False)
    assert caught.value.files == [{"dest": "lib/device/core.py",
                                   "sha256": hashlib.sha256(sent["lib/device/core.py"]).hexdigest(),
                                   "board": hashlib.sha256(garbage).hexdigest()}]
