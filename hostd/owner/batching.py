"""Group commit on the owner thread (issue 15): queued one-call seals go to the device K at a time.

Mixed into Owner. ``seal_grouped`` queues an accepted one-call request (hostd/api/accept.py) and
returns a future; one owner job at a time drains the queue:

- **K adapts to the queue.** A drain takes what is waiting, up to MAX_ITEMS requests and
  MAX_BATCH bytes of batch document (protocol/batch.py). An idle daemon finds one request and
  seals it with a plain SEAL (``seal_new``): a lone POS sees the single-lane latency. Under load
  the requests that arrived while the device worked go together in one SEAL_BATCH (PROTOCOL.md
  4.24): one frame upload, one flash sync, and one durable SQLite transaction for the whole
  group (``Store.record_sealed_batch``): the requests' answers, the invoices, their events, the
  journal mirror of every record the batch wrote and the filing mark.
- **Pipelined.** While groups are answered fast against the link timeout (an emulator; not a
  board, where a group takes seconds), up to three groups are out at once: groups i+1 and i+2 are
  written, chunks and all, while the device seals group i, so the device finds the next one
  waiting when it answers, and group i is filed while the device seals the ones after it. The
  device executes frames in the order they arrive (device/link.py); the client keeps answers for
  whoever awaits them and never retransmits a request sent before the last one
  (hostd/link/client.py). While pipelined, a group holds no more requests than the last answer
  had room for the records of, since a READ_JOURNAL for the rest would wait behind the next
  group. Anything that needs the link alone (requests to seal one by one, archiving) first reads
  every group that is out. Once a drain has sealed MAX_ROUNDS groups and another owner job waits
  (exports in slices, INFO, archiving), it finishes the batch request it is in and gives the
  owner back; with no job waiting it goes on, so the link never runs empty between requests.
- **Credit types stay single.** A credit note or export credit needs its EVIDENCE first, so it is
  never batched: it goes through ``seal_new`` as its own job (the device would refuse it in a
  batch with BATCH_CREDIT anyway, and that refusal, too, sends it down the single path).

Exactly once, as on the single path (hostd/owner/sealing.py): the request rows of a group are
stored in one commit without a sync before the batch goes out, so a daemon crash finds them, and
the journal has the seals (reconcile files them at the next start). Whatever is not a clean
answer for an entry (the link lost or timing out mid-batch, a device that does not know
SEAL_BATCH, a transient refusal such as JOURNAL_FULL or CLOCK_UNSET, a key stored before) goes
on in ``seal``, the state machine on the stored row: it SEALs the same request id again, and the
device answers the seal it made or seals now, exactly once. Final refusals (the invoice family,
REQUEST_ID_REUSED) are stored as the answer in the group's transaction.

``seal_queued`` (POST /api/v1/invoices/batch) puts the items of one request into the same queue,
together and in order, so the pipeline runs on from one request into the next without an empty
link between them (a group may hold the end of one request and the start of the next). A drain
gives way to other owner jobs only between two requests; an item stored before (it goes on alone)
sends every later request's items in its group alone after it; and should a drain fail, the rest
of the request it was in is answered with that failure and never sealed: so a request's good
items get consecutive fiscal numbers. A request with a credit type, or one the device cannot
batch, goes as one ``seal_many`` job, in order, through the same pipeline. One exception to the
order: when groups are out and the first one's entries are refused for a transient reason
(or its answer is damaged on a serial line and cannot be sent again), those behind it, which may
hold the next request's items, are sealed before them.
"""

import collections
import concurrent.futures
import hashlib
import logging
import sqlite3
import threading
import time

from protocol import batch, frames, invoice, record
from hostd.books import envelope
from hostd.errors import DeviceRefused, DeviceUnavailable, HostdError, KeyReused, StoreUnavailable
from hostd.intake import fastcbor
from hostd.owner.reconcile import UNFILEABLE
from hostd.owner.sealing import FINAL_REFUSALS

log = logging.getLogger("fiscal.owner")
MAX_ROUNDS = 16     # groups a drain seals before it gives way, between two requests, to a waiting owner job
# groups out on a fast link at once: with two, a filing that took longer than the device's next
# group (an fsync of the store that stalls, the event loop holding the GIL) left the device idle
# after about one group in eight under the batch bench; a third one waiting covers most of that
PIPELINE_DEPTH = 3
ANSWER_HEAD, RESULT_MAX = 99, 8   # a SEAL_BATCH answer's bytes besides its records (answer_room)


class _Item:
    """One queued request, or one item of a batch request: its pending row, its deadline and where
    its answer goes (once)."""

    __slots__ = ("pending", "deadline", "_done", "answered", "joined")

    def __init__(self, pending, deadline, done, joined=False):
        self.pending, self.deadline, self._done, self.answered = pending, deadline, done, False
        self.joined = joined   # the item before it in the queue is of the same batch request

    def done(self, result, exc):
        if not self.answered:
            self.answered = True
            self._done(result, exc)


class _Group:
    """One SEAL_BATCH: its items, which were sent, and what became of each."""

    def __init__(self, items):
        self.items = items
        self.sent = []       # indices of the items in the batch document, in order
        self.later = []      # indices that go on in ``seal`` one by one
        self.started = None  # the client's token while the last chunk's answer is awaited
        self.sent_at = 0.0   # time.monotonic() once its last chunk was written
        self.outcome = None  # DeviceClient.seal_batch_finish's answer
        self.filed = []      # (index, sealed result, record fields)
        self.failed = []     # (index, http status, response) final refusals
        self.partial = False  # a sealed entry is not filed here: reconcile mirrors and files the records


def batchable(pending):
    """Whether a request may go into a SEAL_BATCH: not a credit type, and small enough."""
    return (pending.get("invoice_type") not in invoice.CREDIT_TYPES
            and batch.document_size([len(pending["canonical"])]) <= batch.MAX_BATCH)


def answer_room(records):
    """How many records as long as the longest of ``records`` a SEAL_BATCH answer has room for, at
    the least: device/batch.py ``_answer`` keeps MAX_PAYLOAD less the encoded answer without
    records (99 bytes at most with its margin, for seqs below 2**32) for the records, and each
    entry adds its result (8 bytes at most) and its record with a 2- or 3-byte head. Not counted:
    a refused entry's longer result and a fill EVENT the batch writes besides its invoices; either
    costs one READ_JOURNAL, and the next answer sets ``answer_fits`` to what it carried."""
    longest = max(len(rec) for rec in records)
    return (frames.MAX_PAYLOAD - ANSWER_HEAD) // (longest + (3 if longest >= 256 else 2) + RESULT_MAX)


def _running_future():
    """A Future already running: a ``cancel()`` from the event loop (a client gone, shutdown) is
    then refused instead of making the owner thread's ``set_result`` raise InvalidStateError."""
    future = concurrent.futures.Future()
    future.set_running_or_notify_cancel()
    return future


def _failure(exc):
    """What a request hears of an unforeseen failure: the exception, or for a BaseException
    (KeyboardInterrupt, SystemExit) a DeviceUnavailable naming it."""
    return exc if isinstance(exc, Exception) else DeviceUnavailable("stopped: %r" % exc)


def _resolve(item, fn, *args):
    """Run ``fn(*args)`` for one item and hand its result (or error) to the item."""
    try:
        item.done(fn(*args), None)
    except Exception as exc:   # every item hears its own outcome; nothing is left waiting
        item.done(None, exc)


class Batching:
    """Expects Owner's ``store``, ``run``, ``device``, ``client``, ``_drop``, ``_crash_point``,
    ``seal``, ``seal_new``, ``_filing``, ``_after_job``, ``on_event``, ``sealed_since_check``,
    ``archive_due``, ``journal_full``."""

    def _group_init(self):
        self.queue = collections.deque()
        self.queue_lock = threading.Lock()
        self.draining = False
        self.batching = True   # False once the device refused SEAL_BATCH as unknown (older firmware)
        self.group_sizes = collections.Counter()   # SEAL_BATCH sizes sent (the tests read them)
        self.group_seconds = None   # the device's time per request of the last group answered (``_depth``)
        self.answered_at = 0.0      # time.monotonic() when that answer was read
        self.answer_fits = None     # records a SEAL_BATCH answer has room for, once one could not carry all

    # -- the one-call path, grouped ----------------------------------------------------------------
    def seal_grouped(self, pending, budget):
        """A concurrent.futures.Future of (http status, response bytes) for an accepted one-call
        request, sealed with whatever else is queued (module docstring)."""
        if not self.batching or not batchable(pending):
            return self.run(self.seal_new, pending, budget)
        future = _running_future()

        def done(result, exc):
            if exc is None:
                future.set_result(result)
            else:
                future.set_exception(exc)
        self._enqueue([_Item(pending, time.monotonic() + budget, done)])
        return future

    def _enqueue(self, items):
        """Queue ``items`` together, in order, and start a drain unless one is running."""
        with self.queue_lock:
            self.queue.extend(items)
            if not self.draining:
                self.draining = True
                self.run(self._drain)

    def _drain(self):
        rounds = [0]

        def take(idle):
            with self.queue_lock:
                if not self.queue:
                    return []
                giving_way = rounds[0] >= MAX_ROUNDS and self.jobs_waiting()
                if giving_way and not self.queue[0].joined:
                    return []   # between two requests: the jobs waiting go first
                rounds[0] += 1
                if (idle and len(self.queue) == 1) or not self.batching:   # alone: idle, or old firmware
                    return [self.queue.popleft()]
                return self._take(self.queue, self._group_cap(), giving_way)
        try:
            self._pipeline(take)
        except BaseException as exc:
            log.exception("a seal drain failed; the requests it had taken and the rest of the batch request it "
                          "was in hear it")
            with self.queue_lock:
                rest = []
                while self.queue and self.queue[0].joined:
                    rest.append(self.queue.popleft())
            for item in rest:   # never stored: nothing of them was sealed
                item.done(None, _failure(exc))
            raise
        finally:
            with self.queue_lock:
                if self.queue:
                    self.run(self._drain)
                else:
                    self.draining = False

    @staticmethod
    def _take(queue, cap, this_request=False):
        """Pop the longest prefix of ``queue`` that fits one batch document (and ``cap``), up to
        a request that cannot be batched; with ``this_request``, no item of the next request."""
        out, sizes = [], []
        while queue and len(out) < cap and not (this_request and out and not queue[0].joined) \
                and batchable(queue[0].pending):
            n = len(queue[0].pending["canonical"])
            if out and batch.document_size(sizes + [n]) > batch.MAX_BATCH:
                break
            sizes.append(n)
            out.append(queue.popleft())
        return out

    # -- POST /api/v1/invoices/batch ----------------------------------------------------------------
    def seal_queued(self, pendings, budget):
        """A concurrent.futures.Future of [(http status, response bytes)] for the requests of one
        batch, in order: queued together behind whatever waits (module docstring), or one
        ``seal_many`` job when one of them cannot go into a SEAL_BATCH. ``budget`` counts from
        now, as a one-call seal's does."""
        if not pendings or not self.batching or not all(batchable(p) for p in pendings):
            return self.run(self.seal_many, pendings, budget)
        whole = _running_future()
        out = [None] * len(pendings)
        left = [len(pendings)]

        def answer(i):
            def done(result, exc):   # on the owner thread, once per item
                if exc is None:
                    out[i] = result
                elif isinstance(exc, HostdError):
                    out[i] = envelope.error_of(exc)[:2]
                elif not whole.done():
                    whole.set_exception(exc)   # a bug: the request hears it, as from seal_many
                left[0] -= 1
                if not left[0] and not whole.done():
                    whole.set_result(out)
            return done
        deadline = time.monotonic() + budget
        self._enqueue([_Item(p, deadline, answer(i), joined=i > 0) for i, p in enumerate(pendings)])
        return whole

    def seal_many(self, pendings, budget):
        """Seal each request in order, one job: [(http status, response bytes)]. A request the
        device cannot take now answers its own error envelope; the others go on."""
        deadline = time.monotonic() + budget
        out = [None] * len(pendings)
        bugs = []

        def answer(i):
            def done(result, exc):
                if exc is None:
                    out[i] = result
                elif isinstance(exc, HostdError):
                    out[i] = envelope.error_of(exc)[:2]
                else:
                    bugs.append(exc)
            return done
        items = [_Item(p, deadline, answer(i), joined=i > 0) for i, p in enumerate(pendings)]
        queue = collections.deque(items)

        def take(idle):
            if not queue:
                return []
            if not self.batching or not batchable(queue[0].pending):
                return [queue.popleft()]
            return self._take(queue, self._group_cap())
        self._pipeline(take)
        if bugs:
            raise bugs[0]
        return out

    # -- the pipeline -------------------------------------------------------------------------------
    def _pipeline(self, take):
        """Seal the groups ``take(idle)`` hands out ([] when none is left) until it runs dry, with
        up to ``_depth()`` groups out on the link and each group filed while the next one is
        sealed (module docstring). Should anything unforeseen fail, every request taken and not
        answered yet hears that error."""
        taken = []

        def counted(idle):
            items = take(idle)
            taken.extend(items)
            return items
        try:
            self._run_pipeline(counted)
        except BaseException as exc:
            self._drop("a batch went wrong: %s" % exc)   # the link's state is unknown: reconnect
            for item in taken:
                item.done(None, _failure(exc))
            raise

    def _run_pipeline(self, take):
        out = collections.deque()   # groups sent whose answers are not read yet, oldest first
        held = []                   # a request taken that must be sealed alone, once nothing is out

        def top_up(idle):
            # a group that did not go out (link lost, refused as a whole, rows stored before) has
            # requests to seal alone: nothing more goes out before them, so the order holds
            while not held and len(out) < self._depth() and not (out and out[-1].later):
                items = take(idle and not out)
                if not items:
                    return
                if len(items) == 1 and ((idle and not out) or not self.batching or not batchable(items[0].pending)):
                    held.extend(items)   # a lone request on an idle link: one plain SEAL
                    return
                group = self._start_group(items, pipelined=bool(out))
                if group is not None:
                    out.append(group)
        while True:
            top_up(True)
            if not out:
                if not held:
                    return
                item = held.pop()
                _resolve(item, self.seal_new, item.pending, max(0.0, item.deadline - time.monotonic()))
                continue
            group = out.popleft()
            self._finish_group(group)
            if group.later or held or self.archive_due():
                # requests to seal alone, or archiving: nothing else may be out on the link then
                done = [group]
                while out:
                    done.append(out.popleft())
                    self._finish_group(done[-1])
                for each in done:
                    self._file_group(each)
                for each in done:
                    self._later(each)
                self._after_job()
                continue
            top_up(False)               # group i+1 out before group i is filed: pipelined
            self._file_group(group)

    def _depth(self):
        """How many groups may be out at once: as many full groups of MAX_ITEMS, up to
        PIPELINE_DEPTH, as the device's last measured time per request keeps within half the link
        timeout (an emulator, a fast board), so the device finds the next group waiting when it
        answers one even while the owner is still filing an earlier group; one on a slow board
        (the answer to a group sent behind others waits for all of them, and an earlier request
        cannot be retransmitted). Unknown (no group answered since the last connect or lost
        answer) is one."""
        each = self.group_seconds
        if each is None:
            return 1
        if each <= 0:
            return PIPELINE_DEPTH
        return max(1, min(PIPELINE_DEPTH, int(self.timeout / 2 / (each * batch.MAX_ITEMS))))

    def _group_cap(self):
        """Requests per group: MAX_ITEMS, or while groups are pipelined as many as the device's
        answer last had room for the records of. A record that is not in the answer is read with
        READ_JOURNAL, which would wait behind the group sent after it, and the device would then
        find nothing waiting when it is done."""
        if self._depth() < 2 or self.answer_fits is None:
            return batch.MAX_ITEMS
        return max(2, min(batch.MAX_ITEMS, self.answer_fits))

    def _start_group(self, items, pipelined=False):
        """Store the group's request rows (one commit, no sync) and send its SEAL_BATCH; with
        ``pipelined`` behind a group the device is still sealing, without waiting for any answer."""
        group = _Group(items)
        try:
            inserted = self.store.add_pendings([item.pending for item in items])
        except sqlite3.Error as exc:
            for item in items:
                item.done(None, StoreUnavailable("the store cannot take the request (%s); nothing was sealed, "
                                                 "retry with the same Idempotency-Key" % exc))
            return None
        for i, fresh in enumerate(inserted):
            (group.sent if fresh else group.later).append(i)
        if group.later and group.sent:
            # an item stored before goes on alone, after the group: the items of the requests
            # after its own go alone behind it, so each request's numbers stay consecutive
            end = group.later[0]
            while end + 1 < len(items) and items[end + 1].joined:
                end += 1
            group.later += [i for i in group.sent if i > end]
            group.sent = [i for i in group.sent if i <= end]
        if not group.sent:
            return group
        deadline = min(items[i].deadline for i in group.sent)
        entries = [(items[i].pending["request_id"], items[i].pending["canonical"]) for i in group.sent]
        try:
            group.started = self.device(deadline).seal_batch_start(entries, pipelined)
            group.sent_at = time.monotonic()
        except DeviceUnavailable as exc:
            self._drop(exc.detail)
            self._lost(group, exc)
        except DeviceRefused as exc:
            self._batch_refused(group, exc)
        self.group_sizes[len(group.sent)] += 1
        return group

    def _lost(self, group, exc):
        self.group_seconds = None   # measure the device again before pipelining to it
        log.warning("a SEAL_BATCH of %d requests got no answer (%s): each goes on by its request id",
                    len(group.sent), exc.detail)
        self._fall_back(group)

    def _fall_back(self, group):
        group.later.extend(group.sent)
        group.sent, group.started = [], None

    def _batch_refused(self, group, exc):
        """The batch refused as a whole, or a READ_JOURNAL or STATUS reading its results refused:
        every request goes on alone by its request id (the device answers those it sealed)."""
        if exc.name == "MESSAGE_UNKNOWN":
            log.warning("the device does not know SEAL_BATCH (older firmware): sealing one invoice at a time")
            self.batching = False
        else:
            log.error("the device refused a SEAL_BATCH or the reading of its results (%s: %s): its requests go on "
                      "one by one by request id", exc.name, exc.detail)
        self._fall_back(group)

    def _finish_group(self, group):
        """Read the batch's answer and records (the last link traffic of the group)."""
        if group.started is None:
            return
        started, group.started = group.started, None
        try:
            if self.client is None:
                raise DeviceUnavailable("the link was lost before the batch's answer")
            group.outcome = self.client.seal_batch_finish(started)
            now = time.monotonic()
            # the device's time per request of this group: from its sending, or from the answer to
            # the group before it when it was sent behind that one
            self.group_seconds = (now - max(group.sent_at, self.answered_at)) / max(1, len(group.sent))
            self.answered_at = now
            carried, records = group.outcome["in_answer"], group.outcome["records"]
            if carried < len(records):
                self.answer_fits = carried
            elif carried and self.answer_fits is not None:
                # smaller records again: the groups grow back, one request per answer, so a wide
                # invoice now and then costs one READ_JOURNAL, not one every other group
                self.answer_fits = max(carried, min(self.answer_fits + 1, answer_room(records)))
        except DeviceUnavailable as exc:
            self._drop(exc.detail)
            self._lost(group, exc)
            return
        except DeviceRefused as exc:
            self._batch_refused(group, exc)
            return
        self._crash_point("after_commit_answered")
        self._crash_point("after_batch_answered")
        for i, outcome in zip(group.sent, group.outcome["outcomes"]):
            pending = group.items[i].pending
            if outcome[0] == "sealed":
                sealed = outcome[1]
                fields = fastcbor.decode_record(sealed[record.S_RECORD] + sealed[record.S_SIGNATURE])[0]
                if fields.get(record.K_REQUEST_ID) != pending["request_id"] or \
                        fields.get(record.K_INVOICE_HASH) != hashlib.sha256(pending["canonical"]).digest():
                    group.items[i].done(None, DeviceUnavailable("device sealed a different invoice under this request"))
                    group.partial = True
                    continue
                group.filed.append((i, sealed, fields))
                if not outcome[2]:
                    self.sealed_since_check += 1
            elif outcome[1] in FINAL_REFUSALS:
                group.failed.append((i, 422, envelope.error_body("FISCALIZATION_FAILED", outcome[2],
                                                                 device_code=outcome[1])))
            else:   # transient (JOURNAL_FULL, CLOCK_UNSET, STORAGE_FAILURE, BATCH_CREDIT ...): alone, in seal
                group.later.append(i)

    def _file_group(self, group):
        """File the whole group in one durable transaction, then answer its requests."""
        if group.outcome is None and not group.failed:
            return
        filed, quarantined, answers = [], [], []
        for i, sealed, fields in group.filed:
            pending = group.items[i].pending
            try:
                doc, body, events = self._filing(pending, sealed, fields)
            except UNFILEABLE as exc:
                body = envelope.sealed_body(sealed)
                reason = "%s: %s" % (type(exc).__name__, getattr(exc, "detail", exc))
                log.error("journal record %d (%s) quarantined, not filed: %s", fields[record.K_SEQ],
                          sealed[record.S_FISCAL_NUMBER], reason)
                quarantined.append((fields[record.K_SEQ], sealed[record.S_FISCAL_NUMBER], reason, body.decode(),
                                    pending["key"], body))
                answers.append((i, (200, body)))
                continue
            except DeviceUnavailable as exc:   # a rolled-back device: that request hears it
                group.items[i].done(None, exc)
                group.partial = True
                continue
            filed.append((doc, pending["key"], body, events))
            answers.append((i, (200, body)))
        failed = [(group.items[i].pending["key"], status, body) for i, status, body in group.failed]
        answers += [(i, (status, body)) for i, status, body in group.failed]
        mirror = None
        outcome = group.outcome
        if outcome is not None and outcome["records"] and not group.partial:
            prev, hashes = outcome["prev"], []
            for rec in outcome["records"]:
                prev = record.record_hash(prev, rec)
                hashes.append(prev)
            mirror = (outcome["first"], outcome["records"], hashes, outcome["prev"])
        try:
            self.store.record_sealed_batch(filed, mirror, failed, quarantined)
        except sqlite3.Error as exc:
            # the journal holds the seals: the retry with the same key SEALs again, is answered the
            # same seal and files it (as a failed filing on the single path)
            for i, _ in answers:
                group.items[i].done(None, StoreUnavailable("the store cannot file the sealed invoice (%s); retry "
                                                           "with the same Idempotency-Key" % exc))
            return
        for i, result in answers:
            group.items[i].done(result, None)
        if filed and self.on_event is not None:
            self.on_event()

    def _later(self, group):
        """The requests of the group that go on alone, in order, through the stored row."""
        for i in sorted(group.later):
            item = group.items[i]
            _resolve(item, self._seal_stored, item.pending, max(0.0, item.deadline - time.monotonic()))
        group.later = []

    def _seal_stored(self, pending, budget):
        row = self.store.request(pending["key"])
        if row is None:   # its row was never stored
            return self.seal_new(pending, budget)
        if row["body_hash"] != pending["body_hash"]:
            raise KeyReused()
        return self.seal(pending["key"], budget)
