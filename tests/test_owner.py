"""The daemon's device owner against the real core, in process, for the failure windows a review
found: clock behind the device, a full pending table, a crash between mirroring and filing, a
rolled-back device, a device that stops reading."""

import json
import os
import threading
import time
import tty

import pytest

from hostd.intake.canonical import parse_invoice, to_canonical
from hostd.link.client import DeviceClient
from hostd.errors import DeviceBusy, DeviceUnavailable
from hostd.owner.owner import TWO_PHASE, Owner
from hostd.store.store import Store
from protocol import frames, record
from tests.daemonkit import sample, utc_now
from tests.devkit import Bench


class CoreClient(DeviceClient):
    """The real DeviceClient logic over an in-memory byte link to the real Link and Core."""

    def __init__(self, bench, timeout=0.2, retries=1, on_sent=None):
        self.bench, self.port, self.timeout, self.retries, self.on_sent = bench, "memory", timeout, retries, on_sent
        self.decoder = frames.FrameDecoder()
        self.seq = 0
        self.info = None
        self.awaited, self.early = set(), {}
        self._rx = b""   # answers written by the device and not read yet, as a serial port holds them

    def _write(self, data):
        self._rx += self.bench.link.feed(data)

    def _await(self, seq):
        """DeviceClient._await over the in-memory link: an answer not there now never comes."""
        data, self._rx = self._rx, b""
        for kind, got, item in self.decoder.feed(data):
            if kind == "frame" and (got == seq or got in self.awaited):
                self.early[got] = item
        return self.early.pop(seq, None)

    def close(self):
        pass


def make_owner(tmp_path, bench):
    store = Store(str(tmp_path / "fiscal.sqlite"))
    return Owner("memory", store, client_factory=lambda path, timeout, on_sent: CoreClient(bench, on_sent=on_sent)), store


def add(store, key, body):
    """A request row as hostd/api/accept.py stores it: the canonical invoice, and as its JSON the
    body, or the dated document when the body had no timestamp."""
    parsed = parse_invoice(body)
    text = parsed.text() if parsed.stamped else body.decode()
    assert store.add_request(key, b"h" + key.encode(), parsed.canonical, text, time.time())


def test_device_clock_ahead_of_host_is_not_a_refusal(tmp_path):
    bench = Bench()
    bench.ok("SET_TIME", time=int(time.time()) + 3600)      # a board clock an hour ahead
    bench.ok("COMMIT", nonce=bench.prepare(to_canonical(sample())[0])[1]["nonce"])
    bench.reboot()                                           # clock unset, last record an hour ahead
    owner, store = make_owner(tmp_path, bench)
    add(store, "1p:k", sample(cashier_id="ahead"))
    status, body = owner.seal("1p:k", 5)
    assert status == 200 and json.loads(body)["payload"]["counter"] == 2


def test_a_full_pending_table_does_not_stop_one_call_seals(tmp_path):
    """Protocol 2: a one-call SEAL needs no PREPARE slot, so two-phase PREPAREs that hold every slot
    never block it; a further two-phase PREPARE is busy (429), not a stored refusal."""
    bench = Bench(max_pending=1)
    owner, store = make_owner(tmp_path, bench)
    add(store, TWO_PHASE + "open", sample(cashier_id="open"))
    owner.prepare(TWO_PHASE + "open", 5)                     # the one pending slot is taken
    add(store, "1p:later", sample(cashier_id="later"))
    assert owner.seal("1p:later", 5)[0] == 200
    add(store, TWO_PHASE + "more", sample(cashier_id="more"))
    with pytest.raises(DeviceBusy):
        owner.prepare(TWO_PHASE + "more", 5)
    assert store.request(TWO_PHASE + "more")["state"] == "new"   # nothing stored as the answer
    assert owner.abort(TWO_PHASE + "open", 5) == "aborted"
    assert owner.prepare(TWO_PHASE + "more", 5)["state"] == "prepared"


def test_crash_between_mirroring_and_filing_is_repaired(tmp_path):
    bench = Bench()
    owner, store = make_owner(tmp_path, bench)
    add(store, "1p:a", sample(cashier_id="a"))
    assert owner.seal("1p:a", 5)[0] == 200
    rid = record.request_id_for("1p:b")                      # what the daemon sends for this key
    body = sample(cashier_id="b", timestamp=utc_now())       # dated once: the row holds what was PREPAREd
    nonce = bench.prepare(to_canonical(body)[0], rid)[1]["nonce"]
    add(store, "1p:b", body)
    store.set_request_id("1p:b", rid)
    store.set_prepared("1p:b", nonce)
    bench.ok("COMMIT", nonce=nonce)                          # sealed; the daemon never heard
    records = [p for _, p in bench.core.journal.records()]
    hashes, prev = [], record.genesis()
    for rec in records:
        prev = record.record_hash(prev, rec)
        hashes.append(prev)
    store.add_journal(1, records, hashes)                    # mirrored, then "killed" before filing
    owner2, _ = make_owner(tmp_path, bench)
    owner2.device(time.monotonic() + 5)                      # reconnect: info seq == mirror seq
    assert store.invoice("2") is not None
    assert store.request("1p:b")["state"] == "done"


def test_rolled_back_device_is_refused(tmp_path):
    bench = Bench()
    owner, store = make_owner(tmp_path, bench)
    old_image = bench.flash.image()
    for i in range(2):
        add(store, "1p:%d" % i, sample(cashier_id="r%d" % i))
        assert owner.seal("1p:%d" % i, 5)[0] == 200
    bench.flash = type(bench.flash)(bench.flash.size, data=old_image)   # restore an older flash
    bench.reboot()
    owner.client = None
    with pytest.raises(DeviceUnavailable) as info:
        owner.device(time.monotonic() + 0.5)
    assert "rollback" in info.value.detail or "rolled back" in info.value.detail


def test_a_device_that_stops_reading_cannot_hang_the_owner():
    master, slave = os.openpty()
    tty.setraw(slave)
    client = DeviceClient(os.ttyname(slave), timeout=0.5)
    done = []

    def flood():
        try:
            client._write(b"\x00" * (4 << 20))               # nobody reads the other end
        except DeviceUnavailable:
            done.append("unavailable")
    worker = threading.Thread(target=flood, daemon=True)
    worker.start()
    worker.join(15)
    client.close()
    os.close(master)
    os.close(slave)
    assert done == ["unavailable"]


def test_an_export_catches_up_in_slices_and_is_built_off_the_owner(tmp_path):
    """Issue 15: records the mirror lacks are read in slices of about ``limit`` (one owner job
    each, so seals go between them), and the file is built from the store alone, ending at the
    head the device signed even when more records were mirrored after it."""
    from hostd.books.export import load_export, verify_export
    from hostd.owner.archiving import export_file

    bench = Bench(flash_size=256 * 1024)
    owner, store = make_owner(tmp_path, bench)
    owner.device(time.monotonic() + 5)
    canonical = to_canonical(sample())[0]
    for i in range(200):   # sealed behind the owner's back: the mirror does not have them
        owner.client.seal(record.request_id_for("behind-%d" % i), canonical)
    start = store.journal_seq()
    slices = []
    while True:
        more = owner.catch_up(5, limit=64)
        slices.append(store.journal_seq())
        if not more:
            break
    steps = [b - a for a, b in zip([start] + slices, slices)]
    assert len(slices) >= 3 and max(steps) <= 64 + 63 and slices[-1] == bench.core.journal.last_seq, steps
    info, head = owner.export_head(5)
    owner.client.seal(record.request_id_for("after-head"), canonical)
    owner.catch_up(5)                                 # mirrored, but after the head
    summary = verify_export(load_export(export_file(store, None, info, head)))
    assert summary["invoices"] == 200 and summary["last_seq"] == slices[-1]
