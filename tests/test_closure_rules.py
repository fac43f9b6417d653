"""Closures as the device signs them and the verifier recomputes them (PROTOCOL.md 4.22, 7.10, 9).

A Z's Merkle root covers every record of its period, the M and Y closures written in it included;
an M sums its Zs and carries its last Z's perpetual totals; X after a Z shows nothing open.
"""

from protocol import merkle, record
from tests.devkit import Bench, T0, encode_invoice, make_invoice

MARCH = "2026-03-29T04:00:00Z"


def _bench():
    b = Bench()
    b.ok("SET_TIME", time=T0 + 40 * 86400)        # 2026-03-29
    return b


def _sale(b, lines=((2000, 50000, "TG03"),)):
    status, answer = b.seal(encode_invoice(make_invoice(lines, timestamp=MARCH)))
    assert status == "OK", answer
    return answer


def _close(b, kind, period, records=()):
    return b.ok("CLOSE", kind=kind, period=period, offset=0, records=list(records), last=True)


def test_a_z_after_an_m_covers_the_m_record_and_verifies():
    b = _bench()
    _sale(b)
    z1 = _close(b, "Z", "2026-02-17")
    m = _close(b, "M", "2026-02", [z1["record"]])
    _sale(b)
    z2 = _close(b, "Z", "2026-03-29")
    body = record.decode(z2["record"])[0]
    assert body[record.K_RANGE] == [z1["seq"] + 1, z2["seq"] - 1] and m["seq"] == z1["seq"] + 1
    hashes, prev = [], record.genesis()
    for rec in b.history():
        prev = record.record_hash(prev, rec)
        hashes.append(prev)
    assert body[record.K_MERKLE] == merkle.root(hashes[z1["seq"]:z2["seq"] - 1])   # the M's hash among them
    assert b.verify()["closures"] == [z1["seq"], m["seq"], z2["seq"]]


def test_an_m_sums_its_days_and_keeps_the_last_perpetual_total():
    b = _bench()
    _sale(b)
    z1 = _close(b, "Z", "2026-03-27")
    _sale(b, ((1000, 30000, "TG02"),))
    z2 = _close(b, "Z", "2026-03-28")
    m = _close(b, "M", "2026-03", [z1["record"], z2["record"]])
    d1, d2, mb = (record.decode(x["record"])[0] for x in (z1, z2, m))
    assert mb[record.K_FIGURES] == [["CDF", 116000 + 34800, 116000 + 34800,
                                     [["TG02", 30000, 4800, 0, 0], ["TG03", 100000, 16000, 0, 0]]]]
    assert mb[record.K_FIGURES][0][1:3] == d2[record.K_FIGURES][0][1:3]       # perpetual: the last day's
    assert mb[record.K_COUNTS] == [["sale", 2]] and mb[record.K_FISCAL] == [1, 2]
    assert mb[record.K_RANGE] == [z1["seq"], z2["seq"]] and mb[record.K_END] == z2["hash"]
    assert mb[record.K_MERKLE] == merkle.root([z1["hash"], z2["hash"]]) and mb[record.K_CHAIN] == record.genesis()
    assert d1[record.K_CHAIN] == record.genesis() and d2[record.K_CHAIN] == z1["hash"]
    x = b.ok("X")["figures"]
    assert x[record.K_COUNTS] == [] and x[record.K_FISCAL] == [0, 0] and x[record.K_CHAIN] == z2["hash"]
    assert b.verify()["closures"] == [z1["seq"], z2["seq"], m["seq"]]


def test_an_m_must_reach_the_newest_z_or_a_later_terminator():
    b = _bench()
    _sale(b)
    z1 = _close(b, "Z", "2026-03-27")
    z2 = _close(b, "Z", "2026-03-28")
    status, _ = b.call("CLOSE", kind="M", period="2026-03", offset=0, records=[z1["record"]], last=True)
    assert status == "CLOSE_INCOMPLETE"
    status, _ = b.call("CLOSE", kind="M", period="2026-03", offset=0, records=[z2["record"]], last=True)
    assert status == "CLOSE_CHAIN"                                           # z1 left out
    m = _close(b, "M", "2026-03", [z1["record"], z2["record"]])
    assert record.decode(m["record"])[0][record.K_RANGE] == [z1["seq"], z2["seq"]]
