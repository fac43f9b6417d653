"""Discovery through pyusb's real code paths, against a fake backend serving a board's real
descriptor bytes (tests/usbdesc.py): serial numbers read as UTF-16LE string descriptors, the fiscal
interface found at number 2 as CDC-ACM control with protocol 0 ("no AT commands"), and the
list_ports fallback that asks pyusb for a serial number pyserial could not read."""

import pytest
import usb.control
import usb.core
import usb.util
from serial.tools import list_ports

from hostd.link import discovery
from hostd.errors import DevicePermission, DiscoveryFailed
from protocol.usbids import FISCAL_INTERFACE, MANUFACTURER, PRODUCT, PRODUCT_ID, REPL_INTERFACE, VENDOR_ID
from tests import usbdesc
from tests.usbdesc import FakeBackend, FakeBoard, tty

SERIAL_A, SERIAL_B = "E6614103E7452D2F", "E661A4D41723562B"


def two_boards():
    return FakeBackend([FakeBoard(SERIAL_A, bus=1, ports=(3,), address=7),
                        FakeBoard(SERIAL_B, bus=1, ports=(4, 2), address=9)])


def test_descriptor_bytes_follow_the_spec():
    config = usbdesc.board_configuration()
    parts = usbdesc.split(config)
    assert int.from_bytes(config[2:4], "little") == len(config)          # wTotalLength
    kinds = [p[1] for p in parts]
    assert kinds.count(usbdesc.DT_INTERFACE) == config[4] == 4            # bNumInterfaces
    assert kinds.count(usbdesc.DT_IAD) == 2 and kinds.count(usbdesc.DT_ENDPOINT) == 6
    assert usbdesc.string("AB") == b"\x06\x03A\x00B\x00"
    assert len(usbdesc.device()) == 18


def test_pyusb_reads_the_descriptors_it_was_given():
    backend = two_boards()
    dev = usb.core.find(backend=backend, idVendor=VENDOR_ID, idProduct=PRODUCT_ID)
    raw = usb.control.get_descriptor(dev, 18, usbdesc.DT_DEVICE, 0)
    assert bytes(raw) == usbdesc.device()
    assert (dev.idVendor, dev.idProduct, dev.bDeviceClass) == (VENDOR_ID, PRODUCT_ID, 0xEF)
    assert (dev.manufacturer, dev.product, dev.serial_number) == (MANUFACTURER, PRODUCT, SERIAL_A)
    interfaces = {i.bInterfaceNumber: i for i in dev[0]}
    assert sorted(interfaces) == [0, 1, 2, 3]
    repl, fiscal, data = interfaces[REPL_INTERFACE], interfaces[FISCAL_INTERFACE], interfaces[FISCAL_INTERFACE + 1]
    assert usb.util.get_string(dev, repl.iInterface) == "Board CDC" and fiscal.iInterface == 0
    assert (data.bInterfaceClass, data.bNumEndpoints) == (usbdesc.CDC_DATA, 2)
    assert [e.bEndpointAddress for e in fiscal] == [0x83]
    assert sorted(e.bEndpointAddress for e in data) == [0x04, 0x84]
    # the CDC functional descriptors travel as the control interface's extra bytes: union 2 -> 3
    assert bytes(fiscal.extra_descriptors)[-5:] == bytes([5, usbdesc.CS_INTERFACE, 0x06, 2, 3])
    usb.util.dispose_resources(dev)
    assert backend.open_handles == 0


def test_usb_boards_reads_serials_and_the_no_modem_claim():
    backend = two_boards()
    boards = discovery.usb_boards(backend)
    assert [b.serial for b in boards] == [SERIAL_A, SERIAL_B]
    assert {(b.bus, b.ports) for b in boards} == {(1, (3,)), (1, (4, 2))}
    assert all(b.manufacturer == MANUFACTURER and b.product == PRODUCT for b in boards)
    assert all(b.fiscal_interface == (2, 2, 0) for b in boards)      # CDC, ACM, protocol 0: no AT commands
    assert backend.open_handles == 0                                   # every handle released
    asked = {(kind, index) for kind, index, _ in backend.requests}
    assert (usbdesc.DT_STRING, 3) in asked                            # the serial came over the wire


def test_a_board_claiming_at_commands_is_seen_as_such():
    modem = FakeBoard(SERIAL_A, config=usbdesc.board_configuration(fiscal_protocol=1))
    repl_only = FakeBoard(SERIAL_B, ports=(2,), config=usbdesc.board_configuration(fiscal=False))
    got = {b.serial: b.fiscal_interface for b in discovery.usb_boards(FakeBackend([modem, repl_only]))}
    assert got == {SERIAL_A: (2, 2, 1), SERIAL_B: None}


def test_no_permission_on_the_usb_node_is_a_permission_error():
    backend = FakeBackend([FakeBoard(SERIAL_A, denied=True)])
    with pytest.raises(DevicePermission) as info:
        discovery.usb_boards(backend)
    assert "70-fiscal.rules" in info.value.detail and "fiscal doctor" in info.value.detail


def test_serial_missing_from_list_ports_is_read_through_pyusb(monkeypatch):
    # pyserial could not read sysfs "serial": the tty at 1-4.2 must get board B's serial, not A's.
    monkeypatch.setattr(list_ports, "comports", lambda include_links=False: [tty("/dev/ttyACM5", "1-4.2:1.2", None)])
    boards = discovery.find_boards(usb_backend=two_boards())
    assert [(b.serial, b.port) for b in boards] == [(SERIAL_B, "/dev/ttyACM5")]
    assert discovery.resolve("serial:" + SERIAL_B, usb_backend=two_boards()) == "/dev/ttyACM5"


def test_serial_fallback_never_answers_with_an_empty_list(monkeypatch):
    monkeypatch.setattr(list_ports, "comports", lambda include_links=False: [tty("/dev/ttyACM5", "1-4.2:1.2", None)])
    with pytest.raises(DevicePermission):
        discovery.find_boards(usb_backend=FakeBackend([FakeBoard(SERIAL_B, ports=(4, 2), denied=True)]))
    with pytest.raises(DiscoveryFailed) as info:
        discovery.find_boards(usb_backend=FakeBackend([]))             # pyusb does not see it at all
    assert "1-4.2" in info.value.detail
