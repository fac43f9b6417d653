"""Composition root of the board firmware: the same core as the emulator, wired to a board.

``board/main.py`` calls :func:`main` at boot. Everything platform-specific enters here and only
here, through the ports the core already has (DESIGN-NOTES section 3):

- flash: a block device (device/block_flash.py): ``bdev="file"`` (default, stock firmware) is a
  preallocated file on littlefs; ``"rp2"`` the raw tail of the rp2 storage region, for a build
  whose littlefs stops short of it; ``"esp32"`` the data partition labelled ``fiscal``
  (docs/BOARDS.md);
- clock: ``time.ticks_ms`` made monotonic across its wrap. Fiscal time comes from the host
  (SET_TIME at every connect, device/ports.py DeviceClock); once set it is also copied into
  ``machine.RTC`` so the REPL shows the same time. The RTC itself is not trusted: a Pico has no
  battery and its RTC restarts at 2021-01-01 on every power-up;
- entropy: ``os.urandom`` (the RP2040's ring oscillator, the ESP32's RNG);
- keystore: device/keystore.py in ``/fiscal`` (the key is made by PROVISION, inside the board);
- the signer's table: ``p256_table.bin`` read on demand (device/table_file.py), not built at boot;
- the link: the second CDC interface (device/usb_link.py).

Platform modules (``machine``, ``usb.device``, ``rp2``, ``esp32``) are imported inside functions,
so this module imports on any MicroPython and tests can hand in fakes (tests/test_board_fakes.py).
"""

import os
import sys
import time

from device.block_flash import BlockFlash, FileBlockDevice
from device.core import Core
from device.keystore import FileKeystore
from device.link import Link
from device.table_file import TableFile
from device import usb_link

DATA_DIR = "/fiscal"
JOURNAL_DIR = DATA_DIR + "/journal"      # one file per 4 KiB block (device/block_flash.py)
JOURNAL_BYTES = 256 * 1024          # about 1,178 one-group invoices between archives; a raw partition can be larger
TABLE_PATH = "/lib/device/p256_table.bin"
FIRMWARE = "fiscal-core 0.1.0 (board)"


class TicksClock:
    """Milliseconds since boot that never wrap: ``ticks_ms`` wraps (2**30 ms on rp2)."""

    def __init__(self, ticks_ms=None, ticks_diff=None):
        self._ticks_ms = ticks_ms or time.ticks_ms
        self._ticks_diff = ticks_diff or time.ticks_diff
        self._last = self._ticks_ms()
        self._total = 0

    def monotonic_ms(self):
        now = self._ticks_ms()
        self._total += self._ticks_diff(now, self._last)
        self._last = now
        return self._total


class UrandomEntropy:
    def random(self, n):
        return os.urandom(n)


def serial_number(machine):
    """The chip's unique id as upper-case hex: the USB serial, hence /dev/fiscal/<serial>."""
    return "".join(["%02X" % b for b in machine.unique_id()])


def journal_device(kind):
    if kind == "file":
        return FileBlockDevice(JOURNAL_DIR, JOURNAL_BYTES)
    if kind == "rp2":
        # The last JOURNAL_BYTES of the storage region (rp2.Flash start= is relative to it). Only
        # for a build whose _boot.py mounts littlefs on rp2.Flash(start=0, len=total - JOURNAL_BYTES):
        # on stock firmware littlefs owns the whole region and this would overwrite it.
        import rp2

        total = rp2.Flash().ioctl(4, 0) * rp2.Flash().ioctl(5, 0)
        return rp2.Flash(start=total - JOURNAL_BYTES, len=JOURNAL_BYTES)
    if kind == "esp32":
        import esp32

        found = esp32.Partition.find(esp32.Partition.TYPE_DATA, label="fiscal")
        if not found:
            raise OSError("no data partition labelled 'fiscal' in the partition table")
        return found[0]
    raise ValueError("unknown journal device %r (file, rp2 or esp32)" % (kind,))


def _ensure_dir(path):
    try:
        os.mkdir(path)
    except OSError:   # EEXIST: already there (any other failure shows when files are opened)
        pass


class Firmware:
    """Core, link and CDC of one board. The keyword arguments are the fakes' way in."""

    def __init__(self, bdev="file", machine=None, usb_device=None, cdc_class=None, clock=None, entropy=None):
        if machine is None:
            import machine
        if usb_device is None:
            import usb.device as usb_device
        if cdc_class is None:
            from usb.device.cdc import CDCInterface as cdc_class
        _ensure_dir(DATA_DIR)
        self.machine = machine
        self.table = TableFile(TABLE_PATH)
        self.flash = BlockFlash(journal_device(bdev) if isinstance(bdev, str) else bdev)
        self.keystore = FileKeystore(DATA_DIR, "FMD")
        self.clock = clock or TicksClock()
        self.entropy = entropy or UrandomEntropy()
        self.restarts = 0
        self.start_core()
        self.cdc = usb_link.open_cdc(serial_number(machine), usb_device, cdc_class)

    def start_core(self):
        """(Re)build the core from flash, exactly as at power-up (a POWER_UP record follows)."""
        self.core = Core(self.flash, self.clock, self.entropy, self.keystore, firmware=FIRMWARE, table=self.table,
                         unload=True)
        self.link = Link(self.core)

    def run(self, running=None):
        """Serve until ``running()`` is false. An unexpected exception (MemoryError, a driver's
        OSError) is printed on the REPL console and the core is rebuilt from flash, as a power
        cycle would, so RAM state never outlives a half-done step; KeyboardInterrupt (Ctrl-C
        from mpremote) is not an Exception and stops the firmware."""
        while True:
            try:
                usb_link.serve(self.cdc, self.link, time.ticks_ms, time.ticks_diff,
                               rtc_follower(self.core, self.machine), running, self.clock.monotonic_ms)
                return
            except Exception as exc:
                sys.print_exception(exc)
                self.restarts += 1
                self.start_core()


def rtc_follower(core, machine):
    """After each answer: copy the host-set fiscal time into machine.RTC once it is known."""
    rtc = machine.RTC()
    state = [None]

    def follow():
        now = core.clock.now()
        if now is not None and state[0] is None:
            tm = time.gmtime(now - _epoch_offset())
            rtc.datetime((tm[0], tm[1], tm[2], tm[6], tm[3], tm[4], tm[5], 0))
            state[0] = now
    return follow


def _epoch_offset():
    """Seconds from 1970 to this port's epoch (0 on rp2, 946684800 where the epoch is 2000)."""
    return 946684800 if time.gmtime(0)[0] == 2000 else 0


def main(bdev="file", running=None, **fakes):
    firmware = Firmware(bdev, **fakes)
    firmware.run(running)
    return firmware
