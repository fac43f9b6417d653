"""The refund split (hostd/books/refunds.py) against independent computations: exact Fractions
for the pro rata shares and the device's tax rule, and brute force over every base for what a
credit note can total. The end-to-end refunds through the real device are tests/test_credit_daemon.py."""

from fractions import Fraction
from itertools import product

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hostd.books import refunds
from hostd.errors import CreditExceedsBalance, RefundUnreachable
from protocol import invoice

RATES = (0, 80000, 160000, 165000, 1000000)   # 0 %, 8 %, 16 %, 16.5 %, 100 %


def tax(base, rate):
    """The device's rule, computed independently: the nearest integer to base x rate / 10^6, halves up."""
    exact = Fraction(base * rate, 10 ** 6)
    return int(exact + Fraction(1, 2)) if exact >= 0 else None


def room(base_left, tax_left, rate):
    """Brute force: the largest base within what is left whose tax stays within the tax left."""
    return max(b for b in range(base_left + 1) if tax(b, rate) <= tax_left)


def shares(amount, weights):
    """Largest remainder with Fractions: floors, then +1 by decreasing remainder, ties to the first."""
    exact = [Fraction(amount * w, sum(weights)) for w in weights]
    parts = [int(x) for x in exact]
    for i in sorted(range(len(weights)), key=lambda i: (-(exact[i] - parts[i]), i))[:amount - sum(parts)]:
        parts[i] += 1
    return parts


def totals(remaining, rates, caps, most):
    """Every total up to ``most`` that some choice of bases within the caps gives (brute force)."""
    sums = {0}
    for (code, _, _), top in zip(remaining, caps):
        sums = {s + b + tax(b, rates[code]) for s in sums for b in range(top + 1)
                if s + b + tax(b, rates[code]) <= most}
    return sums


groups = st.lists(st.tuples(st.integers(0, 300), st.integers(0, 60), st.sampled_from(RATES)), min_size=1,
                  max_size=3)


def remaining_of(drawn):
    codes = ["TG%02d" % (i + 1) for i in range(len(drawn))]
    return [[c, b, t] for c, (b, t, _) in zip(codes, drawn)], dict((c, r) for c, (_, _, r) in zip(codes, drawn))


@settings(max_examples=400, deadline=None)
@given(groups, st.integers(1, 600))
def test_a_split_sums_exactly_keeps_the_device_rule_and_stays_pro_rata(drawn, amount):
    remaining, rates = remaining_of(drawn)
    caps = [room(b, t, rates[c]) for c, b, t in remaining]
    rooms = [b + tax(b, rates[c]) for b, (c, _, _) in zip(caps, remaining)]
    if amount > sum(rooms):
        with pytest.raises(CreditExceedsBalance):
            refunds.split(amount, remaining, rates)
        return
    try:
        got = refunds.split(amount, remaining, rates)
    except RefundUnreachable:   # truly no bases within what remains total the amount
        assert amount not in totals(remaining, rates, caps, amount)
        return
    assert sum(b + t for _, b, t in got) == amount                        # the parts sum exactly
    share = dict(zip([g[0] for g in remaining], shares(amount, rooms)))
    left = dict((c, (b, t)) for c, b, t in remaining)
    for code, base, t in got:
        assert base > 0 and t == tax(base, rates[code])                   # as the device recomputes it
        assert base <= left[code][0] and t <= left[code][1]               # never past what remains
        # pro rata: within WINDOW base units of the share, each adding at most 2 at rates up to 100 %
        assert abs(base + t - share[code]) <= 2 * refunds.WINDOW + 1


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 3000), st.integers(0, 600), st.sampled_from(RATES), st.integers(1, 3600))
def test_one_group_is_refused_exactly_when_no_base_totals_the_amount(base_left, tax_left, rate, amount):
    remaining, rates = [["TG03", base_left, tax_left]], {"TG03": rate}
    top = room(base_left, tax_left, rate)
    reachable = [b for b in range(top + 1) if b + tax(b, rate) == amount]
    if amount > top + tax(top, rate):
        with pytest.raises(CreditExceedsBalance):
            refunds.split(amount, remaining, rates)
    elif reachable:
        assert refunds.split(amount, remaining, rates) == [["TG03", reachable[0], tax(reachable[0], rate)]]
    else:
        with pytest.raises(RefundUnreachable):
            refunds.split(amount, remaining, rates)


@settings(max_examples=500, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 60), st.integers(0, 12), st.sampled_from(RATES)), min_size=2, max_size=2),
       st.integers(1, 140))
def test_two_groups_reach_every_amount_some_split_reaches(drawn, amount):
    """Brute force over every pair of bases: when any split within the remaining totals the
    amount, the rule finds one (it looks only near the pro rata shares, and that suffices here)."""
    remaining, rates = remaining_of(drawn)
    caps = [room(b, t, rates[c]) for c, b, t in remaining]
    exists = any(b1 + tax(b1, rates["TG01"]) + b2 + tax(b2, rates["TG02"]) == amount
                 for b1, b2 in product(range(caps[0] + 1), range(caps[1] + 1)))
    if not exists:
        with pytest.raises((RefundUnreachable, CreditExceedsBalance)):
            refunds.split(amount, remaining, rates)
    else:
        assert sum(b + t for _, b, t in refunds.split(amount, remaining, rates)) == amount


@given(st.integers(0, 10 ** 6), st.lists(st.integers(0, 10 ** 6), min_size=1, max_size=14).filter(any))
def test_largest_remainder_agrees_with_fractions(amount, weights):
    assert refunds.largest_remainder(amount, weights) == shares(amount, weights)


@given(st.integers(0, 10 ** 9), st.integers(0, 10 ** 6), st.sampled_from(RATES))
def test_the_tax_cap_is_the_largest_base_whose_tax_fits(base_left, tax_left, rate):
    b = refunds.cap(base_left, tax_left, rate)
    assert b <= base_left and invoice.round_half_up(b * rate, 10 ** 6) <= tax_left
    assert b == base_left or invoice.round_half_up((b + 1) * rate, 10 ** 6) > tax_left


def test_the_documented_examples():
    # one group at 16 %: 0.04 is no credit note's total (bases 3 and 4 give 0.03 and 0.05)
    with pytest.raises(RefundUnreachable) as info:
        refunds.split(4, [["TG03", 100000, 16000]], {"TG03": 160000})
    assert "0.03 or 0.05" in info.value.detail and info.value.field == "amount"
    # 100.00 of a 1160.00 sale at 16 %: base 86.21, tax 13.79
    assert refunds.split(10000, [["TG03", 100000, 16000]], {"TG03": 160000}) == [["TG03", 8621, 1379]]
    # the whole remaining balance is refundable exactly
    assert refunds.split(116000, [["TG03", 100000, 16000]], {"TG03": 160000}) == [["TG03", 100000, 16000]]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 10 ** 6), st.sampled_from(RATES[:4])), min_size=1, max_size=4),
       st.lists(st.integers(1, 10 ** 4), min_size=1, max_size=6))
def test_refunds_in_pieces_then_the_refundable_rest(drawn, cuts):
    """Refunds of a fresh original one after another, then one of ``refundable``: it is always
    reachable, and it leaves nothing when every group's remaining tax was still the tax of its
    remaining base (the device recomputes each credit's tax from its own base, so a piece can
    leave a cent of tax that no credit note takes; the rule avoids that where a choice exists)."""
    codes = ["TG%02d" % (i + 1) for i in range(len(drawn))]
    rates = dict((c, r) for c, (_, r) in zip(codes, drawn))
    left = [[c, b, tax(b, rates[c])] for c, (b, _) in zip(codes, drawn)]
    for cut in cuts:
        amount = sum(b + t for _, b, t in left) * cut // 10 ** 4 // 2
        if not amount:
            break
        try:
            got = dict((c, (b, t)) for c, b, t in refunds.split(amount, left, rates))
        except RefundUnreachable:
            continue
        left = [[c, b - got.get(c, (0, 0))[0], t - got.get(c, (0, 0))[1]] for c, b, t in left]
        assert all(b >= 0 and t >= 0 for _, b, t in left)
    whole = all(t == tax(b, rates[c]) for c, b, t in left)
    most = refunds.refundable(left, rates)
    got = dict((c, (b, t)) for c, b, t in refunds.split(most, left, rates)) if most else {}
    rest = [(b - got.get(c, (0, 0))[0], t - got.get(c, (0, 0))[1]) for c, b, t in left]
    assert all(b >= 0 and t >= 0 for b, t in rest) and sum(b + t for b, t in rest) == sum(
        b + t for _, b, t in left) - most
    if whole:
        assert all(r == (0, 0) for r in rest)
