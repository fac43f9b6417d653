"""Credits bound to their original: EVIDENCE, and the checks a credit invoice passes before sealing.

DESIGN-NOTES invariant 11 and issue 11; PROTOCOL.md 4.21 and 7.9. The device keeps one 32-byte
root of a sparse Merkle tree (protocol/smt.py) keyed by original fiscal counter, whose leaf is what
has been credited against that original so far, per tax group. The root is the newest credit
invoice's (key 18) or the newest checkpoint's, found when the journal is read at power-up
(device/journal.py ``credit_root``), so it survives archiving and erasing. The host keeps the
leaves. Before a credit it sends EVIDENCE: the original's record and its prev (the device checks
its own signature over them: one pure-Python ECDSA verification, seconds on a board, acceptable
for a credit), the credited list and its proof against the current root. That arms the original
in RAM (at most MAX_ARMED, lost at power-up). A credit invoice then needs armed evidence for the
original it names, the same currency, the matching kind (credit_note for a sale or an advance,
export_credit for an export), and per group base and tax credited-so-far plus this credit within
the original's. Every credit record carries the original's counter and the new root; once it is
on flash the armed entry moves on and every other armed entry is dropped (its proof is for the
old root). Evidence older than the current root never verifies: a host replaying it is refused
(CREDIT_EVIDENCE_STALE) and cannot over-refund.

Imported only when a credit or EVIDENCE comes (core.py, sealing.py), to spare a board's heap.
"""

import hashlib

from protocol import invoice, p256, record, smt
from protocol.errors import CreditError, MessageError, VerifyError

MAX_ARMED = 4
KINDS = {"credit_note": ("sale", "advance"), "export_credit": ("export",)}
# armed entry: [counter, invoice_type, currency, original [[code, base, tax]], credited, proof, root]
E_COUNTER, E_TYPE, E_CURRENCY, E_GROUPS, E_CREDITED, E_PROOF, E_ROOT = 0, 1, 2, 3, 4, 5, 6


def _invalid(text):
    raise CreditError("CREDIT_EVIDENCE_INVALID", text)


def root(core):
    return core.journal.credit_root or smt.empty_root()


def counter_of(core, number):
    """The counter of fiscal number ``number`` if this device sealed it (CREDIT_ORIGINAL_UNKNOWN)."""
    prefix = core.device_id + "-"
    digits = number[len(prefix):] if number.startswith(prefix) else ""
    n = int(digits) if digits.isdigit() else 0
    if n < 1 or n > core.counter or record.fiscal_number(core.device_id, n) != number:
        raise CreditError("CREDIT_ORIGINAL_UNKNOWN", "%s is not a fiscal number this device sealed" % number)
    return n


def _amounts(credited):
    """A credited list's shape: [[code, base, tax], ...], codes increasing, amounts not negative."""
    last = None
    for entry in credited:
        if not (isinstance(entry, list) and len(entry) == 3 and isinstance(entry[0], str)
                and invoice._is_int(entry[1]) and invoice._is_int(entry[2]) and entry[1] >= 0 and entry[2] >= 0):
            _invalid("credited entry %r is not [code, base, tax]" % (entry,))
        if last is not None and entry[0] <= last:
            _invalid("credited codes are not strictly increasing")
        last = entry[0]
    return credited


def _remaining(groups, credited):
    done = {}
    for code, base, tax in credited:
        done[code] = (base, tax)
    return [[code, base - done.get(code, (0, 0))[0], tax - done.get(code, (0, 0))[1]] for code, base, tax in groups]


def on_evidence(core, fields):
    rec, prev, proof = bytes(fields["record"]), bytes(fields["prev"]), bytes(fields["proof"])
    if len(prev) != record.HASH_LEN:
        raise MessageError("MESSAGE_FIELD", "prev must be %d bytes" % record.HASH_LEN)
    credited = _amounts(fields["credited"])
    try:
        f, body, sig = record.decode(rec)
    except VerifyError as exc:
        _invalid(exc.detail)
    if len(rec) > record.MAX_RECORD or f.get(record.K_TYPE) != record.INVOICE or f.get(record.K_DEVICE) != core.device_id:
        _invalid("the record is not an invoice record of device %s" % core.device_id)
    n = f.get(record.K_COUNTER)
    if not invoice._is_int(n) or n < 1 or n > core.counter:
        _invalid("the record's counter is not one this device sealed")
    if not (p256.is_low_s(sig) and p256.verify(core.signer.public_key(), hashlib.sha256(record.signing_input(prev, body))
                                                .digest(), sig)):
        _invalid("the record's signature does not verify with this device's key over that prev")
    if f[record.K_INVOICE_TYPE] in invoice.CREDIT_TYPES:
        raise CreditError("CREDIT_OF_CREDIT", "%s is itself a %s" % (record.fiscal_number(core.device_id, n),
                                                                   f[record.K_INVOICE_TYPE]))
    try:
        siblings = smt.proof_siblings(proof)
    except ValueError as exc:
        _invalid(str(exc))
    now = root(core)
    if smt.root_of(n, smt.leaf(credited), siblings) != now:
        raise CreditError("CREDIT_EVIDENCE_STALE", "the credited amounts and proof do not give the device's credit "
                          "root: they are stale or altered")
    groups = [[g[0], g[2], g[3]] for g in f[record.K_GROUPS]]
    entry = [n, f[record.K_INVOICE_TYPE], f[record.K_CURRENCY], groups, credited, proof, now]
    core.armed = [e for e in core.armed if e[E_COUNTER] != n and e[E_ROOT] == now][-(MAX_ARMED - 1):] + [entry]
    return {"original": n, "remaining": _remaining(groups, credited), "armed": len(core.armed)}


def check(core, summary):
    """(counter, new root, armed entry, credited after) for a credit invoice, or a CreditError."""
    n = counter_of(core, summary["credit"][0])
    entry = None
    for e in core.armed:
        if e[E_COUNTER] == n:
            entry = e
    if entry is None:
        raise CreditError("CREDIT_EVIDENCE_MISSING", "no evidence armed for %s; send EVIDENCE first"
                          % summary["credit"][0])
    if entry[E_ROOT] != root(core):
        raise CreditError("CREDIT_EVIDENCE_STALE", "another credit was sealed since the evidence; send EVIDENCE again")
    if summary["currency"] != entry[E_CURRENCY]:
        raise CreditError("CREDIT_CURRENCY", "the credit is in %s, the original in %s"
                          % (summary["currency"], entry[E_CURRENCY]))
    if entry[E_TYPE] not in KINDS[summary["type"]]:
        raise CreditError("CREDIT_KIND", "a %s cannot credit a %s invoice" % (summary["type"], entry[E_TYPE]))
    left = _remaining(entry[E_GROUPS], entry[E_CREDITED])
    if not [g for g in left if g[1] or g[2]]:
        raise CreditError("CREDIT_SETTLED", "%s is fully credited already" % summary["credit"][0])
    done = {}
    for code, base, tax in entry[E_CREDITED]:
        done[code] = [base, tax]
    rest = {}
    for code, base, tax in left:
        rest[code] = (base, tax)
    for code, base, tax in summary["groups"]:
        have = rest.get(code)
        if have is None or base > have[0] or tax > have[1]:
            raise CreditError("CREDIT_EXCEEDS", "group %s: credit %d + %d exceeds the remaining %s"
                              % (code, base, tax, "%d + %d" % have if have else "nothing (not in the original)"))
        cur = done.get(code, [0, 0])
        done[code] = [cur[0] + base, cur[1] + tax]
    after = [[code, done[code][0], done[code][1]] for code in sorted(done)]
    new_root = smt.root_of(n, smt.leaf(after), smt.proof_siblings(entry[E_PROOF]))
    return [n, new_root, entry, after]


def sealed(core, credit):
    """After the credit record is on flash: its entry stays armed for the new root; the others
    were proved against the old root and are dropped."""
    entry = credit[2]
    entry[E_CREDITED], entry[E_ROOT] = credit[3], credit[1]
    core.armed = [entry]
