"""The board's own parts in CPython: the file-per-block journal device under the core, the page
programs BlockFlash issues, the wrap-free ticks clock, and write_all against a stalled host."""

import pytest

from device.block_flash import BlockFlash, FileBlockDevice
from device.board import TicksClock
from device.core import Core
from device.ports import ManualClock, SeededEntropy
from device.usb_link import WRITE_DEADLINE_MS, write_all
from protocol import messages
from protocol.errors import JournalError
from tests.devkit import SEED_TG, T0, encode_invoice, keystore, make_invoice

PERIOD = 1 << 30            # rp2 ticks_ms wraps here; ticks_diff is right within +-2**29


def _diff(a, b):
    return ((a - b + PERIOD // 2) % PERIOD) - PERIOD // 2


def _call(core, name, **fields):
    return messages.decode_response(core.handle(messages.encode_request(name, **fields)))


def test_file_block_device_is_nor_like(tmp_path):
    dev = FileBlockDevice(str(tmp_path / "j"), 4 * 4096)
    buf = bytearray(10)
    dev.readblocks(1, buf, 4090)                      # across blocks 1 and 2, neither exists
    assert buf == b"\xff" * 10 and sorted(p.name for p in (tmp_path / "j").iterdir()) == []
    dev.writeblocks(1, b"\x0f\xf0", 4094)
    dev.writeblocks(1, b"\xf3", 4094)                 # programs AND
    dev.readblocks(1, buf, 4090)
    assert buf == b"\xff" * 4 + b"\x03\xf0" + b"\xff" * 4
    dev.ioctl(6, 1)
    dev.readblocks(1, buf, 4090)
    assert buf == b"\xff" * 10 and (dev.ioctl(4, 0), dev.ioctl(5, 0)) == (4, 4096)
    with pytest.raises(OSError):
        dev.writeblocks(0, b"xx", 4095)               # one program never crosses a block


def test_short_block_file_is_a_storage_failure(tmp_path):
    dev = FileBlockDevice(str(tmp_path / "j"), 4 * 4096)
    dev.writeblocks(0, b"\x00", 0)
    (tmp_path / "j" / "000").write_bytes(b"\x00" * 100)   # a damaged file, not a missing one
    with pytest.raises(JournalError, match="STORAGE_FAILURE|holds 100 bytes"):
        BlockFlash(dev).read(0, 16)


def test_core_on_file_blocks_seals_and_reboots(tmp_path):
    keys = keystore()
    flash = BlockFlash(FileBlockDevice(str(tmp_path / "j"), 16 * 4096))
    core = Core(flash, ManualClock(), SeededEntropy("f"), keys)
    _call(core, "SET_TIME", time=T0)
    assert _call(core, "PROFILE", data=SEED_TG)[3]["installed"] is True    # protocol 3: no seal without
    canonical = encode_invoice(make_invoice())
    nonce = _call(core, "PREPARE", total=len(canonical), offset=0, data=canonical, request_id=b"\x01" * 16)[3]["nonce"]
    sealed = _call(core, "COMMIT", nonce=nonce)[3]["sealed"]
    again = Core(BlockFlash(FileBlockDevice(str(tmp_path / "j"), 16 * 4096)), ManualClock(),
                 SeededEntropy("g"), keys)
    info = _call(again, "INFO")[3]
    # POWER_UP, TIME, profile EVENT, INVOICE, then the second POWER_UP
    assert (info["counter"], info["seq"], info["fault"], info["profile_id"]) == (1, 5, "", "seed-tg")
    assert _call(again, "STATUS", nonce=nonce)[3] == {"state": 0}   # the committed-nonce ring is RAM
    assert _call(again, "STATUS", request_id=b"\x01" * 16)[3]["sealed"] == sealed


class PageLog:
    """A block device that records writeblocks calls (RAM, NOR semantics)."""

    def __init__(self):
        self.mem = bytearray(b"\xff" * 8192)
        self.calls = []

    def readblocks(self, block, buf, offset=0):
        at = block * 4096 + offset
        buf[:] = self.mem[at:at + len(buf)]

    def writeblocks(self, block, buf, offset=None):
        at = block * 4096 + offset
        self.calls.append((at, len(buf)))
        for i in range(len(buf)):
            self.mem[at + i] &= buf[i]

    def ioctl(self, op, arg):
        return {4: 2, 5: 4096}.get(op, 0)


def test_block_flash_programs_whole_aligned_pages():
    dev = PageLog()
    flash = BlockFlash(dev)
    flash.program(300, b"\x01\x02\x03")
    assert dev.calls == [(256, 256)]
    assert flash.read(298, 7) == b"\xff\xff\x01\x02\x03\xff\xff"
    with pytest.raises(JournalError, match="crosses a page"):
        flash.program(510, b"abc")


def test_ticks_clock_never_goes_back_across_the_wrap():
    now = [PERIOD - 5000]
    clock = TicksClock(lambda: now[0] % PERIOD, _diff)
    seen = []
    for _ in range(3000):                              # 3000 x 10 days: wraps many times over
        now[0] += 10 * 86400 * 1000 // 20              # sampled every half day
        seen.append(clock.monotonic_ms())
    assert all(b > a for a, b in zip(seen, seen[1:]))
    assert seen[-1] == 3000 * 10 * 86400 * 1000 // 20


class StalledHost:
    """A CDC whose host stopped reading: every write takes nothing after the first few bytes."""

    def __init__(self):
        self.taken = 0

    def write(self, buf):
        n = 5 if self.taken == 0 else 0
        self.taken += n
        return n


def test_write_all_gives_up_on_a_stalled_host_at_the_deadline():
    t = [0]

    def ticks():
        t[0] += 100
        return t[0]
    host = StalledHost()
    assert write_all(host, b"x" * 100, ticks, lambda a, b: a - b) == 5
    assert WRITE_DEADLINE_MS <= t[0] <= WRITE_DEADLINE_MS + 300
