"""Group commit on the owner (hostd/owner/batching.py, issue 15), in process against the real core.

Queued one-call seals go to the device as SEAL_BATCH groups, K adapting to the queue (a lone
request is a plain SEAL); each group is filed in ONE SQLite transaction with the journal mirror
and the filing mark; credit types stay on the single path; anything but a clean answer (a lost
answer, an old firmware, a transient refusal, a key stored before) goes on through the stored
row, exactly once.
"""

import hashlib
import json
import threading
import time

import pytest

from hostd.errors import DeviceUnavailable, KeyReused
from hostd.intake.canonical import parse_invoice
from hostd.store.store import COLUMNS
from protocol import messages, record
from tests.daemonkit import authored, sample
from tests.devkit import Bench, encode_invoice, make_invoice
from tests.test_owner import CoreClient, make_owner


def pending_of(key, raw=None, canonical=None):
    """The ``pending`` dict hostd/api/accept.py makes of a request (``canonical`` overrides the
    bytes sent to the device, to craft an invoice the device refuses)."""
    raw = raw if raw is not None else sample(cashier_id=key[-40:])
    parsed = parse_invoice(raw)
    out = {"key": key, "body_hash": hashlib.sha256(raw).digest(), "canonical": canonical or parsed.canonical,
           "invoice_json": raw.decode(), "created": time.time(), "request_id": record.request_id_for(key),
           "state": "new", "reference": None}
    for name in COLUMNS:
        out[name] = parsed.columns.get(name)
    return out


class Spy:
    """Counts the device messages the owner sends and the store's sealing transactions."""

    def __init__(self, owner, store, bench):
        self.messages = []
        self.batches = 0
        self.singles = 0
        real_handle = bench.core.handle

        def handle(payload):
            mid = messages.parse_request(payload)[0]
            self.messages.append(messages.MESSAGES[mid][0])
            return real_handle(payload)
        bench.core.handle = handle
        real_batch, real_single = store.record_sealed_batch, store.record_sealed

        def batch_tx(*args, **kw):
            self.batches += 1
            return real_batch(*args, **kw)

        def single_tx(*args, **kw):
            self.singles += 1
            return real_single(*args, **kw)
        store.record_sealed_batch, store.record_sealed = batch_tx, single_tx


def counters(results):
    return [json.loads(body)["payload"]["counter"] for status, body in results]


def assert_exactly_once(bench, store, keys):
    """Every key sealed once on the device, filed once, the mirror complete and marked filed."""
    rids = [record.request_id_for(k) for k in keys]
    recs = [r for r in bench.records() if record.type_of(r) == record.INVOICE]
    got = [bytes(r[3:19]) for r in recs]
    for rid in rids:
        assert got.count(rid) == 1
    assert bench.verify()["counter"] == bench.core.counter
    assert store.journal_seq() == bench.core.seq and store.meta("filed_seq") == bench.core.seq
    filed = store.db.execute("SELECT counter FROM invoices ORDER BY counter").fetchall()
    assert [r[0] for r in filed] == list(range(1, bench.core.counter + 1))


def test_batch_endpoint_seals_in_groups_one_transaction_each(tmp_path):
    bench = Bench()
    owner, store = make_owner(tmp_path, bench)
    owner.device(time.monotonic() + 5)
    spy = Spy(owner, store, bench)
    syncs = bench.flash.syncs
    keys = ["1p:many-%d" % i for i in range(40)]
    results = owner.seal_many([pending_of(k) for k in keys], 15)
    assert [s for s, _ in results] == [200] * 40
    assert counters(results) == list(range(1, 41))            # in order, consecutive
    # 16, then (pipelined) as many as the first answer had room for the records of
    fits = owner.answer_fits
    groups = 1 + -(-(40 - 16) // fits)
    assert sorted(owner.group_sizes.elements(), reverse=True)[0] == 16 and sum(owner.group_sizes.elements()) == 40
    assert spy.messages.count("SEAL") == 0 and spy.batches == groups and spy.singles == 0
    assert bench.flash.syncs - syncs == groups                 # one flash sync per group
    assert_exactly_once(bench, store, keys)
    for k, (status, body) in zip(keys, results):
        row = store.request(k)
        assert row["state"] == "done" and row["response"] == body
    again = owner.seal_many([pending_of(k) for k in keys], 15)  # a retried batch replays by key
    assert again == results and bench.core.counter == 40


def queued(owner, keys):
    """Each key's one-call seal, all queued while the owner is busy: their (status, body)."""
    gate = threading.Event()
    owner.run(gate.wait, 10)
    futures = [owner.seal_grouped(pending_of(k), 15) for k in keys]
    gate.set()
    return [f.result(20) for f in futures]


def test_queued_seals_go_together_and_an_idle_one_alone(tmp_path):
    bench = Bench()
    owner, store = make_owner(tmp_path, bench)
    owner.run(owner.device, time.monotonic() + 5).result()
    spy = Spy(owner, store, bench)
    alone = owner.seal_grouped(pending_of("1p:idle"), 15).result(10)
    assert alone[0] == 200 and spy.messages == ["SEAL"] and spy.batches == 0   # K=1: a plain SEAL
    keys = ["1p:queued-%d" % i for i in range(20)]
    results = queued(owner, keys)
    assert [s for s, _ in results] == [200] * 20 and counters(results) == list(range(2, 22))
    assert spy.messages.count("SEAL") == 1 and spy.batches == 2          # 16, then 4 pipelined
    assert sorted(owner.group_sizes.items()) == [(4, 1), (16, 1)]
    assert_exactly_once(bench, store, keys + ["1p:idle"])
    owner.close()


def test_credit_types_stay_on_the_single_path(tmp_path):
    bench = Bench()
    owner, store = make_owner(tmp_path, bench)
    owner.run(owner.device, time.monotonic() + 5).result()
    called = []
    real = owner.seal_new
    owner.seal_new = lambda pending, budget: (called.append(pending["key"]), real(pending, budget))[1]
    sold = owner.seal_grouped(pending_of("1p:sold"), 15).result(10)
    number = json.loads(sold[1])["payload"]["fiscal_number"]
    # the host's credit intake is another module's: the request as it would come out of it
    credit = pending_of("1p:credit", canonical=encode_invoice(make_invoice(itype="credit_note", credit=number,
                                                                            timestamp=authored())))
    credit["invoice_type"] = "credit_note"
    future = owner.seal_grouped(credit, 1)        # without EVIDENCE the device refuses it, on seal_new
    with pytest.raises(DeviceUnavailable):
        future.result(10)
    assert called == ["1p:sold", "1p:credit"] and not owner.group_sizes
    # in the batch endpoint, a credit between two groups is sealed alone, in order
    pendings = [pending_of("1p:a-%d" % i) for i in range(3)] + [dict(credit, key="1p:credit-2")] + \
        [pending_of("1p:b-%d" % i) for i in range(3)]
    pendings[3]["request_id"] = record.request_id_for("1p:credit-2")
    results = owner.run(owner.seal_many, pendings, 2).result(30)
    assert called[-1] == "1p:credit-2" and sorted(owner.group_sizes.items()) == [(3, 2)]
    assert counters(results[:3] + results[4:]) == [2, 3, 4, 5, 6, 7]
    owner.close()


def test_refusals_in_a_group_final_stored_transient_alone(tmp_path):
    bench = Bench()
    owner, store = make_owner(tmp_path, bench)
    owner.device(time.monotonic() + 5)
    bad = make_invoice()
    bad[10][3] += 1                                            # totals off: the device refuses it
    pendings = [pending_of("1p:ok-0"), pending_of("1p:bad", canonical=encode_invoice(bad)), pending_of("1p:ok-1")]
    store.add_pending(dict(pendings[2]))                       # stored before: goes on through its row
    results = owner.seal_many(pendings, 15)
    assert [s for s, _ in results] == [200, 422, 200]
    refused = json.loads(results[1][1])
    assert refused["code"] == "FISCALIZATION_FAILED" and refused["device_code"] == "TOTALS_MISMATCH"
    assert store.request("1p:bad")["state"] == "done" and store.request("1p:bad")["status"] == 422
    assert counters([results[0], results[2]]) == [1, 2]
    with pytest.raises(KeyReused):
        other = pending_of("1p:ok-0", sample(cashier_id="another body"))
        owner.seal_grouped(other, 15).result(10)
    assert_exactly_once(bench, store, ["1p:ok-0", "1p:ok-1"])


def test_a_device_without_seal_batch_seals_one_by_one(tmp_path):
    bench = Bench()
    owner, store = make_owner(tmp_path, bench)
    owner.device(time.monotonic() + 5)
    real = bench.core.handle

    def old_firmware(payload):
        if messages.parse_request(payload)[0] == messages.msg_id("SEAL_BATCH"):
            return messages.encode_error(0, messages.MessageError("MESSAGE_UNKNOWN", "message id 19 is not known"))
        return real(payload)
    bench.core.handle = old_firmware
    keys = ["1p:old-%d" % i for i in range(5)]
    results = owner.seal_many([pending_of(k) for k in keys], 15)
    assert counters(results) == [1, 2, 3, 4, 5] and owner.batching is False
    assert_exactly_once(bench, store, keys)


def test_requests_queued_when_the_device_refuses_seal_batch_go_alone(tmp_path):
    bench = Bench()
    owner, store = make_owner(tmp_path, bench)
    owner.run(owner.device, time.monotonic() + 5).result()
    real, batches = bench.core.handle, []

    def old_firmware(payload):
        if messages.parse_request(payload)[0] == messages.msg_id("SEAL_BATCH"):
            batches.append(1)
            return messages.encode_error(0, messages.MessageError("MESSAGE_UNKNOWN", "message id 19 is not known"))
        return real(payload)
    bench.core.handle = old_firmware
    keys = ["1p:old-queued-%d" % i for i in range(30)]
    results = queued(owner, keys)
    assert [s for s, _ in results] == [200] * 30 and counters(results) == list(range(1, 31))
    assert owner.batching is False and len(batches) == 1       # refused once; the rest go as plain SEALs
    assert_exactly_once(bench, store, keys)
    owner.close()


class LosingClient(CoreClient):
    """Loses the answer to the last chunk of the first SEAL_BATCH (the device did seal it)."""

    lost = False

    def _await(self, seq):
        answer = CoreClient._await(self, seq)
        if answer is not None and not LosingClient.lost and messages.decode_response(answer)[0] == "SEAL_BATCH" \
                and "results" in messages.decode_response(answer)[3]:
            LosingClient.lost = True
            raise DeviceUnavailable("device link lost: the answer never came")
        return answer


def test_a_lost_batch_answer_recovers_every_request_exactly_once(tmp_path):
    from hostd.owner.owner import Owner
    from hostd.store.store import Store
    bench = Bench()
    store = Store(str(tmp_path / "fiscal.sqlite"))
    owner = Owner("memory", store, client_factory=lambda path, timeout, on_sent: LosingClient(bench, on_sent=on_sent))
    owner.device(time.monotonic() + 5)
    keys = ["1p:lost-%d" % i for i in range(10)]
    results = owner.seal_many([pending_of(k) for k in keys], 15)
    assert LosingClient.lost and [s for s, _ in results] == [200] * 10
    assert counters(results) == list(range(1, 11))
    assert_exactly_once(bench, store, keys)
    for k, (status, body) in zip(keys, results):            # what each was told is what the device sealed
        rid = record.request_id_for(k)
        sealed = bench.ok("STATUS", request_id=rid)["sealed"]
        assert json.loads(body)["payload"]["fiscal_number"] == sealed[record.S_FISCAL_NUMBER]


def test_an_entry_that_cannot_be_filed_leaves_the_mirror_to_reconcile(tmp_path):
    """A counter already filed with another record (a replaced device) refuses that request; the
    others are answered, and the batch's records are left for reconcile rather than marked filed
    past an invoice nobody filed."""
    bench = Bench()
    owner, store = make_owner(tmp_path, bench)
    owner.device(time.monotonic() + 5)
    real = store.sealed_ledger
    store.sealed_ledger = lambda counter: "00" * 32 if counter == 2 else real(counter)
    results = owner.seal_many([pending_of("1p:part-%d" % i) for i in range(3)], 15)
    assert [s for s, _ in results] == [200, 503, 200]
    assert json.loads(results[1][1])["code"] == "DEVICE_UNAVAILABLE"
    assert store.meta("filed_seq", 0) < bench.core.seq          # nothing marked filed past record 2
    store.sealed_ledger = real
    owner.info = owner.call(time.monotonic() + 5, "INFO")
    owner.reconcile()                                            # the next connect files what is left
    assert store.meta("filed_seq") == bench.core.seq and store.journal_seq() == bench.core.seq
    assert [r[0] for r in store.db.execute("SELECT counter FROM invoices ORDER BY counter")] == [1, 2, 3]


def queued_batches(owner, *requests, between=None):
    """Each batch request's ``seal_queued`` (and ``between``, an owner job, after the first one),
    all queued while the owner is busy: ([results of each request], the job's result)."""
    gate = threading.Event()
    owner.run(gate.wait, 10)
    futures = [owner.seal_queued([pending_of(k) for k in requests[0]], 15)]
    job = owner.run(between) if between is not None else None
    futures += [owner.seal_queued([pending_of(k) for k in keys], 15) for keys in requests[1:]]
    gate.set()
    return [f.result(30) for f in futures], job.result(30) if job is not None else None


def counting_drains(owner):
    drains = []
    real = owner._drain
    owner._drain = lambda: (drains.append(1), real())[1]
    return drains


def test_batch_requests_follow_on_in_one_pipeline_each_consecutive(tmp_path):
    bench = Bench()
    owner, store = make_owner(tmp_path, bench)
    owner.run(owner.device, time.monotonic() + 5).result()
    drains = counting_drains(owner)
    a, b = ["1p:qa-%d" % i for i in range(20)], ["1p:qb-%d" % i for i in range(20)]
    (first, second), _ = queued_batches(owner, a, b)
    assert counters(first) == list(range(1, 21)) and counters(second) == list(range(21, 41))
    assert len(drains) == 1                      # one drain: the link never ran empty between them
    assert sum(owner.group_sizes.elements()) == 40 and max(owner.group_sizes) == 16
    assert_exactly_once(bench, store, a + b)
    owner.close()


@pytest.fixture
def one_round(tmp_path, monkeypatch):
    """(owner, store, bench), connected, with drains that may give way after a single group."""
    from hostd.owner import batching
    monkeypatch.setattr(batching, "MAX_ROUNDS", 1)
    bench = Bench()
    owner, store = make_owner(tmp_path, bench)
    owner.run(owner.device, time.monotonic() + 5).result()
    yield owner, store, bench
    owner.close()


def test_a_drain_gives_way_to_a_waiting_job_only_between_requests(one_round):
    owner, store, bench = one_round
    a, b = ["1p:wa-%d" % i for i in range(40)], ["1p:wb-%d" % i for i in range(10)]
    (first, second), seen = queued_batches(owner, a, b, between=lambda: bench.core.counter)
    assert seen == 40                            # after all of a (3 groups), before any of b
    assert counters(first) == list(range(1, 41)) and counters(second) == list(range(41, 51))
    assert_exactly_once(bench, store, a + b)


def test_with_no_job_waiting_a_drain_goes_on_past_its_rounds(one_round):
    owner, store, bench = one_round
    drains = counting_drains(owner)
    a, b = ["1p:na-%d" % i for i in range(40)], ["1p:nb-%d" % i for i in range(40)]
    (first, second), _ = queued_batches(owner, a, b)
    assert counters(first + second) == list(range(1, 81)) and len(drains) == 1
    assert_exactly_once(bench, store, a + b)


def test_a_batch_request_with_a_credit_type_is_one_job_in_order(tmp_path):
    bench = Bench()
    owner, store = make_owner(tmp_path, bench)
    owner.run(owner.device, time.monotonic() + 5).result()
    credit = pending_of("1p:qcredit", canonical=encode_invoice(make_invoice(itype="credit_note", credit="X",
                                                                             timestamp=authored())))
    credit["invoice_type"] = "credit_note"
    jobs = []
    real = owner.seal_many
    owner.seal_many = lambda pendings, budget: (jobs.append(len(pendings)), real(pendings, budget))[1]
    results = owner.seal_queued([pending_of("1p:qc-0"), credit, pending_of("1p:qc-1")], 2).result(30)
    assert jobs == [3] and [s for s, _ in results][0::2] == [200, 200] and results[1][0] != 200
    assert counters(results[0::2]) == [1, 2]
    owner.close()


def test_an_item_stored_before_keeps_each_requests_numbers_consecutive(tmp_path):
    """b0's row was stored before (a 503 earlier) and goes on alone; c's items, in the same group
    behind b's, go alone after it rather than between b1 and b0."""
    bench = Bench()
    owner, store = make_owner(tmp_path, bench)
    owner.run(owner.device, time.monotonic() + 5).result()
    b = [pending_of("1p:sb-0"), pending_of("1p:sb-1")]
    store.add_pending(dict(b[0]))
    gate = threading.Event()
    owner.run(gate.wait, 10)
    fb = owner.seal_queued(b, 15)
    fc = owner.seal_queued([pending_of("1p:sc-0"), pending_of("1p:sc-1")], 15)
    gate.set()
    rb, rc = counters(fb.result(30)), counters(fc.result(30))
    assert sorted(rb) == [1, 2] and rc == [3, 4]
    assert_exactly_once(bench, store, ["1p:sb-0", "1p:sb-1", "1p:sc-0", "1p:sc-1"])
    owner.close()


def test_a_failing_drain_answers_the_rest_of_its_request_and_seals_none_of_it(tmp_path, caplog):
    bench = Bench()
    owner, store = make_owner(tmp_path, bench)
    owner.run(owner.device, time.monotonic() + 5).result()
    real, calls = owner._finish_group, []

    def flaky(group):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("a bug")
        return real(group)
    owner._finish_group = flaky
    gate = threading.Event()
    owner.run(gate.wait, 10)
    a = ["1p:xa-%d" % i for i in range(40)]
    whole = owner.seal_queued([pending_of(k) for k in a], 15)
    job = owner.run(owner.seal_new, pending_of("1p:xjob"), 15)
    gate.set()
    with pytest.raises(RuntimeError):
        whole.result(30)
    counter = json.loads(job.result(30)[1])["payload"]["counter"]
    taken = [k for k in a if store.request(k) is not None]
    assert taken == a[:len(taken)] and 0 < len(taken) < 40      # the rest was never stored ...
    assert counter == len(taken) + 1 == bench.core.counter       # ... nor sealed
    assert "a seal drain failed" in caplog.text
    owner.close()


def test_a_job_cancelled_before_it_ran_no_longer_waits(tmp_path):
    owner, _ = make_owner(tmp_path, Bench())
    gate = threading.Event()
    owner.run(gate.wait, 10)
    cancelled = owner.run(lambda: None)
    assert cancelled.cancel() and owner.jobs_waiting() == 0     # what wrap_future does for a gone client
    gate.set()
    owner.run(lambda: None).result(5)
    assert owner.jobs_waiting() == 0
    owner.close()


def test_a_failing_orphan_release_does_not_strand_the_queue(tmp_path, caplog):
    bench = Bench()
    owner, store = make_owner(tmp_path, bench)
    owner.run(owner.device, time.monotonic() + 5).result()
    owner.slots.orphans.append(b"\x01" * 16)

    def broken(call, deadline):
        raise RuntimeError("a bug")
    owner.slots.release = broken
    assert owner.seal_grouped(pending_of("1p:after-orphans"), 15).result(10)[0] == 200
    assert "releasing orphan nonces failed" in caplog.text and not owner.draining
    owner.close()
