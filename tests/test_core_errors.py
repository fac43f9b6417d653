"""Every bad input gets its own documented error code and leaves the device state unchanged.

"State" here is everything a host could observe or rely on: the journal bytes, the counter, the
record sequence, the pending nonces, and the clock.
"""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol import cbor, frames, messages, record
from protocol.error_table import ERRORS
from protocol.errors import code_of
from tests.devkit import T0, Bench, encode_invoice, make_invoice


def snapshot(bench):
    core = bench.core
    return (bench.flash.image(), core.counter, core.seq, sorted(core.nonces.pending), core.clock.now())


@pytest.fixture
def bench():
    b = Bench(max_pending=2, nonce_ttl=120)
    b.ok("SET_TIME", time=T0)
    return b


def frame_error(bench, data):
    out = bench.link.feed(data)
    events = frames.FrameDecoder().feed(out)
    assert len(events) == 1 and events[0][0] == "frame"
    return messages.decode_response(events[0][2])[1]


def test_error_codes_are_distinct_and_named():
    names = [entry[0] for entry in ERRORS.values()]
    assert len(names) == len(set(names))
    assert all(0 < code < 256 for code in ERRORS)


def test_bad_frames(bench):
    good = frames.encode_frame(7, messages.encode_request("INFO"))
    before = snapshot(bench)
    bad_crc = good[:-1] + bytes([good[-1] ^ 1])
    assert frame_error(bench, bad_crc) == code_of("FRAME_CRC")
    oversize = frames.MAGIC + bytes([1, 9]) + (frames.MAX_PAYLOAD + 1).to_bytes(2, "big")
    assert frame_error(bench, oversize) == code_of("FRAME_OVERSIZE")
    bench.link.decoder = frames.FrameDecoder()
    bad_version = frames.MAGIC + bytes([9, 9, 0, 0]) + b"\x00" * 4
    assert frame_error(bench, bad_version) == code_of("FRAME_MALFORMED")
    assert snapshot(bench) == before


@pytest.mark.parametrize("payload,name", [
    (b"\xff", "CBOR_MALFORMED"),
    (cbor.encode({0: 99}), "MESSAGE_UNKNOWN"),
    (cbor.encode({0: 4, 3: 10, 4: 0}), "MESSAGE_FIELD"),
    (cbor.encode({0: 2, 3: "text"}), "MESSAGE_FIELD"),
    (cbor.encode({0: 2, 3: b"", 9: 1}), "MESSAGE_FIELD"),
    (cbor.encode({0: 5, 3: b"short"}), "MESSAGE_FIELD"),
    (cbor.encode([1, 2]), "MESSAGE_FIELD"),
    (cbor.encode({0: [1]}), "MESSAGE_UNKNOWN"),     # an unhashable id must not crash the device
    (cbor.encode({0: {1: 2}}), "MESSAGE_UNKNOWN"),
    (cbor.encode({0: True}), "MESSAGE_UNKNOWN"),
    (cbor.encode({0: 4, 3: [1], 4: {}, 5: None}), "MESSAGE_FIELD"),
])
def test_bad_messages(bench, payload, name):
    before = snapshot(bench)
    assert messages.decode_response(bench.core.handle(payload))[1] == code_of(name)
    assert snapshot(bench) == before


cbor_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2 ** 64, 2 ** 64 - 1) | st.text(max_size=8) | st.binary(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.integers(0, 20) | st.text(max_size=3), inner, max_size=4),
    max_leaves=12)


@given(value=cbor_values, mid=st.integers(0, 12) | cbor_values)
@settings(max_examples=1000, deadline=None)
def test_any_well_formed_request_gets_a_typed_answer(value, mid):
    """Arbitrary CBOR maps and values in place of a request: always an error frame, never a crash."""
    bench = BENCH
    payloads = [cbor.encode(value), cbor.encode({0: mid, 3: value, 4: value, 5: value})]
    for payload in payloads:
        name, status, detail, fields = messages.decode_response(bench.core.handle(payload))
        assert status == 0 or ERRORS[status][1] in ("cbor", "message", "invoice", "nonce", "clock", "journal")


BENCH = Bench()


def _mutations():
    def set_(path, value):
        def apply(doc):
            target = doc
            for key in path[:-1]:
                target = target[key]
            target[path[-1]] = value
        return apply
    yield "INVOICE_MALFORMED", lambda d: d.pop(4)
    yield "INVOICE_MALFORMED", set_((1,), 12345)
    yield "INVOICE_MALFORMED", set_((1,), "")
    yield "INVOICE_MALFORMED", lambda d: d.__setitem__(12, "extra")
    yield "INVOICE_MALFORMED", set_((8,), [])
    yield "INVOICE_TYPE_INVALID", set_((5,), "refund")
    yield "INVOICE_TIMESTAMP", set_((6,), "2026-02-17 04:00:00")
    yield "INVOICE_TIMESTAMP", set_((6,), "2026-02-30T04:00:00Z")
    yield "CLIENT_CLASS_INVALID", set_((7, 3), "company")
    yield "TAX_GROUP_UNKNOWN", set_((8, 0, 5), "TG99")
    yield "TAX_GROUP_UNKNOWN", set_((6,), "2020-01-01T00:00:00Z")   # before the manifest is in force
    yield "TAX_RATE_MISMATCH", set_((9, 0, 3), 150000)
    yield "TAX_BASE_MISMATCH", set_((9, 0, 4), 100001)
    yield "TAX_AMOUNT_MISMATCH", set_((9, 0, 5), 16001)
    yield "TAX_GROUPS_MISMATCH", set_((9, 0, 1), "TG02")
    yield "TAX_GROUPS_MISMATCH", lambda d: d[9].append({1: "TG02", 2: "", 3: 160000, 4: 0, 5: 0})
    yield "TOTALS_MISMATCH", set_((10, 1), 100001)
    yield "TOTALS_MISMATCH", set_((10, 2), 1)
    yield "TOTALS_MISMATCH", set_((10, 3), 116001)
    yield "PAYMENTS_MISMATCH", set_((11, 0, 2), 116001)
    yield "CURRENCY_INVALID", set_((10, 4), "EUR")
    yield "CURRENCY_INVALID", set_((11, 0, 4), "USD")
    yield "AMOUNT_INVALID", set_((8, 0, 3), 0)
    yield "AMOUNT_INVALID", set_((8, 0, 4), -5)


@pytest.mark.parametrize("name,mutate", list(_mutations()))
def test_each_invoice_mismatch_has_its_code(bench, name, mutate):
    doc = make_invoice(lines=((2000, 50000, "TG03"),))
    mutate(doc)
    before = snapshot(bench)
    status, detail = bench.prepare(encode_invoice(doc))
    assert status == name, detail
    assert detail   # a sentence naming the field
    assert snapshot(bench) == before


def test_non_canonical_invoice_bytes_are_refused(bench):
    canonical = encode_invoice(make_invoice())
    non_canonical = canonical[:1] + b"\x18\x01" + canonical[2:]   # key 1 as a two-byte integer
    assert bench.prepare(non_canonical)[0] == "INVOICE_MALFORMED"
    assert bench.prepare(canonical + b"\x00")[0] == "INVOICE_MALFORMED"


RID = b"\x42" * 16


def test_oversize_and_out_of_order_chunks(bench):
    data = encode_invoice(make_invoice())
    before = snapshot(bench)
    assert bench.call("PREPARE", total=20000, offset=0, data=data[:10], request_id=RID)[0] == "INVOICE_TOO_LARGE"
    assert bench.call("PREPARE", total=len(data), offset=5, data=data[5:], request_id=RID)[0] == "CHUNK_SEQUENCE"
    assert bench.ok("PREPARE", total=len(data), offset=0, data=data[:10], request_id=RID) == {"received": 10}
    assert bench.call("PREPARE", total=len(data), offset=11, data=data[11:], request_id=RID)[0] == "CHUNK_SEQUENCE"
    assert bench.call("PREPARE", total=len(data), offset=10, data=data[10:] + b"x", request_id=RID)[0] == "CHUNK_SEQUENCE"
    answer = bench.ok("PREPARE", total=len(data), offset=10, data=data[10:], request_id=RID)   # upload survived the bad chunks
    assert len(answer["nonce"]) == 16
    assert snapshot(bench)[:3] == before[:3]


def test_nonce_errors(bench):
    data = encode_invoice(make_invoice())
    before = snapshot(bench)
    assert bench.call("COMMIT", nonce=b"\x01" * 16)[0] == "NONCE_UNKNOWN"
    assert bench.call("ABORT", nonce=b"\x01" * 16)[0] == "NONCE_UNKNOWN"
    assert snapshot(bench) == before
    a = bench.prepare(data)[1]["nonce"]
    b = bench.prepare(data)[1]["nonce"]
    before = snapshot(bench)
    assert bench.prepare(data)[0] == "TOO_MANY_PENDING"
    assert snapshot(bench) == before
    assert bench.ok("ABORT", nonce=a) == {"state": messages.ABORTED}
    before = snapshot(bench)
    assert bench.call("COMMIT", nonce=a)[0] == "NONCE_ABORTED"
    assert snapshot(bench) == before
    bench.clock.advance(119)
    assert bench.ok("STATUS", nonce=b)["state"] == messages.PREPARED
    bench.clock.advance(1)   # exactly the expiry instant: expired
    assert bench.call("COMMIT", nonce=b)[0] == "NONCE_EXPIRED"
    assert bench.ok("STATUS", nonce=b) == {"state": messages.EXPIRED}
    c = bench.prepare(data)[1]["nonce"]
    bench.ok("COMMIT", nonce=c)
    assert bench.call("ABORT", nonce=c)[0] == "NONCE_COMMITTED"


def test_clock_errors():
    bench = Bench()
    data = encode_invoice(make_invoice())
    before = snapshot(bench)
    assert bench.prepare(data)[0] == "CLOCK_UNSET"
    assert bench.call("SET_TIME", time=5)[0] == "TIME_INVALID"
    assert snapshot(bench) == before
    bench.ok("SET_TIME", time=T0 + 1000)
    bench.ok("COMMIT", nonce=bench.prepare(data)[1]["nonce"])
    bench.reboot()
    before = snapshot(bench)
    assert bench.call("SET_TIME", time=T0 + 999)[0] == "CLOCK_BACKWARDS"
    assert bench.prepare(data)[0] == "CLOCK_UNSET"
    assert snapshot(bench) == before
    assert bench.ok("SET_TIME", time=T0 + 1000)["journaled"] is True
    assert bench.ok("SET_TIME", time=T0 + 1001)["journaled"] is False   # small drift: not journalled


def test_journal_full_refuses_before_a_nonce_and_keeps_state():
    """Issue 10: PREPARE and SEAL refuse JOURNAL_FULL before a nonce or a seal, counting the
    records of the nonces already pending; a full device is read-only for sales, never a brick."""
    bench = Bench(flash_size=4 * 4096, max_pending=3)
    bench.ok("SET_TIME", time=T0)
    data = encode_invoice(make_invoice())
    sealed = 0
    while True:
        status, answer = bench.prepare(data)
        if status != "OK":
            break
        bench.ok("COMMIT", nonce=answer["nonce"])
        sealed += 1
    assert status == "JOURNAL_FULL" and sealed > 10
    before = snapshot(bench)
    assert bench.seal(data)[0] == "JOURNAL_FULL"
    assert snapshot(bench) == before and not bench.core.nonces.pending
    bench.reboot()
    assert bench.core.counter == sealed and bench.verify()["invoices"] == sealed
    for _ in range(80):   # power-up records fill the device's reserve; then it boots read-only
        bench.reboot()
        if bench.core.fault:
            break
    assert bench.core.fault == "JOURNAL_FULL"
    info = bench.ok("INFO")
    assert info["fault"] == "JOURNAL_FULL" and info["fill_ppm"] == 1000000 and info["invoice_room"] == 0
    assert bench.call("SET_TIME", time=T0)[0] == "JOURNAL_FULL" and bench.core.clock.now() is None
    assert bench.call("PREPARE", total=len(data), offset=0, data=data, request_id=b"\x05" * 16)[0] == "JOURNAL_FULL"
    assert bench.ok("STATUS", request_id=b"\x05" * 16) == {"state": messages.UNKNOWN}
    assert bench.ok("HEAD", challenge=b"audit")["statement"]
    assert bench.ok("READ_JOURNAL", first=1, count=4)["records"]
    answer = bench.archive_upto()                         # the host archives: space comes back
    assert answer["erased_sectors"] >= 2 and bench.core.fault == ""
    assert record.type_of(bench.core.journal.last) == record.POWER_UP   # the power-up is written now
    bench.ok("SET_TIME", time=T0 + 5)
    assert bench.seal(data)[1]["sealed"][record.S_COUNTER] == sealed + 1
    assert bench.verify()["counter"] == sealed + 1


def test_pending_nonces_count_against_the_room():
    bench = Bench(flash_size=4 * 4096, max_pending=10)
    bench.ok("SET_TIME", time=T0)
    data = encode_invoice(make_invoice())
    size = len(bench.seal(data)[1]["sealed"][record.S_RECORD]) + 64 + 16
    while bench.ok("INFO")["invoice_room"] > 5 * size:
        assert bench.seal(data)[0] == "OK"
    room = bench.ok("INFO")["invoice_room"]
    nonces = []
    while True:
        status, answer = bench.prepare(data)
        if status != "OK":
            break
        nonces.append(answer["nonce"])
    assert status == "JOURNAL_FULL" and 0 < len(nonces) < 10
    for nonce in nonces:                                    # every nonce handed out can be sealed
        assert bench.ok("COMMIT", nonce=nonce)["replayed"] is False
    assert bench.ok("INFO")["invoice_room"] < room
