"""Cart lines -> exact canonical items, tax lines and totals (the POS never hand-computes a total).

The device's one totals rule (PROTOCOL.md section 6.3) works from net prices: per group,
``base = round_half_up(sum(quantity x unit_price) / 1000)`` and ``tax = round_half_up(base x rate)``.
Carts come in two other forms, and both are turned into items that rule seals exactly:

- **Line discounts** (an amount off a line, in minor units). The canonical item has no discount, so
  a discounted line is sealed at its net: the same quantity at ``(gross - discount) / quantity``
  when that is a whole number of minor units, otherwise one unit (quantity 1000) at the line's
  net amount, its description prefixed with the quantity (``"3 x Widget"``), so every sealed
  amount is exact and the line's net is unchanged.
- **Tax-inclusive prices** (shelf prices that include VAT). Per group, the gross G of its lines is
  split into the base b the device will compute tax on: the largest b with
  ``b + round_half_up(b x rate) <= G``. Each line gets the share ``floor(gross_i x b / G)`` and the
  last line the rest, so the group base is exactly b. With a 16 % rate about one gross total in
  seven has no exact b (the tax steps by one minor unit where the base does not): the sealed
  total is then one minor unit below G. ``pay="total"`` (a POS cart) charges that total and
  reports the difference as ``rounding``; ``pay="gross"`` (an order already paid, e.g. web shop)
  adds the difference as a ``ROUNDING`` item in the exempt group ``exempt_group``, so the sealed
  total equals what was paid.

All arithmetic is on integers (minor units, thousandths, parts per million).
"""

from protocol import invoice, taxgroups
from protocol.errors import InvoiceError
from hostd.errors import InvalidPayload
from hostd.intake.amounts import quantity_text

PPM = taxgroups.PPM
QTY = invoice.QTY_SCALE


def tax_of(base, rate):
    return invoice.round_half_up(base * rate, PPM)


def base_within(gross, rate):
    """The largest base b with b + tax(b) <= gross (b >= 0)."""
    b = gross * PPM // (PPM + rate)          # below or at the answer
    while b + 1 + tax_of(b + 1, rate) <= gross:
        b += 1
    while b > 0 and b + tax_of(b, rate) > gross:
        b -= 1
    return b


def _net_line(line, net):
    """A canonical item (dict) carrying ``net`` minor units for ``line`` exactly."""
    q = line["quantity"]
    item = {"code": line["code"], "description": line.get("description", ""), "quantity": q,
            "unit_price": 0, "tax_group": line["tax_group"], "taxable_unit": line.get("taxable_unit", "")}
    if q > 0 and (net * QTY) % q == 0:
        item["unit_price"] = net * QTY // q
    else:
        item["quantity"] = QTY
        item["unit_price"] = net
        item["description"] = ("%s x %s" % (quantity_text(q), item["description"])).strip()
    return item


def lines_to_invoice(lines, rates, inclusive=False, pay="total", exempt_group=None):
    """Cart ``lines`` -> (items, tax_groups, totals, rounding). Each line: ``code``, ``quantity``
    (thousandths), ``unit_price`` (minor units, net or gross per ``inclusive``), ``tax_group``,
    optional ``discount`` (minor units off the line), ``description``, ``taxable_unit``.
    ``rates``: {group code: rate ppm} in force."""
    groups = {}
    for i, line in enumerate(lines):
        if line["tax_group"] not in rates:
            raise InvalidPayload("items[%d].tax_group %s is not in force" % (i, line["tax_group"]), "items[%d].tax_group" % i)
        if line["quantity"] <= 0:
            raise InvalidPayload("items[%d].quantity must be greater than 0" % i, "items[%d].quantity" % i)
        gross = invoice.round_half_up(line["quantity"] * line["unit_price"], QTY)
        amount = gross - line.get("discount", 0)
        if amount < 0:
            raise InvalidPayload("items[%d].discount is larger than the line" % i, "items[%d].discount" % i)
        groups.setdefault(line["tax_group"], []).append((line, amount))
    items, rounding = [], 0
    for code in sorted(groups):
        members = groups[code]
        rate = rates[code]
        if not inclusive:
            items.extend(_net_line(line, amount) for line, amount in members)
            continue
        gross = sum(amount for _, amount in members)
        base = base_within(gross, rate)
        short = gross - base - tax_of(base, rate)
        shares = [amount * base // gross if gross else 0 for _, amount in members]
        shares[-1] = base - sum(shares[:-1])
        items.extend(_net_line(line, share) for (line, _), share in zip(members, shares))
        rounding += short
    if rounding and pay == "gross":
        if exempt_group is None or rates.get(exempt_group) != 0:
            raise InvalidPayload("tax-inclusive total cannot be sealed exactly and no exempt group takes the "
                                 "rounding", "items")
        items.append({"code": "ROUNDING", "description": "rounding of tax-inclusive prices", "quantity": QTY,
                      "unit_price": rounding, "tax_group": exempt_group, "taxable_unit": ""})
        rounding = 0
    tax_lines, subtotal, vat = _tax_lines(items, rates)
    totals = {"subtotal": subtotal, "total_vat": vat, "total": subtotal + vat}
    return items, tax_lines, totals, rounding


def _tax_lines(items, rates):
    sums = {}
    for item in items:
        sums[item["tax_group"]] = sums.get(item["tax_group"], 0) + item["quantity"] * item["unit_price"]
    lines, subtotal, vat = [], 0, 0
    for code in sorted(sums):
        base = invoice.round_half_up(sums[code], QTY)
        tax = tax_of(base, rates[code])
        lines.append({"code": code, "rate": rates[code], "base_amount": base, "tax_amount": tax})
        subtotal += base
        vat += tax
    return lines, subtotal, vat


def rates_at(timestamp, manifest=None):
    """{code: rate ppm} of every group in force at ``timestamp`` (default: the shipped profile's)."""
    manifest = invoice.default_profile()["groups"] if manifest is None else manifest
    out = {}
    for code in taxgroups.codes(manifest):
        try:
            out[code] = taxgroups.in_force(code, timestamp, manifest)[2]
        except InvoiceError:   # not in force at that time: simply absent
            continue
    return out
