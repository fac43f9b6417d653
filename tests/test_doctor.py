"""``fiscal doctor`` (hostd/boards/doctor.py): the real command on this machine (no board), then each check
against fake boards (list_ports), fake rules directories and a fake /proc, with the documented exit
codes: 1 any problem, else 4 no board, else 0."""

import json
import os
import shutil
import subprocess
import sys

import pytest
from click.testing import CliRunner
from serial.tools import list_ports

from hostd.boards import doctor
from hostd.cli.doctor import doctor as doctor_command
from hostd.boards.doctor import EXIT_NO_BOARD, EXIT_OK, EXIT_PROBLEM, OK, PROBLEM, SHIPPED_RULES, WARNING, examine
from tests.usbdesc import board_ttys

SERIAL = "E6614103E7452D2F"
CHECKS = ("boards", "udev rules", "group", "ModemManager")


def test_the_real_command_on_this_machine():
    done = subprocess.run([sys.executable, "-m", "hostd", "doctor"], capture_output=True, text=True, timeout=60)
    lines = done.stdout.splitlines()
    for name in CHECKS:
        assert any(line.split()[0] in (OK, WARNING, PROBLEM) and name in line for line in lines), (name, done.stdout)
    problems = [line for line in lines if line.startswith(PROBLEM)]
    assert done.returncode == (EXIT_PROBLEM if problems else EXIT_NO_BOARD), done.stdout
    assert lines[-1].startswith("result: ") and lines[-1].endswith("(exit %d)" % done.returncode)
    if done.returncode == EXIT_NO_BOARD:
        assert "no fiscal board on USB (1209:0001 with interface 2) among" in done.stdout
        assert "fix: plug the board in" in done.stdout
    as_json = subprocess.run([sys.executable, "-m", "hostd", "doctor", "--json"], capture_output=True, text=True,
                             timeout=60)
    doc = json.loads(as_json.stdout)
    assert as_json.returncode == doc["exit_code"] == done.returncode and doc["boards"] == []
    assert [c["name"] for c in doc["checks"]] == [line[9:22].strip() for line in lines[1:-1] if line[:1] != " "]


@pytest.fixture
def ports(monkeypatch):
    listed = []
    monkeypatch.setattr(list_ports, "comports", lambda include_links=False: list(listed))
    return listed


@pytest.fixture
def nodes(tmp_path, ports):
    """One board whose two ttys are real files (so stat and os.access answer)."""
    repl, fiscal = tmp_path / "ttyACM0", tmp_path / "ttyACM1"
    repl.write_bytes(b"")
    fiscal.write_bytes(b"")
    ports.extend(board_ttys(SERIAL, "1-1.4", str(repl), str(fiscal)))
    return str(repl), str(fiscal)


def rules_dirs(tmp_path, content=None, where="etc"):
    dirs = [tmp_path / d for d in ("etc", "run", "usr-lib")]
    for d in dirs:
        d.mkdir(exist_ok=True)
    if content is not None:
        (tmp_path / where / doctor.RULES_NAME).write_bytes(content)
    return [str(d) for d in dirs]


def shipped():
    with open(SHIPPED_RULES, "rb") as fh:
        return fh.read()


def proc(tmp_path, *comms):
    root = tmp_path / "proc"
    root.mkdir()
    (root / "self").mkdir()
    (root / "99999").mkdir()                     # a process that ended before its comm was read
    for pid, comm in enumerate(comms, 100):
        (root / str(pid)).mkdir()
        (root / str(pid) / "comm").write_text(comm + "\n")
    return str(root)


def by_name(report):
    return {c.name: c for c in report["checks"]}


def test_a_ready_board_is_exit_0(tmp_path, nodes, monkeypatch):
    monkeypatch.setattr(doctor, "GROUP", "root" if os.geteuid() == 0 else doctor.grp.getgrgid(os.getegid()).gr_name)
    report = examine(rules_dirs(tmp_path, shipped()), proc=proc(tmp_path, "bash", "ModemManager"))
    checks = by_name(report)
    assert [b.serial for b in report["boards"]] == [SERIAL]
    assert checks["board"].status == OK and nodes[1] in checks["board"].detail and nodes[0] in checks["board"].detail
    assert checks["fiscal port"].status == OK and checks["REPL port"].status == OK
    assert checks["udev rules"].status == OK and checks["group"].status == OK
    assert checks["ModemManager"].status == OK and "pid 101" in checks["ModemManager"].detail
    assert report["exit_code"] == EXIT_OK


def test_a_port_the_user_cannot_open_is_a_problem(tmp_path, nodes, monkeypatch):
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode: path != nodes[1] and real_access(path, mode))
    report = examine(rules_dirs(tmp_path, shipped()), proc=proc(tmp_path))
    port = by_name(report)["fiscal port"]
    assert port.status == PROBLEM and "cannot open it read/write" in port.detail and "70-fiscal.rules" in port.fix
    assert report["exit_code"] == EXIT_PROBLEM


def test_rules_missing_outdated_and_shadowed(tmp_path, ports):
    empty = examine(rules_dirs(tmp_path), proc=proc(tmp_path))
    assert by_name(empty)["udev rules"].status == WARNING and empty["exit_code"] == EXIT_NO_BOARD
    old = examine(rules_dirs(tmp_path, shipped().replace(b'MODE="0660"', b'MODE="0666"'), where="usr-lib"),
                  proc=str(tmp_path / "proc"))
    assert by_name(old)["udev rules"].status == WARNING and "differs" in by_name(old)["udev rules"].detail
    fixed = examine(rules_dirs(tmp_path, shipped(), where="etc"), proc=str(tmp_path / "proc"))
    rules = by_name(fixed)["udev rules"]
    assert rules.status == OK and rules.detail.startswith(str(tmp_path / "etc")) and "overrides" in rules.detail


def test_rules_missing_with_a_board_present_is_a_problem(tmp_path, nodes):
    report = examine(rules_dirs(tmp_path), proc=proc(tmp_path))
    rules = by_name(report)["udev rules"]
    assert rules.status == PROBLEM and "udevadm control --reload-rules" in rules.fix
    assert report["exit_code"] == EXIT_PROBLEM


def test_modemmanager_without_the_ignore_rule_is_a_problem(tmp_path, ports):
    report = examine(rules_dirs(tmp_path), proc=proc(tmp_path, "ModemManager"))
    mm = by_name(report)["ModemManager"]
    assert mm.status == PROBLEM and "pid 100" in mm.detail and report["exit_code"] == EXIT_PROBLEM
    stripped = shipped().replace(b'ENV{ID_MM_DEVICE_IGNORE}="1"', b'ENV{X}="1"')
    report = examine(rules_dirs(tmp_path, stripped), proc=str(tmp_path / "proc"))
    assert by_name(report)["ModemManager"].status == PROBLEM


def test_a_board_without_the_fiscal_interface_is_named(tmp_path, ports):
    ports.extend(board_ttys(SERIAL, "1-2", "/dev/ttyACM7", "/dev/ttyACM8")[:1])
    report = examine(rules_dirs(tmp_path), proc=proc(tmp_path))
    strays = [c for c in report["checks"] if c.name == "board"]
    assert len(strays) == 1 and strays[0].status == WARNING and "/dev/ttyACM7" in strays[0].detail
    assert "fiscal firmware" in strays[0].fix and report["exit_code"] == EXIT_NO_BOARD


def test_listing_failure_is_a_problem_not_no_board(tmp_path, monkeypatch):
    def broken(include_links=False):
        raise OSError(5, "Input/output error")
    monkeypatch.setattr(list_ports, "comports", broken)
    report = examine(rules_dirs(tmp_path), proc=proc(tmp_path))
    assert by_name(report)["boards"].status == PROBLEM and report["exit_code"] == EXIT_PROBLEM


def test_group_that_does_not_exist(tmp_path, ports, monkeypatch):
    monkeypatch.setattr(doctor, "GROUP", "no-such-group-for-fiscal")
    group = by_name(examine(rules_dirs(tmp_path), proc=proc(tmp_path)))["group"]
    assert group.status == WARNING and "groupadd --system no-such-group-for-fiscal" in group.fix


def test_cli_reports_fake_boards_and_fake_rules(tmp_path, nodes, monkeypatch):
    dirs = rules_dirs(tmp_path)
    shutil.copy(SHIPPED_RULES, dirs[1])
    monkeypatch.setattr(doctor, "RULE_DIRS", tuple(dirs))
    result = CliRunner().invoke(doctor_command, [])
    assert "board" in result.output and SERIAL in result.output and nodes[1] in result.output
    assert "is the shipped udev/70-fiscal.rules" in result.output
    assert result.exit_code in (EXIT_OK, EXIT_PROBLEM)          # PROBLEM only if ModemManager runs here
    doc = json.loads(CliRunner().invoke(doctor_command, ["--json"]).output)
    assert doc["boards"][0]["port"] == nodes[1] and doc["boards"][0]["repl_port"] == nodes[0]


def test_a_repl_port_the_user_cannot_open_is_only_a_warning(tmp_path, nodes, monkeypatch):
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode: path != nodes[0] and real_access(path, mode))
    monkeypatch.setattr(doctor, "GROUP", "root" if os.geteuid() == 0 else doctor.grp.getgrgid(os.getegid()).gr_name)
    report = examine(rules_dirs(tmp_path, shipped()), proc=proc(tmp_path))
    repl = by_name(report)["REPL port"]
    assert repl.status == WARNING and "mpremote" in repl.fix and report["exit_code"] == EXIT_OK
