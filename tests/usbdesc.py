"""A fiscal board's USB descriptors as raw bytes, and a fake pyusb backend that serves them.

The bytes follow USB 2.0 chapter 9.6 (device, configuration, interface, endpoint and string
descriptors), the Interface Association Descriptor ECN, and CDC 1.2 / PSTN 1.2 section 5.3 (header,
call management, abstract control management and union functional descriptors). The layout is the
one a MicroPython RP2040 presents with micropython-lib ``usb-device-cdc`` and
``builtin_driver=True``: TinyUSB's REPL CDC on interfaces 0-1 (endpoints 0x81, 0x02/0x82, interface
string "Board CDC"), then the runtime fiscal CDC on interfaces 2-3 (endpoints 0x83, 0x04/0x84,
control protocol 0, no interface string), numbered from the built-in driver's itf_max and ep_max.

``tty`` and ``board_ttys`` build what pyserial's ``list_ports.comports()`` reports for the same
boards (real ``ListPortInfo`` objects, Linux-style locations ``<bus>-<ports>:<config>.<interface>``).

``FakeBackend`` parses those bytes the way libusb does (walk bLength/bDescriptorType; class-specific
descriptors become ``extra_descriptors``) and answers GET_DESCRIPTOR control transfers, so pyusb's
own ``usb.core.find``, ``Device``, ``Configuration`` and ``usb.util.get_string`` run unchanged.
"""

import errno
import struct
from types import SimpleNamespace

import usb.backend
import usb.core
import usb.util
from serial.tools.list_ports_common import ListPortInfo

from protocol.usbids import MANUFACTURER, PRODUCT, PRODUCT_ID, VENDOR_ID

DT_DEVICE, DT_CONFIG, DT_STRING, DT_INTERFACE, DT_ENDPOINT, DT_IAD, CS_INTERFACE = 1, 2, 3, 4, 5, 11, 0x24
GET_DESCRIPTOR = 6
LANG_EN_US = 0x0409
CDC, CDC_ACM, CDC_DATA = 0x02, 0x02, 0x0A
INTERRUPT, BULK = 3, 2
DEVICE_FIELDS = ("bLength", "bDescriptorType", "bcdUSB", "bDeviceClass", "bDeviceSubClass", "bDeviceProtocol",
                 "bMaxPacketSize0", "idVendor", "idProduct", "bcdDevice", "iManufacturer", "iProduct",
                 "iSerialNumber", "bNumConfigurations")
CONFIG_FIELDS = ("bLength", "bDescriptorType", "wTotalLength", "bNumInterfaces", "bConfigurationValue",
                 "iConfiguration", "bmAttributes", "bMaxPower")
INTERFACE_FIELDS = ("bLength", "bDescriptorType", "bInterfaceNumber", "bAlternateSetting", "bNumEndpoints",
                    "bInterfaceClass", "bInterfaceSubClass", "bInterfaceProtocol", "iInterface")
ENDPOINT_FIELDS = ("bLength", "bDescriptorType", "bEndpointAddress", "bmAttributes", "wMaxPacketSize", "bInterval")


def device(vid=VENDOR_ID, pid=PRODUCT_ID, strings=(1, 2, 3)):
    """Device descriptor (USB 2.0 table 9-8): class EF/02/01 = functions described by IADs."""
    return struct.pack("<BBHBBBBHHHBBBB", 18, DT_DEVICE, 0x0200, 0xEF, 0x02, 0x01, 64, vid, pid, 0x0100,
                       strings[0], strings[1], strings[2], 1)


def interface(number, endpoints, cls, subclass, protocol, string=0):
    return struct.pack("<9B", 9, DT_INTERFACE, number, 0, endpoints, cls, subclass, protocol, string)


def endpoint(address, attributes, size, interval):
    return struct.pack("<BBBBHB", 7, DT_ENDPOINT, address, attributes, size, interval)


def cdc_function(first, notify_ep, data_ep, control_protocol=0, acm_caps=0x06, string=0):
    """One CDC-ACM function: IAD, control interface with its functional descriptors and notification
    endpoint, data interface with bulk OUT and IN endpoints."""
    return (struct.pack("<8B", 8, DT_IAD, first, 2, CDC, CDC_ACM, 0, 0)
            + interface(first, 1, CDC, CDC_ACM, control_protocol, string)
            + struct.pack("<BBBH", 5, CS_INTERFACE, 0x00, 0x0120)            # header, bcdCDC 1.20
            + struct.pack("<5B", 5, CS_INTERFACE, 0x01, 0, first + 1)         # call management
            + struct.pack("<4B", 4, CS_INTERFACE, 0x02, acm_caps)             # abstract control
            + struct.pack("<5B", 5, CS_INTERFACE, 0x06, first, first + 1)     # union
            + endpoint(0x80 | notify_ep, INTERRUPT, 8, 16)
            + interface(first + 1, 2, CDC_DATA, 0, 0)
            + endpoint(data_ep, BULK, 64, 0)
            + endpoint(0x80 | data_ep, BULK, 64, 0))


def configuration(functions, interfaces):
    body = b"".join(functions)
    return struct.pack("<BBHBBBBB", 9, DT_CONFIG, 9 + len(body), interfaces, 1, 0, 0x80, 250) + body


def board_configuration(fiscal_protocol=0, fiscal=True):
    """The REPL CDC (TinyUSB, ACM capabilities 0x02, string 4) plus, when the fiscal firmware runs,
    the micropython-lib fiscal CDC (capabilities 0x06, no string)."""
    functions = [cdc_function(0, 1, 2, acm_caps=0x02, string=4)]
    if fiscal:
        functions.append(cdc_function(2, 3, 4, control_protocol=fiscal_protocol))
    return configuration(functions, 2 * len(functions))


def string(text):
    data = text.encode("utf-16-le")
    return bytes([2 + len(data), DT_STRING]) + data


def langids(*ids):
    return bytes([2 + 2 * len(ids), DT_STRING]) + b"".join(struct.pack("<H", i) for i in ids)


def tty(device, location, serial, vid=VENDOR_ID, pid=PRODUCT_ID, product=PRODUCT):
    """One port as list_ports reports it (``serial`` None: pyserial could not read it)."""
    info = ListPortInfo(device, skip_link_detection=True)
    info.vid, info.pid, info.serial_number, info.location, info.product = vid, pid, serial, location, product
    info.apply_usb_info()
    return info


def board_ttys(serial, usb_path, repl, fiscal):
    """A board's two ttys: the REPL at interface 0 and the fiscal link at interface 2."""
    return [tty(repl, usb_path + ":1.0", serial), tty(fiscal, usb_path + ":1.2", serial)]


def split(blob):
    """A descriptor set cut at each bLength."""
    out, offset = [], 0
    while offset < len(blob):
        length = blob[offset]
        assert length >= 2 and offset + length <= len(blob), "malformed descriptor at %d" % offset
        out.append(blob[offset:offset + length])
        offset += length
    return out


def _fields(raw, fmt, names, **more):
    return SimpleNamespace(**dict(zip(names, struct.unpack(fmt, raw))), extra_descriptors=[], **more)


class FakeBoard:
    def __init__(self, serial, bus=1, ports=(1,), address=5, config=None, denied=False):
        self.serial, self.bus, self.ports, self.address, self.denied = serial, bus, tuple(ports), address, denied
        self.device = device()
        self.config = board_configuration() if config is None else config
        self.strings = {0: langids(LANG_EN_US), 1: string(MANUFACTURER), 2: string(PRODUCT), 3: string(serial),
                        4: string("Board CDC")}


class FakeBackend(usb.backend.IBackend):
    """Serves FakeBoards to pyusb; ``open_handles`` counts handles not yet closed."""

    def __init__(self, boards):
        usb.backend.IBackend.__init__(self)
        self.boards = list(boards)
        self.open_handles = 0
        self.requests = []

    def enumerate_devices(self):
        return iter(self.boards)

    def get_device_descriptor(self, dev):
        return _fields(dev.device, "<BBHBBBBHHHBBBB", DEVICE_FIELDS, bus=dev.bus, address=dev.address,
                       port_number=dev.ports[-1], port_numbers=dev.ports, speed=usb.util.SPEED_FULL)

    def _tree(self, dev):
        """[(interface descriptor, [endpoint descriptors])] parsed from the configuration bytes."""
        parts = split(dev.config)
        config = _fields(parts[0], "<BBHBBBBB", CONFIG_FIELDS)
        tree = []
        for raw in parts[1:]:
            if raw[1] == DT_INTERFACE:
                tree.append((_fields(raw, "<9B", INTERFACE_FIELDS), []))
            elif raw[1] == DT_ENDPOINT:
                tree[-1][1].append(_fields(raw, "<BBBBHB", ENDPOINT_FIELDS, bRefresh=0, bSynchAddress=0))
            elif tree:   # class-specific (CDC functional) descriptors belong to the interface before them
                tree[-1][0].extra_descriptors.extend(raw)
            else:        # the IAD before the first interface: libusb keeps it as configuration extra
                config.extra_descriptors.extend(raw)
        return config, tree

    def get_configuration_descriptor(self, dev, config):
        if config != 0:
            raise IndexError("configuration %d" % config)
        return self._tree(dev)[0]

    def get_interface_descriptor(self, dev, intf, alt, config):
        tree = self._tree(dev)[1]
        if alt != 0 or intf >= len(tree):
            raise IndexError("interface %d alt %d" % (intf, alt))
        return tree[intf][0]

    def get_endpoint_descriptor(self, dev, ep, intf, alt, config):
        return self._tree(dev)[1][intf][1][ep]

    def open_device(self, dev):
        if dev.denied:
            raise usb.core.USBError("Access denied (insufficient permissions)", -3, errno.EACCES)
        self.open_handles += 1
        return dev

    def close_device(self, dev_handle):
        self.open_handles -= 1

    def claim_interface(self, dev_handle, intf):
        pass

    def release_interface(self, dev_handle, intf):
        pass

    def ctrl_transfer(self, dev_handle, bmRequestType, bRequest, wValue, wIndex, data, timeout):
        assert (bmRequestType, bRequest) == (0x80, GET_DESCRIPTOR), "only standard GET_DESCRIPTOR is served"
        kind, index = wValue >> 8, wValue & 0xFF
        self.requests.append((kind, index, wIndex))
        if kind == DT_STRING:
            assert index == 0 or wIndex == LANG_EN_US, "string asked in a language the board did not list"
            if index not in dev_handle.strings:   # a real device stalls the request
                raise usb.core.USBError("Pipe error", -9, errno.EPIPE)
            blob = dev_handle.strings[index]
        else:
            blob = {DT_DEVICE: dev_handle.device, DT_CONFIG: dev_handle.config}[kind]
        n = min(len(data), len(blob))
        data[:n] = type(data)(data.typecode, blob[:n])
        return n
