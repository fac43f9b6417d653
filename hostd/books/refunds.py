"""The refund split (issue 11, seed 002 ``POST /invoices/{n}/refund``): a tax-inclusive amount
cut into one base per tax group of the original, in integers, so that the credit note the device
recomputes (PROTOCOL.md 6.3: ``tax = round_half_up(base x rate)`` per group) totals exactly the
amount refunded, and no group goes past what remains of it.

Why not simply ``amount x share / (1 + rate)``: the device recomputes each group's tax from its
base, so the credit note's total is ``sum(base + tax(base))``, and ``b + tax(b)`` skips values
(at 16 %: bases 3 and 4 give 3 and 5, never 4). The rule, exactly (README "Credit notes"):

1. What each group g can still take: its remaining base ``rb`` (original minus every earlier
   credit) capped so that ``tax(b)`` stays within its remaining tax ``rt``; ``room(g)`` is that
   base's gross ``b + tax(b)`` at the rate in force now. An amount above ``sum room`` is
   CREDIT_EXCEEDS_BALANCE.
2. Shares by largest remainder: ``share(g) = floor(A x room(g) / sum room)``, then one more minor
   unit to the groups with the largest remainders (ties: lower code first) until they sum to A.
3. Each group's base is the largest ``b`` within its cap whose gross ``b + tax(b)`` is at most its
   share (one minor unit short at most, at rates up to 100 %).
4. What is left goes to the groups in code order, one base unit at a time, to a group whose next
   unit adds no more than is left, until nothing is left. A last minor unit that only a unit adding
   two could take moves one base unit: the first group (by code) whose next unit adds 2, and for
   which another group's last unit added 1, takes it; the first such other group gives one back.
5. If a minor unit is still left, no credit note totals A by this rule (always so for one group:
   ``b + tax(b)`` skips A): REFUND_AMOUNT_UNREACHABLE, naming A - 1 and A + 1.
"""

from protocol import invoice, taxgroups
from hostd.errors import CreditExceedsBalance, RefundUnreachable
from hostd.intake.amounts import money_text


def tax_of(base, rate):
    """The device's tax of a group: round_half_up(base x rate ppm / 10^6) (protocol/invoice.py)."""
    return invoice.round_half_up(base * rate, taxgroups.PPM)


def gross(base, rate):
    return base + tax_of(base, rate)


def largest_remainder(amount, weights):
    """Integer parts of ``amount`` proportional to ``weights`` (not all 0), summing exactly to it;
    the extra units go to the largest remainders, ties to the earlier weight."""
    total = sum(weights)
    parts = [amount * w // total for w in weights]
    remainders = [amount * w % total for w in weights]
    order = sorted(range(len(weights)), key=lambda i: (-remainders[i], i))
    for i in order[:amount - sum(parts)]:
        parts[i] += 1
    return parts


def cap(base_left, tax_left, rate):
    """The largest base within ``base_left`` whose tax stays within ``tax_left``."""
    if rate == 0:
        return base_left
    # tax_of(b) <= t  <=>  2 b rate + PPM < 2 PPM (t + 1)  <=>  b <= (PPM (2 t + 1) - 1) // (2 rate)
    return min(base_left, (taxgroups.PPM * (2 * tax_left + 1) - 1) // (2 * rate))


def base_for(share, rate, limit):
    """The largest base b <= ``limit`` with gross(b) <= ``share`` (0 when none)."""
    b = min(limit, share * taxgroups.PPM // (taxgroups.PPM + rate))
    while b < limit and gross(b + 1, rate) <= share:
        b += 1
    while b > 0 and gross(b, rate) > share:
        b -= 1
    return b


def split(amount, remaining, rates, digits=2):
    """[[code, base, tax], ...] (codes in order, bases > 0) of a refund of ``amount`` minor units
    against ``remaining`` [[code, base, tax]] (what is left of each group of the original), with
    ``rates`` {code: ppm} in force now; the rule of the module docstring. ``digits``: the
    currency's, for the refusals' text."""
    codes = [g[0] for g in remaining]
    rate = [rates[c] for c in codes]
    limit = [cap(g[1], g[2], r) for g, r in zip(remaining, rate)]
    room = [gross(b, r) for b, r in zip(limit, rate)]
    if amount > sum(room):
        raise CreditExceedsBalance("a refund of %s exceeds what remains refundable of the original: %s"
                                   % (money_text(amount, digits), money_text(sum(room), digits)), "amount")
    shares = largest_remainder(amount, room)
    base = [base_for(s, r, lim) for s, r, lim in zip(shares, rate, limit)]
    left = amount - sum(gross(b, r) for b, r in zip(base, rate))
    moved = True
    while left and moved:
        moved = False
        for i in range(len(codes)):
            step = gross(base[i] + 1, rate[i]) - gross(base[i], rate[i])
            if left and base[i] < limit[i] and step <= left:
                base[i] += 1
                left -= step
                moved = True
    if left == 1:
        _swap(base, rate, limit)
        left = amount - sum(gross(b, r) for b, r in zip(base, rate))
    if left:
        raise RefundUnreachable("no credit note totals exactly %s: each group's tax is computed from its base, "
                                "so its total skips some amounts; the nearest are %s and %s" % (
                                    money_text(amount, digits), money_text(amount - 1, digits),
                                    money_text(amount + 1, digits)), "amount")
    return [[c, b, tax_of(b, r)] for c, b, r in zip(codes, base, rate) if b]


def _swap(base, rate, limit):
    """Step 4's last move: the first group (by code) whose next unit adds 2 and for which another
    group's last unit added 1 takes one unit; that other group (the first such) gives one back."""
    for i in range(len(base)):
        if base[i] < limit[i] and gross(base[i] + 1, rate[i]) - gross(base[i], rate[i]) == 2:
            for j in range(len(base)):
                if j != i and base[j] > 0 and gross(base[j], rate[j]) - gross(base[j] - 1, rate[j]) == 1:
                    base[i] += 1
                    base[j] -= 1
                    return
