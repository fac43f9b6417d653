"""Issue 13: the systemd units, installed by the real ``fiscal service install --root DIR``, are
accepted by ``systemd-analyze verify`` with no warning at all (and a broken copy is not), the
sysusers.d file by ``systemd-sysusers --dry-run``, and they say what the issue asks: Type=notify,
socket activation on the socket the daemon is told, a system user, state and runtime
directories, the hardening list. ``./dev`` (setup) installs Debian's systemd package when
systemd-analyze is missing and it runs as root, so these tests never skip."""

import json
import os
import shutil
import subprocess
import sys

import pytest

from hostd.daemon import units

ANALYZE = shutil.which("systemd-analyze")
MISSING = "systemd-analyze is missing: run ./dev setup as root (it installs Debian's systemd package)"


def fiscal(*args):
    return subprocess.run([sys.executable, "-m", "hostd"] + list(args), capture_output=True, text=True, timeout=60)


@pytest.fixture
def installed(tmp_path):
    program = os.path.join(os.path.dirname(sys.executable), "fiscal")
    done = fiscal("service", "install", "--root", str(tmp_path), "--fiscal", program, "--device", "serial:E661",
                  "--json")
    assert done.returncode == 0, done.stderr
    return tmp_path, json.loads(done.stdout), program


def parse(path):
    """{(section, key): [values]} of a unit file."""
    out, section = {}, None
    with open(path) as fh:
        for line in fh:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            if line.startswith("["):
                section = line[1:-1]
                continue
            key, _, value = line.partition("=")
            out.setdefault((section, key), []).append(value)
    return out


def verify(*paths):
    assert ANALYZE, MISSING
    return subprocess.run([ANALYZE, "verify"] + [str(p) for p in paths], capture_output=True, text=True)


def test_install_writes_every_file_and_systemd_analyze_accepts_the_units(installed):
    root, doc, program = installed
    unit_dir = root / "etc" / "systemd" / "system"
    assert sorted(f["dest"] for f in doc["files"]) == sorted(str(root / d) for _, _, d, _ in units.FILES)
    assert doc["commands"] == []   # --root: files only
    with open(root / "etc" / "udev" / "rules.d" / "70-fiscal.rules", "rb") as fh, \
            open(os.path.join(os.path.dirname(os.path.dirname(__file__)), "udev", "70-fiscal.rules"), "rb") as shipped:
        assert fh.read() == shipped.read()
    done = verify(unit_dir / "fiscal.socket", unit_dir / "fiscal.service")
    assert done.returncode == 0 and done.stdout + done.stderr == "", done.stdout + done.stderr


def test_systemd_analyze_verify_can_fail(installed, tmp_path):
    """The check above is not vacuous: a copy with an unknown key or a missing program is refused."""
    root, _, _ = installed
    unit_dir = root / "etc" / "systemd" / "system"
    broken = tmp_path / "broken"
    broken.mkdir()
    text = (unit_dir / "fiscal.service").read_text()
    (broken / "fiscal.service").write_text(text.replace("[Service]\n", "[Service]\nHardenEverything=yes\n"))
    shutil.copy(unit_dir / "fiscal.socket", broken / "fiscal.socket")
    done = verify(broken / "fiscal.socket", broken / "fiscal.service")
    assert "Unknown key" in done.stdout + done.stderr
    (broken / "fiscal.service").write_text(text.replace(sys.executable.rsplit("/", 1)[0], "/nonexistent"))
    done = verify(broken / "fiscal.socket", broken / "fiscal.service")
    assert done.returncode != 0 and "/nonexistent" in done.stdout + done.stderr


def test_the_units_say_what_the_issue_asks(installed):
    root, _, program = installed
    service = parse(root / "etc" / "systemd" / "system" / "fiscal.service")
    socket_unit = parse(root / "etc" / "systemd" / "system" / "fiscal.socket")
    s = lambda key: service[("Service", key)]
    assert s("Type") == ["notify"] and s("User") == ["fiscal"] and s("Group") == ["fiscal"]
    assert s("StateDirectory") == ["fiscal"] and s("RuntimeDirectory") == ["fiscal"]
    assert s("RuntimeDirectoryPreserve") == ["yes"]   # else a restart deletes fiscal.socket's socket
    for key, value in (("NoNewPrivileges", "yes"), ("ProtectSystem", "strict"), ("ProtectHome", "yes"),
                       ("PrivateTmp", "yes"), ("DevicePolicy", "closed"), ("SystemCallFilter", "@system-service")):
        assert s(key) == [value], key
    assert "char-ttyACM rw" in s("DeviceAllow")
    assert set(s("RestrictAddressFamilies")[0].split()) == {"AF_UNIX", "AF_INET", "AF_INET6"}
    assert int(s("WatchdogSec")[0]) > 0 and s("TimeoutStartSec") == ["infinity"]
    exec_start = s("ExecStart")[0].split()
    assert exec_start[:2] == [program, "daemon"]
    assert exec_start[exec_start.index("--device") + 1] == "serial:E661"
    assert exec_start[exec_start.index("--socket") + 1] == socket_unit[("Socket", "ListenStream")][0]
    assert exec_start[exec_start.index("--db") + 1].startswith("/var/lib/fiscal/")   # StateDirectory
    assert socket_unit[("Socket", "SocketMode")] == ["0660"] and socket_unit[("Socket", "SocketGroup")] == ["fiscal-pos"]


def test_sysusers_file_is_accepted_by_systemd_sysusers(installed):
    root, _, _ = installed
    tool = shutil.which("systemd-sysusers")
    assert tool, MISSING
    done = subprocess.run([tool, "--dry-run", "--root", str(root), str(root / "etc" / "sysusers.d" / "fiscal.conf")],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "Creating user 'fiscal'" in done.stdout + done.stderr and "fiscal-pos" in done.stdout + done.stderr


def test_dry_run_writes_nothing_and_lists_the_plan(tmp_path):
    done = fiscal("service", "install", "--dry-run", "--root", str(tmp_path / "r"))
    assert done.returncode == 0, done.stderr
    assert not (tmp_path / "r").exists()
    assert done.stdout.count("would write") == len(units.FILES)
    plain = fiscal("service", "install", "--dry-run", "--json")
    assert [c["command"][0] for c in json.loads(plain.stdout)["commands"]] == [c[0] for c in units.COMMANDS]
