"""The refund split (issue 11, seed 002 ``POST /invoices/{n}/refund``): a tax-inclusive amount
cut into one base per tax group of the original, in integers, so that the credit note the device
recomputes (PROTOCOL.md 6.3: ``tax = round_half_up(base x rate)`` per group) totals exactly the
amount refunded, and no group goes past what remains of it.

Why not simply ``amount x share / (1 + rate)``: the device recomputes each group's tax from its
base, so the credit note's total is ``sum(base + tax(base))``, and ``b + tax(b)`` skips values
(at 16 %: bases 3 and 4 give 3 and 5, never 4); and ``tax(b1) + tax(b2)`` may differ by one
from ``tax(b1 + b2)``, so after some credits a group's remaining tax may no longer be the tax of
its remaining base, and a cent of it can never be credited (a limit of the device's rule that the
step 3 choice avoids where it can). The rule, exactly (README "Credit notes"):

1. What each group g can still take: its remaining base ``rb`` (original minus every earlier
   credit) capped so that ``tax(b)`` stays within its remaining tax ``rt``; ``room(g)`` is that
   base's gross ``b + tax(b)`` at the rate in force now. An amount above ``sum room`` is
   CREDIT_EXCEEDS_BALANCE.
2. Shares by largest remainder: ``share(g) = floor(A x room(g) / sum room)``, then one more minor
   unit to the groups with the largest remainders (ties: lower code first) until they sum to A.
3. Bases: ``near(g)`` is the largest base within the cap whose gross is at most ``share(g)``; each
   group's base is taken within WINDOW (3) units of ``near(g)`` so that the grosses ``b + tax(b)``
   sum to exactly A, and among those choices: first, as few groups as possible left with a
   remaining tax other than the tax of their remaining base (``rt - tax(b) != tax(rb - b)``: such
   a rest could never be refunded to zero, since every credit's tax is recomputed from its own
   base); then the smallest sum of ``|gross(g) - share(g)|``; then the lowest code nearest its
   share, then the next, and so on.
4. If no such choice exists, no credit note totals A by this rule (for one group: ``b + tax(b)``
   skips A): REFUND_AMOUNT_UNREACHABLE, naming the nearest amounts below and above that the rule
   reaches.
"""

from protocol import invoice, taxgroups
from hostd.errors import CreditExceedsBalance, RefundUnreachable
from hostd.intake.amounts import money_text

NEAREST = 8   # how far from an unreachable amount the refusal looks for reachable ones
WINDOW = 3    # base units around each group's share that step 3 considers


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


def refundable(remaining, rates):
    """The most a refund can still take of ``remaining`` [[code, base, tax]] (step 1's sum of rooms)."""
    return sum(gross(cap(b, t, rates[c]), rates[c]) for c, b, t in remaining)


def split(amount, remaining, rates, digits=2):
    """[[code, base, tax], ...] (codes in order, bases > 0) of a refund of ``amount`` minor units
    against ``remaining`` [[code, base, tax]] (what is left of each group of the original), with
    ``rates`` {code: ppm} in force now; the rule of the module docstring. ``digits``: the
    currency's, for the refusals' text. An amount the rule cannot reach is refused naming the
    nearest amounts it can (step 4)."""
    codes = [g[0] for g in remaining]
    rate = [rates[c] for c in codes]
    limit = [cap(g[1], g[2], r) for g, r in zip(remaining, rate)]
    most = refundable(remaining, rates)
    if amount > most:
        raise CreditExceedsBalance("a refund of %s exceeds what remains refundable of the original: %s"
                                   % (money_text(amount, digits), money_text(most, digits)), "amount")
    base = _bases(amount, remaining, rate, limit)
    if base is None:
        below = [a for a in range(amount - 1, max(0, amount - NEAREST), -1) if _bases(a, remaining, rate, limit)]
        above = [a for a in range(amount + 1, min(most, amount + NEAREST) + 1) if _bases(a, remaining, rate, limit)]
        nearest = " or ".join(money_text(a[0], digits) for a in (below, above) if a) or "none near it"
        raise RefundUnreachable("no credit note totals exactly %s: each group's tax is computed from its base, so "
                                "its total skips some amounts; the nearest that can be refunded: %s"
                                % (money_text(amount, digits), nearest), "amount")
    return [[c, b, tax_of(b, r)] for c, b, r in zip(codes, base, rate) if b]


def _bases(amount, remaining, rate, limit):
    """Step 3 for an ``amount`` within reach: each group's base, or None when no choice within
    WINDOW units of the shares sums exactly (a walk over the groups in code order, keeping for each
    running total the best choice so far: it stays small, the totals differ by a few units)."""
    shares = largest_remainder(amount, [gross(b, r) for b, r in zip(limit, rate)])
    best = {0: ((0, 0, ()), ())}   # running gross total -> ((groups left unrefundable, sum |off|, each off), bases)
    for share, (_, rb, rt), r, lim in zip(shares, remaining, rate, limit):
        near = base_for(share, r, lim)
        step = {}
        for total, (cost, bases) in best.items():
            for b in range(max(0, near - WINDOW), min(lim, near + WINDOW) + 1):
                g = gross(b, r)
                if total + g > amount:
                    break
                off = abs(g - share)
                stuck = 0 if rt - tax_of(b, r) == tax_of(rb - b, r) else 1
                candidate = ((cost[0] + stuck, cost[1] + off, cost[2] + (off,)), bases + (b,))
                if total + g not in step or candidate[0] < step[total + g][0]:
                    step[total + g] = candidate
        best = step
    return list(best[amount][1]) if amount in best else None
