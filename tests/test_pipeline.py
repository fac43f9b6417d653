"""Pipelined SEAL_BATCH (issue 15): the next group is on the link while the device seals one.

The host half is hostd/link/client.py (several requests out, answers kept for whoever awaits
them, only the newest request retransmitted) and hostd/owner/batching.py (two groups out while
a group's answer comes back fast, groups no larger than the answer has room for). These run the
real DeviceClient over an in-memory serial port wired to the real Link and Core, and the owner
over tests/test_owner.py's CoreClient, against the real core.
"""

import time

import pytest

from hostd.errors import DeviceTimeout, DeviceUnavailable
from hostd.link import client as client_mod
from hostd.link.client import DeviceClient
from hostd.owner.owner import Owner
from hostd.owner.batching import PIPELINE_DEPTH
from hostd.store.store import Store
from protocol import batch, frames, messages
from tests.devkit import Bench
from tests.test_group_commit import Spy, assert_exactly_once, counters, pending_of
from tests.test_owner import CoreClient


class MemorySerial:
    """A serial port whose far end is the real device Link: what is written is executed at
    once, and the answers wait in the receive buffer until read, as a pty or CDC port holds
    them. ``drop`` names request sequence bytes whose next answer is lost on the way."""

    def __init__(self, link):
        self.link, self.rx, self.drop, self.written = link, bytearray(), set(), []

    def write(self, data):
        self.written.append(bytes(data))
        for kind, seq, payload in frames.FrameDecoder().feed(data):
            if kind == "frame" and seq in self.drop:
                self.drop.discard(seq)
                self.link.feed(data)          # executed, but the answer never arrives
                return len(data)
        self.rx.extend(self.link.feed(data))
        return len(data)

    @property
    def in_waiting(self):
        return len(self.rx)

    def read(self, n):
        if not self.rx:
            time.sleep(0.001)
            return b""
        out = bytes(self.rx[:n])
        del self.rx[:n]
        return out

    def close(self):
        pass


@pytest.fixture
def wired(monkeypatch):
    bench = Bench()
    port = MemorySerial(bench.link)
    monkeypatch.setattr(client_mod.serial, "Serial", lambda *args, **kw: port)
    client = DeviceClient("memory", timeout=0.3, retries=2)
    client.handshake()
    return bench, port, client


def test_answers_that_arrive_in_one_read_all_reach_their_requests(wired):
    bench, port, client = wired
    pings = [client.start("PING", data=b"p%d" % i) for i in range(3)]
    info = client.start("INFO")
    assert len(port.rx) > 0 and client.awaited == {p[1] for p in pings} | {info[1]}
    # the last one first: the three answers before it are read on the way and kept
    assert client.finish(info)["counter"] == bench.core.counter
    assert [client.finish(p)["data"] for p in pings] == [b"p0", b"p1", b"p2"]
    assert client.awaited == set() and client.early == {}


def test_an_answer_nobody_awaits_is_dropped(wired):
    bench, port, client = wired
    stale = client.start("PING", data=b"old")
    client.abandon(stale)
    assert client.call("PING", data=b"new")["data"] == b"new"
    assert client.early == {}


def test_an_earlier_request_whose_answer_is_lost_is_not_sent_again(wired):
    bench, port, client = wired
    port.drop.add((client.seq % 255) + 1)
    first = client.start("PING", data=b"first")
    second = client.start("PING", data=b"second")
    port.written.clear()
    assert client.finish(second)["data"] == b"second"
    with pytest.raises(DeviceTimeout, match="sent after it"):
        client.finish(first)
    assert port.written == []                 # the first frame was never retransmitted


def test_the_newest_request_is_still_retransmitted_and_replayed(wired):
    bench, port, client = wired
    port.drop.add((client.seq % 255) + 1)     # the next request's first answer is lost
    assert client.call("PING", data=b"again")["data"] == b"again"
    assert bench.link.replays == 1            # the device answered the retransmission from its slot


class Watching(CoreClient):
    """CoreClient that records, whenever a SEAL_BATCH frame goes out, how many requests are out,
    and whenever a group has gone out, how many groups are."""

    out_at_send = []
    groups_out = []

    def _send(self, frame, name):
        CoreClient._send(self, frame, name)
        if name == "SEAL_BATCH":
            Watching.out_at_send.append(len(self.awaited))

    def seal_batch_start(self, entries, pipelined=False):
        started = CoreClient.seal_batch_start(self, entries, pipelined)
        self.started = getattr(self, "started", 0) + 1
        Watching.groups_out.append(self.started)
        return started

    def seal_batch_finish(self, started):
        self.started -= 1
        return CoreClient.seal_batch_finish(self, started)


def pipelined_owner(tmp_path, bench, factory):
    store = Store(str(tmp_path / "fiscal.sqlite"))
    owner = Owner("memory", store, client_factory=lambda path, timeout, on_sent: factory(bench, on_sent=on_sent))
    owner.device(time.monotonic() + 5)
    return owner, store


def test_groups_are_pipelined_and_sized_to_what_the_answer_carries(tmp_path):
    bench = Bench()
    Watching.out_at_send, Watching.groups_out = [], []
    owner, store = pipelined_owner(tmp_path, bench, Watching)
    spy = Spy(owner, store, bench)
    keys = ["1p:pipe-%d" % i for i in range(60)]
    results = owner.seal_many([pending_of(k) for k in keys], 30)
    assert [s for s, _ in results] == [200] * 60 and counters(results) == list(range(1, 61))
    assert_exactly_once(bench, store, keys)
    assert owner._depth() == PIPELINE_DEPTH == 3
    assert max(Watching.groups_out) == 3     # a group went out while two groups' answers were unread
    # once the owner knows how many records an answer has room for, groups fit it: READ_JOURNAL
    # is needed for the first group at most
    assert owner.answer_fits is not None and max(owner.group_sizes) == 16
    assert spy.messages.count("READ_JOURNAL") <= 1
    assert spy.batches == sum(owner.group_sizes.values())


class LosingSecond(CoreClient):
    """Loses the answer to the second SEAL_BATCH group (the device did seal it), while the third
    is already out behind it."""

    answers = 0

    def _await(self, seq):
        answer = CoreClient._await(self, seq)
        if answer is not None and "results" in messages.decode_response(answer)[3]:
            LosingSecond.answers += 1
            if LosingSecond.answers == 2:
                raise DeviceUnavailable("device link lost: the answer never came")
        return answer


def test_a_lost_answer_with_a_group_behind_it_seals_everything_exactly_once(tmp_path):
    bench = Bench()
    LosingSecond.answers = 0
    owner, store = pipelined_owner(tmp_path, bench, LosingSecond)
    keys = ["1p:lose-%d" % i for i in range(40)]
    results = owner.seal_many([pending_of(k) for k in keys], 30)
    assert LosingSecond.answers >= 2
    assert [s for s, _ in results] == [200] * 40 and counters(results) == list(range(1, 41))
    assert_exactly_once(bench, store, keys)


def test_a_slow_device_gets_one_group_at_a_time(tmp_path):
    bench = Bench()
    Watching.out_at_send = []
    owner, store = pipelined_owner(tmp_path, bench, Watching)
    owner.timeout = 0.0      # any group is slow against this link timeout: never pipelined
    keys = ["1p:slow-%d" % i for i in range(40)]
    results = owner.seal_many([pending_of(k) for k in keys], 30)
    assert counters(results) == list(range(1, 41))
    assert_exactly_once(bench, store, keys)
    assert owner._depth() == 1 and max(Watching.out_at_send) == 1


class FailFirstBatchWrite(CoreClient):
    """The first SEAL_BATCH frame written after ``armed`` fails (the emulator restarted: EIO on
    the old pty); the reconnect that follows works."""

    armed = False

    def _write(self, data):
        for kind, seq, payload in frames.FrameDecoder().feed(data):
            if kind == "frame" and FailFirstBatchWrite.armed and \
                    messages.MESSAGES[messages.parse_request(payload)[0]][0] == "SEAL_BATCH":
                FailFirstBatchWrite.armed = False
                raise DeviceUnavailable("device link lost: EIO")
        CoreClient._write(self, data)


def test_a_group_that_cannot_go_out_keeps_the_order_of_a_batch_request(tmp_path):
    bench = Bench()
    owner, store = pipelined_owner(tmp_path, bench, FailFirstBatchWrite)
    warm = ["1p:warm-%d" % i for i in range(20)]
    assert [s for s, _ in owner.seal_many([pending_of(k) for k in warm], 30)] == [200] * 20
    assert owner._depth() == PIPELINE_DEPTH
    FailFirstBatchWrite.armed = True
    keys = ["1p:order-%d" % i for i in range(30)]
    results = owner.seal_many([pending_of(k) for k in keys], 30)
    assert [s for s, _ in results] == [200] * 30
    assert counters(results) == list(range(21, 51))      # the failed group's items before the next group's
    assert_exactly_once(bench, store, warm + keys)


class SlowBoard(Watching):
    """Seals like a board: each invoice of a SEAL_BATCH takes ``EACH`` seconds, which the host
    sees as the wait for the answer (the in-memory device answers as it is written)."""

    EACH = 0.01
    delay = 0.0

    def _write(self, data):
        for kind, seq, payload in frames.FrameDecoder().feed(data):
            mid, mapping = messages.parse_request(payload)
            if kind == "frame" and messages.MESSAGES[mid][0] == "SEAL_BATCH":
                fields = messages.request_fields(mid, mapping)
                if fields["offset"] == 0:
                    self.document = bytearray()
                self.document.extend(fields["data"])
                if len(self.document) == fields["total"]:
                    self.delay += SlowBoard.EACH * len(batch.decode(bytes(self.document)))
        Watching._write(self, data)

    def _await(self, seq):
        time.sleep(self.delay)
        self.delay = 0.0
        return Watching._await(self, seq)


def test_a_slow_board_is_never_pipelined_even_after_a_group_of_one(tmp_path):
    bench = Bench()
    Watching.out_at_send = []
    owner, store = pipelined_owner(tmp_path, bench, SlowBoard)
    owner.timeout = 0.5      # a group of 16 at 10 ms each is 0.16 s: more than a quarter of it
    lost = []
    owner._drop = lambda why, real=owner._drop: (lost.append(why), real(why))
    keys = ["1p:board-%d" % i for i in range(17)]          # 16, then a group of 1
    assert counters(owner.seal_many([pending_of(k) for k in keys], 30)) == list(range(1, 18))
    more = ["1p:board-more-%d" % i for i in range(40)]
    assert counters(owner.seal_many([pending_of(k) for k in more], 30)) == list(range(18, 58))
    assert_exactly_once(bench, store, keys + more)
    assert owner._depth() == 1 and max(Watching.out_at_send) == 1 and lost == []


def test_groups_grow_again_once_the_records_are_small_again(tmp_path):
    """answer_fits follows the records: invoices with all 14 tax groups make records an answer
    holds five of; once records are small again the groups grow back to what the answer holds
    (hostd/owner/batching.py answer_room), instead of staying at five until a restart."""
    from protocol import profile_host, timefmt
    from tests.devkit import encode_invoice, make_invoice

    bench = Bench()
    owner, store = pipelined_owner(tmp_path, bench, Watching)
    codes = [group[0] for group in profile_host.default()["groups"]]
    wide = encode_invoice(make_invoice(lines=[(1000, 1000 + i, code) for i, code in enumerate(codes)],
                                       timestamp=timefmt.format_time(int(time.time()))))
    keys = ["1p:wide-%d" % i for i in range(40)]
    assert counters(owner.seal_many([pending_of(k, canonical=wide) for k in keys], 30)) == list(range(1, 41))
    narrow = owner.answer_fits
    assert 2 <= narrow <= 6 and max(k for k in owner.group_sizes if k != 8) == narrow   # 8 of them fill a batch
    owner.group_sizes.clear()
    spy = Spy(owner, store, bench)
    small = ["1p:small-%d" % i for i in range(100)]
    assert counters(owner.seal_many([pending_of(k) for k in small], 30)) == list(range(41, 141))
    assert owner.answer_fits >= 2 * narrow and max(owner.group_sizes) == owner.answer_fits
    assert "READ_JOURNAL" not in spy.messages     # the room it counts on is never more than the answer's
    assert_exactly_once(bench, store, keys + small)


def test_depth_is_as_many_full_groups_as_half_the_timeout_holds(tmp_path):
    bench = Bench()
    owner, _ = pipelined_owner(tmp_path, bench, Watching)
    owner.timeout = 2.0
    for each, depth in ((None, 1), (0.0, PIPELINE_DEPTH), (0.001, 3), (0.02, 3), (0.025, 2), (0.03, 2),
                        (0.04, 1), (0.5, 1)):
        owner.group_seconds = each      # seconds per request of the last group answered
        assert owner._depth() == depth, each
