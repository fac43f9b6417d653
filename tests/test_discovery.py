"""Board discovery (hostd/link/discovery.py) with fake port lists built from pyserial's own
ListPortInfo: two boards (REPL tty at interface 0, fiscal tty at interface 2) and an unrelated
USB serial adapter; hotplug through the real Owner; the permission error a user without the udev
rules gets; and the real daemon started with ``--device auto`` on this machine, which has no board."""

import errno
import grp
import json
import os
import subprocess
import sys
import threading
import time

import pytest
import serial
from serial.tools import list_ports

from hostd.link import discovery
from hostd.sdk.transport import request
from hostd.link.client import DeviceClient
from hostd.errors import DevicePermission, DeviceUnavailable, DiscoveryFailed
from hostd.owner.owner import Owner
from hostd.store.store import Store
from tests.daemonkit import wait_for_socket
from tests.devkit import Bench
from tests.test_owner import CoreClient
from tests.usbdesc import board_ttys, tty

SERIAL_A, SERIAL_B = "E6614103E7452D2F", "E661A4D41723562B"


# Board B's fiscal tty got the lower ttyACM number: names say nothing about roles.
BOARD_A = board_ttys(SERIAL_A, "1-1.4", "/dev/ttyACM0", "/dev/ttyACM1")
BOARD_B = board_ttys(SERIAL_B, "3-2", "/dev/ttyACM3", "/dev/ttyACM2")
ADAPTER = [tty("/dev/ttyUSB0", "1-1.3", "A50285BI", vid=0x0403, pid=0x6001, product="FT232R USB UART")]


@pytest.fixture
def ports(monkeypatch):
    """The list comports() returns; tests change it in place (plug and unplug)."""
    listed = []
    monkeypatch.setattr(list_ports, "comports", lambda include_links=False: list(listed))
    return listed


def test_two_boards_auto_refuses_and_names_both(ports):
    ports.extend(ADAPTER + BOARD_A + BOARD_B)
    with pytest.raises(DeviceUnavailable) as info:
        discovery.resolve("auto")
    assert SERIAL_A in info.value.detail and SERIAL_B in info.value.detail
    assert "--device serial:<SERIAL>" in info.value.detail
    found = discovery.find_boards()
    assert [(b.serial, b.port, b.repl_port, b.interface) for b in found] == [
        (SERIAL_A, "/dev/ttyACM1", "/dev/ttyACM0", 2), (SERIAL_B, "/dev/ttyACM2", "/dev/ttyACM3", 2)]


def test_serial_picks_that_boards_fiscal_tty(ports):
    ports.extend(BOARD_A + ADAPTER + BOARD_B)
    assert discovery.resolve("serial:" + SERIAL_B) == "/dev/ttyACM2"
    assert discovery.resolve("serial:" + SERIAL_A.lower()) == "/dev/ttyACM1"
    with pytest.raises(DeviceUnavailable) as info:
        discovery.resolve("serial:0000000000000000")
    assert SERIAL_A in info.value.detail and "0000000000000000" in info.value.detail


def test_one_board_is_auto(ports):
    ports.extend(ADAPTER + BOARD_B)
    assert discovery.resolve("auto") == "/dev/ttyACM2"


def test_paths_pass_through_without_listing(monkeypatch):
    def refuse(include_links=False):
        raise AssertionError("a path must not need the port list")
    monkeypatch.setattr(list_ports, "comports", refuse)
    for path in ("/dev/pts/7", "/dev/fiscal/" + SERIAL_A, "/dev/ttyACM0", "memory"):
        assert discovery.resolve(path) == path


def test_a_board_with_only_the_repl_is_not_taken(ports):
    ports.extend(ADAPTER + BOARD_A[:1])
    assert discovery.find_boards() == []
    with pytest.raises(DeviceUnavailable) as info:
        discovery.resolve("auto")
    assert "/dev/ttyACM0" in info.value.detail and "fiscal firmware" in info.value.detail


def test_without_interface_numbers_the_path_is_asked_for(ports):
    ports.extend([tty("/dev/cu.usbmodem1101", "0-1.1", SERIAL_A), tty("/dev/cu.usbmodem1103", "0-1.1", SERIAL_A)])
    with pytest.raises(DeviceUnavailable) as info:          # macOS: no interface in the port list
        discovery.resolve("auto")
    for port in ("/dev/cu.usbmodem1101", "/dev/cu.usbmodem1103"):
        assert port + " is USB 1209:0001 but this system does not say which interface" in info.value.detail


def test_nothing_of_ours_says_what_to_do(ports):
    ports.extend(ADAPTER)
    with pytest.raises(DeviceUnavailable) as info:
        discovery.resolve("auto")
    detail = info.value.detail
    assert "no fiscal board found" in detail and "1209:0001" in detail
    assert "plug it in" in detail and "udev/README.md" in detail and "fiscal doctor" in detail


def test_interface_number_sources(tmp_path):
    assert discovery.interface_number(tty("/dev/ttyACM0", "1-2:x.2", None)) == 2        # Windows
    assert discovery.interface_number(tty("/dev/ttyACM0", "1-2.1:1.10", None)) == 10    # decimal, kernel style
    sysfs = tmp_path / "1-2:1.12"
    sysfs.mkdir()
    (sysfs / "bInterfaceNumber").write_text("0c\n")                                     # sysfs: hex
    bare = tty("/dev/ttyACM0", "1-2", None)
    assert discovery.interface_number(bare) is None
    bare.usb_interface_path = str(sysfs)
    assert discovery.interface_number(bare) == 12
    bare.usb_interface_path = str(tmp_path / "gone")
    with pytest.raises(DiscoveryFailed):
        discovery.interface_number(bare)


def test_listing_that_fails_raises_instead_of_finding_nothing(monkeypatch):
    def broken(include_links=False):
        raise OSError(errno.EIO, "SetupDiGetClassDevs failed")
    monkeypatch.setattr(list_ports, "comports", broken)
    with pytest.raises(DiscoveryFailed) as info:
        discovery.find_boards()
    assert "cannot list serial ports" in info.value.detail


def _owner(tmp_path, bench, opened):
    def factory(path, timeout, on_sent):
        opened.append(path)
        return CoreClient(bench, on_sent=on_sent)
    return Owner("auto", Store(str(tmp_path / "fiscal.sqlite")), client_factory=factory)


def test_owner_fails_clearly_then_connects_when_the_board_appears(tmp_path, ports):
    bench, opened = Bench(), []
    owner = _owner(tmp_path, bench, opened)
    with pytest.raises(DeviceUnavailable) as info:
        owner.device(time.monotonic())                        # one attempt, no board
    assert "no fiscal board found" in info.value.detail and "fiscal doctor" in owner.last_error
    assert opened == []
    ports.extend(BOARD_B)                                     # plugged in
    owner.device(time.monotonic() + 5)
    assert opened == ["/dev/ttyACM2"] and owner.info["device_id"] == bench.core.device_id
    owner.close()


def test_owner_thread_picks_up_a_board_plugged_in_while_it_waits(tmp_path, monkeypatch):
    listed, asked = [], threading.Event()

    def comports(include_links=False):
        asked.set()
        return list(listed)
    monkeypatch.setattr(list_ports, "comports", comports)
    bench, opened = Bench(), []
    owner = _owner(tmp_path, bench, opened)
    waiting = owner.run(owner.device, time.monotonic() + 60)  # the daemon's reconnect loop
    assert asked.wait(30)                                     # it has looked and found nothing
    assert not waiting.done() and opened == []
    listed.extend(BOARD_A)
    waiting.result(60)
    assert opened == ["/dev/ttyACM1"] and owner.last_error is None
    owner.close()


def _refuse_open(monkeypatch, code):
    def fake_serial(port, *args, **kwargs):   # what pyserial's posix open raises
        raise serial.SerialException(code, "could not open port %s: [Errno %d] %s: '%s'"
                                     % (port, code, os.strerror(code), port))
    monkeypatch.setattr(serial, "Serial", fake_serial)


def test_permission_denied_names_port_group_and_udev_hint(tmp_path, monkeypatch):
    node = tmp_path / "ttyACM1"
    node.write_bytes(b"")
    if os.geteuid() == 0:
        os.chown(node, -1, 20)                                # dialout on Debian
    group = grp.getgrgid(os.stat(node).st_gid).gr_name
    _refuse_open(monkeypatch, errno.EACCES)
    with pytest.raises(DevicePermission) as info:
        DeviceClient(str(node))
    detail = info.value.detail
    assert str(node) in detail and "group %s" % group in detail
    assert "install udev/70-fiscal.rules: see udev/README.md, or run `fiscal doctor`" in detail
    assert info.value.exit_code == 3 and info.value.code == "DEVICE_UNAVAILABLE"


def test_other_open_errors_are_not_called_permission_problems(tmp_path, monkeypatch):
    _refuse_open(monkeypatch, errno.ENOENT)
    with pytest.raises(DeviceUnavailable) as info:
        DeviceClient(str(tmp_path / "gone"))
    assert not isinstance(info.value, DevicePermission) and "udev" not in info.value.detail


@pytest.mark.slow
def test_daemon_with_auto_starts_without_a_board_and_says_why(tmp_path):
    if discovery.find_boards():
        pytest.skip("a real board is attached to this machine")
    sock = str(tmp_path / "api.sock")
    daemon = subprocess.Popen([sys.executable, "-m", "hostd", "daemon", "--device", "auto", "--socket", sock,
                               "--db", str(tmp_path / "fiscal.sqlite")], stderr=subprocess.DEVNULL)
    try:
        wait_for_socket(sock, daemon)
        state, _, info = request(sock, "GET", "/api/v1/outlets/local/status", timeout=30)
    finally:
        daemon.terminate()
        daemon.wait(10)
    payload = json.loads(info)["payload"]
    assert state == 200 and payload["device_state"] == "unavailable"
    assert "no fiscal board found" in payload["detail"] and "fiscal doctor" in payload["detail"]
