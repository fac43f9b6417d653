"""The emulator's file flash (device/emu_flash.py): one fdatasync per record, order kept by barriers.

Issue 15: the device programs all pages of a record and syncs once. The file port must still
keep programs in order across a host power cut (the kernel writes dirty pages back in any order),
so it syncs before a program touches another file page than the unsynced writes: what a cut
keeps is then a prefix of the programs, the case tests/test_powercut.py covers.
"""

import os

from device.core import Core
from device.emu_flash import FILE_PAGE, FileFlash
from device.ports import ManualClock, SeededEntropy
from tests.devkit import SEED_TG, T0, encode_invoice, keystore, make_invoice
from protocol import messages, record

INVOICE = encode_invoice(make_invoice(lines=((1500, 12345, "TG02"), (3000, 999, "TG03"))))


class Counting:
    """os.fdatasync and os.pwrite calls, in order, as ("sync", None) / ("write", file page)."""

    def __init__(self, monkeypatch):
        self.calls = []
        real_sync, real_write = os.fdatasync, os.pwrite
        monkeypatch.setattr(os, "fdatasync", lambda fd: (self.calls.append(("sync", None)), real_sync(fd))[1])
        monkeypatch.setattr(os, "pwrite", lambda fd, data, at: (self.calls.append(("write", at // FILE_PAGE)),
                                                                 real_write(fd, data, at))[1])

    def take(self):
        calls, self.calls = self.calls, []
        return calls


def _core(path):
    flash = FileFlash(str(path), 16 * 4096)
    keys = keystore()
    core = Core(flash, ManualClock(), SeededEntropy("emu-flash"), keys)
    return flash, core


def _call(core, name, **fields):
    _, status, detail, answer = messages.decode_response(core.handle(messages.encode_request(name, **fields)))
    assert status == 0, detail
    return answer


def test_a_seal_is_one_fdatasync_after_its_page_writes(tmp_path, monkeypatch):
    flash, core = _core(tmp_path / "flash.bin")
    _call(core, "PROFILE", data=SEED_TG)
    _call(core, "SET_TIME", time=T0)
    calls = Counting(monkeypatch)
    pages_per_seal = []
    for i in range(12):
        before = flash.programs
        _call(core, "SEAL", request_id=record.request_id_for("emu:%d" % i), total=len(INVOICE), offset=0, data=INVOICE)
        got = calls.take()
        pages_per_seal.append(flash.programs - before)
        writes = [c for c in got if c[0] == "write"]
        syncs = [c for c in got if c[0] == "sync"]
        assert len(writes) == flash.programs - before and got[-1] == ("sync", None)
        # one sync per file page the seal wrote: records never span a 4 KiB sector, so one
        assert len(syncs) == len(set(page for _, page in writes)) == 1
    assert max(pages_per_seal) >= 2          # records span flash pages: several programs, one sync
    flash.close()


def test_programs_in_two_file_pages_are_ordered_by_a_barrier(tmp_path, monkeypatch):
    flash = FileFlash(str(tmp_path / "flash.bin"), 4 * 4096)
    calls = Counting(monkeypatch)
    flash.program(0, b"\x00" * 16)
    flash.program(16, b"\x01" * 16)          # same file page: no sync in between
    flash.program(FILE_PAGE, b"\x02" * 16)   # another page: the earlier writes are synced first
    assert calls.take() == [("write", 0), ("write", 0), ("sync", None), ("write", 1)]
    flash.sync()
    flash.sync()                             # nothing dirty: no second fdatasync
    assert calls.take() == [("sync", None)]
    flash.close()
    with open(str(tmp_path / "flash.bin"), "rb") as fh:
        data = fh.read()
    assert data[:32] == b"\x00" * 16 + b"\x01" * 16 and data[FILE_PAGE:FILE_PAGE + 16] == b"\x02" * 16


def test_an_erase_is_synced_at_once(tmp_path, monkeypatch):
    flash = FileFlash(str(tmp_path / "flash.bin"), 4 * 4096)
    flash.program(FILE_PAGE, b"\x00" * 4)
    calls = Counting(monkeypatch)
    flash.erase(FILE_PAGE)
    assert calls.take() == [("write", 1), ("sync", None)]
    flash.close()
