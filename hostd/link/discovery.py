"""Finding fiscal boards on USB: which tty carries the fiscal link, by USB identity, never by name.

A board shows the host two ttyACM nodes: MicroPython's REPL CDC (interface 0) and the fiscal CDC
(interface 2; ``protocol/usbids.py``). ``/dev/ttyACMn`` numbers follow plug order, so they say
nothing about which node is which, or which board it is; the vendor/product id, the interface
number and the USB serial number (the board's unique id) do (architecture-anchors item 10).

pyserial's ``list_ports.comports()`` reports all of that on Linux, macOS and Windows. The interface
number comes from ``ListPortInfo.location``, whose suffix is ``:<config>.<interface>`` for a
multi-interface device (Linux: the sysfs interface directory, e.g. ``1-1.4:1.2``, decimal as the
kernel names it; Windows: ``1-1.4:x.2``). Without that suffix (pyserial falls back to the device
location when it cannot read ``bNumInterfaces``) it comes from the sysfs ``bInterfaceNumber`` file
(hex) under pyserial's ``usb_interface_path``. macOS's port list has no interface number at all:
there the board's ttys are reported as strays and the fiscal port is passed by path.

pyusb is asked only for the serial number, and only when list_ports has none: pyserial reads the
sysfs ``serial`` attribute and silently leaves None when it cannot (containers that mask /sys). A
string descriptor needs a control transfer, hence libusb and write access to /dev/bus/usb/BBB/DDD,
which the ``SUBSYSTEM=="usb"`` line of ``udev/70-fiscal.rules`` grants.

Enumeration that fails raises (DiscoveryFailed, DevicePermission), never returns an empty list:
"no board" must always mean that no board is attached.
"""

import errno
import grp
import os
import pwd
import re
import stat
from dataclasses import dataclass

import usb.core
import usb.util
from serial.tools import list_ports

from hostd.errors import UDEV_HINT, DevicePermission, DeviceUnavailable, DiscoveryFailed
from protocol.usbids import FISCAL_INTERFACE, PRODUCT_ID, REPL_INTERFACE, VENDOR_ID

SERIAL_PREFIX = "serial:"
_LOCATION_SUFFIX = re.compile(r":(?:\d+|x)\.(\d+)$")
_NOT_FOUND_HINT = ("plug it in (a data cable, not a charge-only one); if it is plugged in, see "
                   "udev/README.md or run `fiscal doctor`")


@dataclass(frozen=True)
class Board:
    """One board as the host sees it: its fiscal tty, and its REPL tty when that is present."""

    serial: str
    port: str
    interface: int
    vid: int
    pid: int
    location: str
    product: str
    repl_port: str = None


@dataclass(frozen=True)
class UsbBoard:
    """One board as pyusb sees it: identity strings and the fiscal interface's class triple."""

    serial: str
    manufacturer: str
    product: str
    bus: int
    ports: tuple
    fiscal_interface: tuple   # (bInterfaceClass, bInterfaceSubClass, bInterfaceProtocol) or None


def interface_number(info):
    """USB bInterfaceNumber of a listed port, or None when it is not placed in a USB interface."""
    found = _LOCATION_SUFFIX.search(info.location or "")
    if found:
        return int(found.group(1))
    path = getattr(info, "usb_interface_path", None)
    if path is None:
        return None
    try:
        with open(os.path.join(path, "bInterfaceNumber")) as fh:
            return int(fh.read().strip(), 16)
    except (OSError, ValueError) as exc:
        raise DiscoveryFailed("cannot read the USB interface number of %s from %s: %s" % (info.device, path, exc))


def survey(usb_backend=None):
    """(boards, strays, listed): boards with a fiscal tty, sorted by serial; the ttys with our
    VID:PID on a USB device that has no fiscal interface (MicroPython without the fiscal firmware);
    and how many serial ports the system listed in all."""
    try:
        listed = list_ports.comports()
    except OSError as exc:
        raise DiscoveryFailed("cannot list serial ports: %s" % exc)
    devices = {}
    for info in listed:
        if info.vid == VENDOR_ID and info.pid == PRODUCT_ID:
            # Both ttys of one board share its USB device: its location without ":config.interface".
            key = info.location.split(":")[0] if info.location else (info.serial_number or info.device)
            devices.setdefault(key, []).append((interface_number(info), info))
    boards, strays = [], []
    for ttys in devices.values():
        by_number = dict(ttys)
        fiscal, repl = by_number.get(FISCAL_INTERFACE), by_number.get(REPL_INTERFACE)
        if fiscal is None:
            strays.extend(info for _, info in ttys)
            continue
        serial = fiscal.serial_number or usb_serial(fiscal.location, usb_backend)
        boards.append(Board(serial, fiscal.device, FISCAL_INTERFACE, fiscal.vid, fiscal.pid, fiscal.location,
                            fiscal.product, repl.device if repl is not None else None))
    return sorted(boards, key=lambda b: b.serial), sorted(strays, key=lambda p: p.device), len(listed)


def find_boards(usb_backend=None):
    """Every attached fiscal board (see ``survey``)."""
    return survey(usb_backend)[0]


def resolve(spec, usb_backend=None):
    """The port to open for ``--device``: ``auto`` (the one board), ``serial:<SERIAL>``, or a path.

    Called at every connection attempt, so a board plugged in after the daemon started is found
    by the owner's reconnect loop. Paths (a tty, ``/dev/fiscal/<serial>``, an emulator pty) pass
    through unchanged.
    """
    if spec != "auto" and not spec.startswith(SERIAL_PREFIX):
        return spec
    boards, strays, _ = survey(usb_backend)
    if spec == "auto":
        if len(boards) == 1:
            return boards[0].port
        if len(boards) > 1:
            raise DeviceUnavailable("%d fiscal boards found (serials %s): pass --device serial:<SERIAL> to "
                                    "choose one" % (len(boards), ", ".join(b.serial for b in boards)))
        raise DeviceUnavailable("no fiscal board found (USB %04x:%04x with interface %d)%s: %s"
                                % (VENDOR_ID, PRODUCT_ID, FISCAL_INTERFACE, _strays_note(strays), _NOT_FOUND_HINT))
    wanted = spec[len(SERIAL_PREFIX):]
    for board in boards:
        if board.serial.upper() == wanted.upper():   # serials are hex; accept either case
            return board.port
    seen = ", ".join(b.serial for b in boards) or "none"
    raise DeviceUnavailable("no fiscal board with serial %s (boards found: %s)%s: %s"
                            % (wanted, seen, _strays_note(strays), _NOT_FOUND_HINT))


def _strays_note(strays):
    """Why ports with our VID:PID were not taken: no fiscal interface, or no interface number."""
    notes = []
    for port in strays:
        if interface_number(port) is None:
            notes.append("%s is USB %04x:%04x but this system does not say which interface it is (pass its path "
                         "to --device)" % (port.device, VENDOR_ID, PRODUCT_ID))
        else:
            notes.append("%s is USB %04x:%04x without the fiscal interface (is the fiscal firmware running?)"
                         % (port.device, VENDOR_ID, PRODUCT_ID))
    return "".join("; " + note for note in notes)


def usb_serial(location, usb_backend=None):
    """The serial number of the board at a list_ports ``location``, read through pyusb."""
    if not location:
        raise DiscoveryFailed("a fiscal board has neither a serial number nor a USB location in the port list")
    bus, _, path = location.split(":")[0].partition("-")
    ports = tuple(int(p) for p in path.split(".")) if path else ()
    for board in usb_boards(usb_backend):
        if str(board.bus) == bus and board.ports == ports:
            if board.serial is None:
                raise DiscoveryFailed("the fiscal board at USB %s has no serial number string" % location)
            return board.serial
    raise DiscoveryFailed("the port list shows a fiscal board at USB %s without a serial number, and pyusb "
                          "does not see it there" % location)


def usb_boards(usb_backend=None):
    """Our boards as pyusb sees them (``usb_backend``: None for libusb, or a test backend)."""
    try:
        devices = list(usb.core.find(find_all=True, idVendor=VENDOR_ID, idProduct=PRODUCT_ID, backend=usb_backend))
    except usb.core.NoBackendError as exc:
        raise DiscoveryFailed("pyusb has no libusb backend (%s): install libusb-1.0" % exc)
    return [_read_usb_board(dev) for dev in devices]


def _read_usb_board(dev):
    try:
        langids = usb.util.get_langids(dev)   # not dev.langids: that turns "access denied" into ()
        strings = [usb.util.get_string(dev, index, langids[0]) if langids else None
                   for index in (dev.iSerialNumber, dev.iManufacturer, dev.iProduct)]
        control = usb.util.find_descriptor(dev[0], bInterfaceNumber=FISCAL_INTERFACE, bAlternateSetting=0)
    except usb.core.USBError as exc:
        where = "USB device %04x:%04x on bus %s address %s" % (VENDOR_ID, PRODUCT_ID, dev.bus, dev.address)
        if exc.errno in (errno.EACCES, errno.EPERM):
            raise DevicePermission("no permission to read the serial number of %s: %s" % (where, UDEV_HINT))
        raise DiscoveryFailed("cannot read the descriptors of %s: %s" % (where, exc))
    finally:
        usb.util.dispose_resources(dev)
    triple = None if control is None else (control.bInterfaceClass, control.bInterfaceSubClass,
                                           control.bInterfaceProtocol)
    return UsbBoard(strings[0], strings[1], strings[2], dev.bus, tuple(dev.port_numbers or ()), triple)


def port_owner(path):
    """(user, group, mode) of a device node, by name where the system knows the ids."""
    st = os.stat(path)
    return _name(pwd.getpwuid, st.st_uid), _name(grp.getgrgid, st.st_gid), stat.S_IMODE(st.st_mode)


def _name(lookup, ident):
    try:
        return lookup(ident)[0]
    except KeyError:   # an id with no name in passwd/group: show the number
        return str(ident)


def current_user():
    """This process's user name (or uid, in containers that run an unnamed uid)."""
    return _name(pwd.getpwuid, os.geteuid())


def permission_error(port):
    """The DevicePermission for a port whose open failed with EACCES/EPERM: who owns the node,
    who we are, and the udev fix."""
    try:
        user, group, mode = port_owner(port)
        owned = "owned by %s, group %s, mode %04o" % (user, group, mode)
    except OSError as exc:
        owned = "cannot stat it either: %s" % exc.strerror
    me = current_user()
    groups = ",".join(sorted(_name(grp.getgrgid, g) for g in set(os.getgroups()) | {os.getegid()}))
    return DevicePermission("permission denied opening %s (%s; user %s, groups %s): %s"
                            % (port, owned, me, groups, UDEV_HINT))
