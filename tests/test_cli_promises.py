"""Issue 13, "a CLI that keeps its promises": each item of the issue's list, as a user meets it."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys

import pytest

from tests.daemonkit import Stack, sample, wait_for_socket

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def fiscal(*args, timeout=120, **kw):
    return subprocess.run([sys.executable, "-m", "hostd"] + list(args), capture_output=True, text=True,
                          timeout=timeout, **kw)


@pytest.mark.slow
def test_status_without_a_device_exits_3_and_says_so(tmp_path):
    sock = str(tmp_path / "api.sock")
    proc = subprocess.Popen([sys.executable, "-m", "hostd", "daemon", "--device", str(tmp_path / "no-such-tty"),
                             "--socket", sock], stderr=subprocess.DEVNULL)
    try:
        wait_for_socket(sock, proc)
        done = fiscal("status", "--socket", sock)
        assert done.returncode == 3 and "device is unavailable" in done.stderr, done.stderr
        assert "None" not in done.stdout + done.stderr
        as_json = fiscal("status", "--socket", sock, "--json")
        assert as_json.returncode == 3 and json.loads(as_json.stdout)["payload"]["device_state"] == "unavailable"
    finally:
        proc.terminate()
        proc.wait(30)


@pytest.mark.slow
def test_status_is_readable(tmp_path):
    stack = Stack(tmp_path)
    try:
        stack.start_daemon()
        assert stack.pos.seal(sample())[0] == 200
        done = fiscal("status", "--socket", stack.socket)
        assert done.returncode == 0, done.stderr
        out = done.stdout
        assert re.search(r"^clock +\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$", out, re.M), out
        assert re.search(r"^journal +\d+\.\d{3}% full \(\d+ of 2097152 bytes\)$", out, re.M), out
        assert re.search(r"^counter +1 \(", out, re.M) and "fault" not in out and "quarantined" not in out
        assert "None" not in out and "journal_fill" not in out
    finally:
        stack.close()


def test_invalid_options_are_click_errors_naming_the_fix(tmp_path):
    done = fiscal("daemon", "--device", "x", "--socket", str(tmp_path / "s"), "--mode", "999")
    assert done.returncode == 2 and "not an octal file mode" in done.stderr and "0660" in done.stderr
    done = fiscal("daemon", "--device", "x", "--socket", str(tmp_path / "s"), "--group", "nosuchgroup")
    assert done.returncode == 2 and "no group 'nosuchgroup'" in done.stderr and "groupadd" in done.stderr
    for out in (done.stderr,):
        assert "Traceback" not in out
    assert not os.path.exists(tmp_path / "s")


@pytest.mark.slow
def test_invalid_input_exits_2(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_bytes(sample(totals__total="1.00"))
    done = fiscal("demo", "--profile", str(tmp_path / "p"), str(bad))
    assert done.returncode == 2 and "INVALID_CANONICAL_PAYLOAD" in done.stderr, done.stderr


@pytest.mark.slow
def test_a_second_up_on_a_busy_profile_shows_the_emulators_message(tmp_path):
    profile = str(tmp_path / "profile")
    first = subprocess.Popen([sys.executable, "-m", "hostd", "up", "--profile", profile, "--socket",
                              str(tmp_path / "a.sock"), "--json"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        line = json.loads(first.stdout.readline())
        assert line["status"] == "serving" and line["socket"] == str(tmp_path / "a.sock")
        second = fiscal("up", "--profile", profile, "--socket", str(tmp_path / "b.sock"))
        assert second.returncode == 3, second.stderr
        assert "flash.bin is in use" in second.stderr and "Traceback" not in second.stderr
        assert second.stderr.count("flash.bin is in use") == 1   # said once, not once per retry
    finally:
        first.send_signal(signal.SIGTERM)
        first.wait(30)


def test_authority_means_the_folder_everywhere(tmp_path):
    auth = str(tmp_path / "auth")
    assert fiscal("authority", "init", "--dir", auth).returncode == 0
    issued = fiscal("authority", "issue", "--dir", auth, "--device-id", "EMU-00000001", "--public-key",
                    _device_key(), "-o", str(tmp_path / "cert.bin"), "--json")
    assert issued.returncode == 0 and json.loads(issued.stdout)["bytes"] == os.path.getsize(tmp_path / "cert.bin")
    plan = fiscal("board", "deploy", "--port", "/dev/null", "--dry-run", "--source", "--json", "--authority", auth)
    assert plan.returncode == 0, plan.stderr
    assert "fiscal/authority.bin" in [f["dest"] for f in json.loads(plan.stdout)["files"]]
    as_file = fiscal("board", "deploy", "--port", "/dev/null", "--dry-run", "--source", "--json",
                     "--authority", os.path.join(auth, "authority.pub"))
    assert json.loads(as_file.stdout)["files"] == json.loads(plan.stdout)["files"]
    missing = fiscal("verify", os.path.join(auth, "authority.pub"), "--authority", str(tmp_path / "nowhere"))
    assert missing.returncode == 2 and "not an authority folder" in missing.stderr
    pub_only = tmp_path / "verifier"
    pub_only.mkdir()
    shutil.copy(os.path.join(auth, "authority.pub"), pub_only)
    no_key = fiscal("board", "provision", "--device", "/dev/null", "--authority", str(pub_only))
    assert no_key.returncode == 2 and "authority.key" in no_key.stderr


def _device_key():
    from cryptography.hazmat.primitives.asymmetric import ec

    numbers = ec.generate_private_key(ec.SECP256R1()).public_key().public_numbers()
    return (numbers.x.to_bytes(32, "big") + numbers.y.to_bytes(32, "big")).hex()


def test_emulator_json_first_line(tmp_path):
    proc = subprocess.Popen([sys.executable, "-m", "hostd", "emulator", "--profile", str(tmp_path / "p"), "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        doc = json.loads(proc.stdout.readline())
        assert doc["pty"].startswith("/dev/") and doc["profile"] == str(tmp_path / "p")
    finally:
        proc.terminate()
        proc.wait(30)


def test_help_version_and_h():
    top = fiscal("--help")
    assert "(soon)" not in top.stdout and "host daemon" in top.stdout and "_FISCAL_COMPLETE" in top.stdout
    assert fiscal("-h").stdout == top.stdout
    assert fiscal("--version").stdout.strip() == "fiscal 0.1.0"
    for command in (["daemon"], ["invoice", "create"], ["service", "install"], ["board", "deploy"]):
        short, long = fiscal(*(command + ["-h"])), fiscal(*(command + ["--help"]))
        assert short.returncode == 0 and short.stdout == long.stdout, command


def test_completion_script_is_generated():
    done = subprocess.run([os.path.join(os.path.dirname(sys.executable), "fiscal")], capture_output=True, text=True,
                          env=dict(os.environ, _FISCAL_COMPLETE="bash_source"), timeout=60)
    assert done.returncode == 0 and "_fiscal_completion" in done.stdout


def test_dev_demo_json_prints_only_json_on_stdout_even_when_setup_runs(tmp_path):
    """A first run: pip and npm both print (to stdout, as they do); none of it reaches ./dev's stdout."""
    for name in ("dev", "pyproject.toml", "setup.py", "package-lock.json"):
        shutil.copy(os.path.join(ROOT, name), tmp_path / name)
    bin_dir = tmp_path / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "python").write_text("#!/bin/sh\necho 'Successfully installed fiscal-device'\n")
    (bin_dir / "fiscal").write_text('#!/bin/sh\necho \'{"demo": "ok"}\'\n')
    fake = tmp_path / "fakebin"
    fake.mkdir()
    (fake / "npm").write_text("#!/bin/sh\necho 'added 1 package in 1s'\nmkdir -p node_modules\n")
    for path in (bin_dir / "python", bin_dir / "fiscal", fake / "npm"):
        path.chmod(0o755)
    done = subprocess.run(["./dev", "demo", "--json"], cwd=str(tmp_path), capture_output=True, text=True, timeout=60,
                          env=dict(os.environ, PATH="%s:%s" % (fake, os.environ["PATH"])))
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"demo": "ok"}
    assert "added 1 package" in done.stderr and "Successfully installed" in done.stderr
