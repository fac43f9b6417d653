"""Power cut after every flash program of a COMMIT, and in the middle of each program.

DESIGN-NOTES section 2.2: after a cut at any point the device comes back with counter c or c+1,
the journal proves which, and the nonce is committed exactly when the counter advanced. The cut
points are enumerated exhaustively: every program of the commit, every byte count that can land,
and a half-programmed byte on top.
"""

import pytest

from protocol import messages
from protocol.errors import PowerCut
from tests.devkit import T0, Bench, encode_invoice, make_invoice

INVOICE = encode_invoice(make_invoice(lines=((1500, 12345, "TG02"), (3000, 999, "TG03"), (1000, 250000, "TG01"))))


def _prepared_bench():
    bench = Bench()
    bench.ok("SET_TIME", time=T0)
    bench.ok("COMMIT", nonce=bench.prepare(INVOICE)[1]["nonce"])   # counter 1 before the cut
    nonce = bench.prepare(INVOICE)[1]["nonce"]
    return bench, nonce


def _commit_programs():
    """The (size of each program) a COMMIT issues, measured on a dry run."""
    bench, nonce = _prepared_bench()
    sizes = []
    real = bench.flash.program

    def spy(offset, data):
        sizes.append(len(data))
        return real(offset, data)
    bench.flash.program = spy
    bench.ok("COMMIT", nonce=nonce)
    return sizes


PROGRAMS = _commit_programs()
CASES = [(k, land, mask) for k, size in enumerate(PROGRAMS) for land in range(size + 1)
         for mask in ((None, 0x0F) if land < size else (None,))]


def test_commit_takes_several_page_programs():
    assert len(PROGRAMS) >= 2, PROGRAMS   # the record spans pages, so there is a "middle" to cut


@pytest.mark.parametrize("k,land,mask", CASES[::1])
def test_cut_during_commit(k, land, mask):
    bench, nonce = _prepared_bench()
    c = bench.core.counter
    bench.flash.cut_after = bench.flash.programs + k
    bench.flash.cut_bytes = land
    bench.flash.cut_mask = mask
    with pytest.raises(PowerCut):
        bench.call("COMMIT", nonce=nonce)
    bench.reboot()
    counter = bench.core.counter
    assert counter in (c, c + 1)
    summary = bench.verify()
    assert summary["counter"] == counter
    bench.ok("SET_TIME", time=T0 + 10)
    state = bench.ok("STATUS", nonce=nonce)
    assert (state["state"] == messages.COMMITTED) == (counter == c + 1)
    if counter == c + 1:
        again = bench.ok("COMMIT", nonce=nonce)
        assert again["replayed"] and again["sealed"][2] == c + 1
    else:
        assert bench.call("COMMIT", nonce=nonce)[0] == "NONCE_UNKNOWN"
    # The device carries on after the tear: the next invoice gets the next number, exactly once.
    fresh = bench.prepare(INVOICE)[1]["nonce"]
    assert bench.ok("COMMIT", nonce=fresh)["sealed"][2] == counter + 1
    bench.reboot()
    assert bench.core.counter == counter + 1
    assert bench.verify()["counter"] == counter + 1
    nonces = [r for r in bench.records() if nonce in r]
    assert len(nonces) <= 1


def test_failed_program_leaves_state_unchanged():
    bench, nonce = _prepared_bench()
    c = bench.core.counter
    bench.flash.fail_at = bench.flash.programs + 1
    bench.flash.fail_bytes = 5
    assert bench.call("COMMIT", nonce=nonce)[0] == "STORAGE_FAILURE"
    assert bench.core.counter == c
    assert bench.ok("STATUS", nonce=nonce)["state"] == messages.PREPARED
    assert bench.ok("COMMIT", nonce=nonce)["sealed"][2] == c + 1   # retry lands past the torn bytes
    bench.reboot()
    assert bench.verify()["counter"] == c + 1


def test_failed_program_that_landed_counts_as_sealed():
    """A program reporting failure after writing everything: the record is on flash, so it is sealed."""
    bench, nonce = _prepared_bench()
    c = bench.core.counter
    bench.flash.fail_at = bench.flash.programs + len(PROGRAMS)
    bench.flash.fail_bytes = 10 ** 6
    answer = bench.ok("COMMIT", nonce=nonce)
    assert answer["sealed"][2] == c + 1
    bench.reboot()
    assert bench.core.counter == c + 1
