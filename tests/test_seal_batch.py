"""SEAL_BATCH on the device (PROTOCOL.md 4.24, issue 15): K invoices, each sealed or refused on its
own as a SEAL would be, all their records programmed and then one flash sync before the answer.
"""

import pytest

from device.link import Link
from protocol import batch, cbor, frames, invoice, messages, record
from protocol.errors import code_of
from tests.devkit import T0, Bench, encode_invoice, make_invoice


def invoice_n(i, lines=None):
    return encode_invoice(make_invoice(lines or ((1000 + i, 2500 + i, "TG02"),)))


def rid(name):
    return record.request_id_for("1p:batch-test:%s" % name)


def send(bench, entries, chunk=None):
    """SEAL_BATCH of ``entries`` [(request id, invoice)], in chunks of ``chunk`` bytes (one call
    when None): (status, answer of the last chunk)."""
    doc = batch.encode(entries)
    if chunk is None:
        return bench.call("SEAL_BATCH", total=len(doc), offset=0, data=doc)
    offset = 0
    while True:
        status, answer = bench.call("SEAL_BATCH", total=len(doc), offset=offset, data=doc[offset:offset + chunk])
        offset += chunk
        if status != "OK" or offset >= len(doc):
            return status, answer
        assert answer == {"received": offset}


def ready():
    bench = Bench()
    bench.ok("SET_TIME", time=T0)
    return bench


def sealed_of(answer):
    return batch.sealed_from(answer["first"], answer["prev"], answer["records"])


def test_a_batch_seals_every_entry_with_consecutive_numbers_and_one_sync():
    bench = ready()
    c, syncs, programs = bench.core.counter, bench.flash.syncs, bench.flash.programs
    entries = [(rid(i), invoice_n(i)) for i in range(8)]
    status, answer = send(bench, entries, chunk=700)
    assert status == "OK"
    first = answer["first"]
    assert answer["results"] == [[0, first + i, False] for i in range(8)]
    assert bench.core.counter == c + 8 and answer["last"] == first + 7
    assert bench.flash.syncs == syncs + 1 and bench.flash.programs - programs >= 8
    assert answer["prev"] == bench.core.journal.chain(first)[0]
    # the records that fit, and the sealed results derived from them, are exactly the device's
    records = bench.records()[first - 1:]
    assert answer["records"] == records[:len(answer["records"])] and len(answer["records"]) >= 1
    derived = sealed_of(dict(answer, records=records))
    for i, (r, inv) in enumerate(entries):
        state = bench.ok("STATUS", request_id=r)
        assert state["state"] == messages.COMMITTED and state["sealed"] == derived[first + i]
        assert state["sealed"][record.S_COUNTER] == c + 1 + i
    assert bench.verify()["counter"] == c + 8


def test_one_refusal_does_not_fail_the_others():
    bench = ready()
    bad_totals = make_invoice()
    bad_totals[10][3] += 1
    sealed_before = bench.seal(invoice_n(99), rid("before"))[1]["sealed"]
    credit = encode_invoice(make_invoice(itype="credit_note", credit=sealed_before[record.S_FISCAL_NUMBER]))
    entries = [(rid(0), invoice_n(0)),
               (rid(1), b"\xa0"),                              # not an invoice
               (rid(2), encode_invoice(bad_totals)),           # totals do not add up
               (rid(3), credit),                               # credits need EVIDENCE: alone
               (rid("before"), invoice_n(5)),                  # a sealed request id, another invoice
               (rid(4), invoice_n(4))]
    status, answer = send(bench, entries)
    assert status == "OK"
    results, first = answer["results"], answer["first"]
    assert results[0] == [0, first, False] and results[5] == [0, first + 1, False]
    assert [r[0] for r in results[1:5]] == [code_of(n) for n in ("INVOICE_MALFORMED", "TOTALS_MISMATCH",
                                                                 "BATCH_CREDIT", "REQUEST_ID_REUSED")]
    assert all(isinstance(r[1], str) and len(r[1]) <= batch.MAX_DETAIL for r in results[1:5])
    for name in (1, 2, 3):
        assert bench.ok("STATUS", request_id=rid(name)) == {"state": messages.UNKNOWN}
    assert answer["last"] == first + 1 and bench.verify()["counter"] == 3


def test_a_repeated_batch_replays_every_seal_and_writes_nothing():
    bench = ready()
    entries = [(rid(i), invoice_n(i)) for i in range(5)]
    once = send(bench, entries)[1]
    j = bench.core.journal
    seq, syncs, programs = j.last_seq, bench.flash.syncs, bench.flash.programs
    status, again = send(bench, entries)
    assert status == "OK" and [r[2] for r in again["results"]] == [True] * 5
    assert [r[1] for r in again["results"]] == [r[1] for r in once["results"]]
    assert again["records"] == [] and again["first"] == seq + 1 and again["last"] == seq
    assert (j.last_seq, bench.flash.syncs, bench.flash.programs) == (seq, syncs, programs)


def test_a_request_id_twice_in_one_batch_is_sealed_once():
    bench = ready()
    entries = [(rid("a"), invoice_n(1)), (rid("b"), invoice_n(2)), (rid("a"), invoice_n(1)), (rid("b"), invoice_n(3))]
    answer = send(bench, entries)[1]
    first = answer["first"]
    assert answer["results"][:3] == [[0, first, False], [0, first + 1, False], [0, first, True]]
    assert answer["results"][3][0] == code_of("REQUEST_ID_REUSED")
    assert bench.core.counter == 2


def test_a_prepared_request_id_in_a_batch_consumes_its_nonce():
    bench = ready()
    inv = invoice_n(7)
    nonce = bench.prepare(inv, rid("p"))[1]["nonce"]
    answer = send(bench, [(rid("x"), invoice_n(8)), (rid("p"), inv)])[1]
    assert [r[2] for r in answer["results"]] == [False, False]
    commit = bench.ok("COMMIT", nonce=nonce)     # the nonce is committed by the batch: a replay
    assert commit["replayed"] and commit["sealed"][record.S_COUNTER] == 2
    assert bench.ok("STATUS", nonce=nonce)["state"] == messages.COMMITTED
    assert not bench.core.nonces.pending


def test_clock_unset_refuses_new_entries_but_answers_sealed_ones():
    bench = ready()
    send(bench, [(rid(0), invoice_n(0))])
    bench.reboot()                                # the clock is RAM: unset after power-up
    answer = send(bench, [(rid(0), invoice_n(0)), (rid(1), invoice_n(1))])[1]
    assert answer["results"][0][2] is True and answer["results"][1][0] == code_of("CLOCK_UNSET")
    assert answer["last"] == answer["first"] - 1


@pytest.mark.parametrize("doc", [cbor.encode({1: 2}), cbor.encode([]), b"\xff",
                                 cbor.encode([[b"\x00" * 15, b"x"]]), cbor.encode([[b"\x00" * 16, b""]]),
                                 cbor.encode([[b"\x00" * 16, b"x"]] * (batch.MAX_ITEMS + 1))])
def test_a_malformed_document_refuses_the_whole_batch(doc):
    bench = ready()
    seq = bench.core.journal.last_seq
    assert bench.call("SEAL_BATCH", total=len(doc), offset=0, data=doc)[0] == "BATCH_MALFORMED"
    assert bench.core.journal.last_seq == seq


def test_chunks_must_continue_the_upload():
    bench = ready()
    doc = batch.encode([(rid(i), invoice_n(i)) for i in range(3)])
    assert bench.call("SEAL_BATCH", total=batch.MAX_BATCH + 1, offset=0, data=b"")[0] == "BATCH_MALFORMED"
    assert bench.ok("SEAL_BATCH", total=len(doc), offset=0, data=doc[:100]) == {"received": 100}
    assert bench.call("SEAL_BATCH", total=len(doc), offset=50, data=doc[50:])[0] == "CHUNK_SEQUENCE"
    assert bench.call("SEAL_BATCH", total=len(doc) + 1, offset=100, data=doc[100:])[0] == "CHUNK_SEQUENCE"
    assert bench.call("SEAL_BATCH", total=len(doc), offset=100, data=doc[100:] + b"x")[0] == "CHUNK_SEQUENCE"
    # the upload in progress survived the refused chunks
    answer = bench.ok("SEAL_BATCH", total=len(doc), offset=100, data=doc[100:])
    assert [r[0] for r in answer["results"]] == [0, 0, 0]
    # a SEAL chunk cannot continue a batch upload, nor a batch chunk a SEAL upload
    bench.ok("SEAL_BATCH", total=len(doc), offset=0, data=doc[:100])
    one = invoice_n(50)
    assert bench.call("SEAL", request_id=rid(50), total=len(one), offset=10, data=one[10:])[0] == "CHUNK_SEQUENCE"
    bench.ok("SEAL", request_id=rid(50), total=len(one), offset=0, data=one[:10])
    assert bench.call("SEAL_BATCH", total=len(doc), offset=100, data=doc[100:])[0] == "CHUNK_SEQUENCE"


def test_full_journal_mid_batch_seals_what_fits():
    bench = Bench(flash_size=4 * 4096)
    bench.ok("SET_TIME", time=T0)
    entries = [(rid(i), invoice_n(i)) for i in range(batch.MAX_ITEMS)]
    sealed = 0
    while True:
        answer = send(bench, entries)[1]
        codes = [r[0] for r in answer["results"]]
        if code_of("JOURNAL_FULL") in codes:
            break
        sealed += codes.count(0)
        entries = [(rid("%d-%d" % (sealed, i)), invoice_n(i)) for i in range(batch.MAX_ITEMS)]
    k = codes.index(code_of("JOURNAL_FULL"))
    assert codes[:k] == [0] * k and set(codes[k:]) == {code_of("JOURNAL_FULL")}
    assert bench.verify()["counter"] == bench.core.counter == sealed + k


def test_a_failed_program_refuses_that_entry_and_the_next_one_is_sealed():
    bench = ready()
    bench.flash.fail_at = bench.flash.programs + 1
    bench.flash.fail_bytes = 5
    answer = send(bench, [(rid(0), invoice_n(0)), (rid(1), invoice_n(1))])[1]
    assert answer["results"][0][0] == code_of("STORAGE_FAILURE") and answer["results"][1][0] == 0
    bench.reboot()
    assert bench.verify()["counter"] == 1
    assert bench.ok("STATUS", request_id=rid(0)) == {"state": messages.UNKNOWN}


def test_over_frames_every_request_and_answer_fits_max_payload():
    """Sixteen large invoices (many groups, so large records): chunks and the answer stay within
    MAX_PAYLOAD; the records the answer has no room for come from READ_JOURNAL."""
    bench = ready()
    link = Link(bench.core)
    groups = ("TG02", "TG03", "TG04", "TG06", "TG07", "TG08")
    entries = [(rid(i), invoice_n(i, [(1000 + j, 100 + i, g) for j, g in enumerate(groups)]))
               for i in range(batch.MAX_ITEMS)]
    doc = batch.encode(entries)
    assert len(doc) <= batch.MAX_BATCH and batch.document_size([len(e[1]) for e in entries]) == len(doc)
    chunk, offset, seq = frames.MAX_PAYLOAD - 64, 0, 0
    while offset < len(doc):
        seq += 1
        request = messages.encode_request("SEAL_BATCH", total=len(doc), offset=offset, data=doc[offset:offset + chunk])
        out = frames.FrameDecoder().feed(link.feed(frames.encode_frame(seq, request)))
        assert [e[0] for e in out] == ["frame"] and len(out[0][2]) <= frames.MAX_PAYLOAD
        offset += chunk
    name, status, _, answer = messages.decode_response(out[0][2])
    assert status == 0 and [r[0] for r in answer["results"]] == [0] * batch.MAX_ITEMS
    got = list(answer["records"])
    assert 0 < len(got) < batch.MAX_ITEMS
    while answer["first"] + len(got) <= answer["last"]:
        page = bench.ok("READ_JOURNAL", first=answer["first"] + len(got), count=64)
        got += page["records"]
    derived = batch.sealed_from(answer["first"], answer["prev"], got)
    for i, (r, _) in enumerate(entries):
        assert derived[answer["results"][i][1]] == bench.ok("STATUS", request_id=r)["sealed"]


def test_document_size_matches_the_encoding():
    for lens in ([1], [23, 24, 255, 256, 300], [5000, 3000]):
        items = [(b"\x01" * 16, b"x" * n) for n in lens]
        assert batch.document_size(lens) == len(batch.encode(items))
    assert invoice.MAX_INVOICE > batch.MAX_BATCH
