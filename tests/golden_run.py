"""The golden exchange (protocol version 3), runnable unchanged by CPython and by real MicroPython.

Fixed key, fixed entropy, manual clock, in-memory flash: every byte the device emits is then a
function of the code alone. It prints one line per item (``kind hex``): each request frame and
the response frames, the journal records and a hash of the whole flash image. It covers PROFILE_READ
(empty, then the installed profile), PROFILE (installed, the same again, another refused),
PREPARE -> COMMIT (chunked, replayed, unknown nonce), SEAL (replayed, a reused request id), STATUS
by nonce and by request id, HEAD, EVIDENCE and a credit note, the same evidence again (stale), a
credit beyond the balance, ARCHIVED of the open period (refused), CLOSE Z, a Z of an earlier day
(refused), CLOSE M from that Z, CLOSE Y from that M, X, ARCHIVED with a checkpoint and an erase on
a 16 KiB flash, then READ_JOURNAL of the live records, and SEAL_BATCH (sealed, replayed and
refused entries, sent twice).
tools/gen_vectors.py stores the CPython output as protocol/vectors/golden.json; the test suite
checks that CPython and MicroPython both reproduce it byte for byte.

Run: ``python tests/golden_run.py`` from the repo root (CPython), or through tools/upy_run.mjs.
"""

import binascii
import hashlib
import json

import protocol

from device.core import Core
from device.flash import Flash
from device.link import Link
from device.ports import ManualClock, SeededEntropy, StaticKeystore, device_id_for
from device.signer import Signer, derive_secret
from protocol import cbor, frames, invoice, messages, record

T0 = 1771300800  # 2026-02-17T04:00:00Z


def hexs(data):
    return binascii.hexlify(data).decode()


def profile_bytes(name):
    """A shipped profile's canonical CBOR, read from its JSON file (protocol/profiles/)."""
    with open(protocol.__file__.rsplit("/", 1)[0] + "/profiles/%s.json" % name) as fh:
        return cbor.encode(json.loads(fh.read()))


PROFILE = invoice.load_profile(profile_bytes("seed-tg"))


def make_invoice(n_lines, cashier="cashier-13", itype="sale", credit=None):
    """A valid canonical invoice map with ``n_lines`` items over three tax groups."""
    groups = ("TG02", "TG03", "TG04")
    items = []
    for i in range(n_lines):
        items.append({1: "SKU-%04d" % i, 2: "Item number %d" % i, 3: 1000 + 250 * (i % 5),
                      4: 1999 + 37 * i, 5: groups[i % 3], 6: "EA"})
    timestamp = "2026-02-17T04:00:00Z"
    lines = invoice.compute_groups(items, timestamp, PROFILE)
    subtotal = 0
    vat = 0
    tax_lines = []
    for code, rate, base, tax in lines:
        tax_lines.append({1: code, 2: "", 3: rate, 4: base, 5: tax})
        subtotal += base
        vat += tax
    doc = {1: "308123456", 2: "outlet-kin001", 3: "POS-07", 4: cashier, 5: itype, 6: timestamp,
           7: {1: "Acme Ltd", 2: "123456789", 3: "Company"}, 8: items, 9: tax_lines,
           10: {1: subtotal, 2: vat, 3: subtotal + vat, 4: "CDF"},
           11: [{1: "mobile_money", 2: subtotal + vat, 3: "AIRTEL-001", 4: "CDF"}]}
    if credit is not None:
        doc[12] = {1: credit, 2: "returned goods"}
    return doc


class Host:
    def __init__(self, link):
        self.link = link
        self.seq = 0

    def send(self, name, **fields):
        self.seq = (self.seq + 1) & 0xFF
        frame = frames.encode_frame(self.seq, messages.encode_request(name, **fields))
        out = self.link.feed(frame)
        print("req %s %s" % (name, hexs(frame)))
        print("resp %s %s" % (name, hexs(out)))
        return messages.decode_response(frames.FrameDecoder().feed(out)[0][2])[3]

    def seal(self, canonical, chunk, rid):
        offset = 0
        while offset < len(canonical):
            answer = self.send("PREPARE", total=len(canonical), offset=offset, data=canonical[offset:offset + chunk],
                               request_id=rid)
            offset += chunk
        return answer["nonce"], self.send("COMMIT", nonce=answer["nonce"])["sealed"]


def main():
    secret = derive_secret(SeededEntropy("golden-key").random(32))
    keystore = StaticKeystore(secret, device_id_for(Signer(secret).public_key(), "GLD"))
    flash = Flash(16 * 1024)
    clock = ManualClock()
    core = Core(flash, clock, SeededEntropy("golden"), keystore)
    host = Host(Link(core))
    host.send("INFO")
    host.send("PROFILE_READ")                           # none installed yet: empty
    seed = profile_bytes("seed-tg")
    host.send("PROFILE", data=seed)
    host.send("PROFILE_READ")
    host.send("SET_TIME", time=T0)
    small = cbor.encode(make_invoice(3))
    print("invoice %s" % hexs(small))
    nonce, sealed = host.seal(small, 200, record.request_id_for("2p:golden-1"))
    print("fiscal_number %s" % sealed[1])
    clock.advance(2)
    host.send("COMMIT", nonce=nonce)          # a repeated COMMIT: same seal, nothing written
    host.send("STATUS", nonce=nonce)
    host.send("COMMIT", nonce=b"\x00" * 16)  # an unknown nonce: a typed error
    large = cbor.encode(make_invoice(50))
    print("invoice50 %d %s" % (len(large), hexs(hashlib.sha256(large).digest())))
    host.seal(large, 1900, record.request_id_for("2p:golden-50"))
    rid = record.request_id_for("1p:golden-seal")
    one = cbor.encode(make_invoice(2, "cashier-14"))
    host.send("SEAL", request_id=rid, total=len(one), offset=0, data=one)
    host.send("SEAL", request_id=rid, total=len(one), offset=0, data=one)     # replayed: nothing written
    host.send("SEAL", request_id=rid, total=len(small), offset=0, data=small)  # REQUEST_ID_REUSED
    host.send("STATUS", request_id=rid)
    host.send("STATUS", request_id=record.request_id_for("1p:never"))
    host.send("HEAD", challenge=b"golden audit")
    host.send("PROFILE", data=seed)                     # the same again: harmless
    host.send("PROFILE", data=profile_bytes("drc-dgi"))  # another after the first invoice: PROFILE_LOCKED
    # a credit note for one item of the first invoice: the original's record and prev, nothing
    # credited yet, and the proof in an empty credit tree (a zero bitmap, no sibling)
    host.send("EVIDENCE", record=sealed[record.S_RECORD] + sealed[record.S_SIGNATURE],
              prev=sealed[record.S_PREVIOUS_HASH], credited=[], proof=b"\x00" * 4)
    credit = cbor.encode(make_invoice(1, "cashier-14", "credit_note", sealed[record.S_FISCAL_NUMBER]))
    host.send("SEAL", request_id=record.request_id_for("1p:golden-credit"), total=len(credit), offset=0,
              data=credit)
    # the same evidence again: the credit moved the root on, so it is stale (CREDIT_EVIDENCE_STALE)
    host.send("EVIDENCE", record=sealed[record.S_RECORD] + sealed[record.S_SIGNATURE],
              prev=sealed[record.S_PREVIOUS_HASH], credited=[], proof=b"\x00" * 4)
    # the whole original: the evidence stays armed for the new root, but TG02 has nothing left (CREDIT_EXCEEDS)
    full = cbor.encode(make_invoice(3, "cashier-14", "credit_note", sealed[record.S_FISCAL_NUMBER]))
    host.send("SEAL", request_id=record.request_id_for("1p:golden-credit-2"), total=len(full), offset=0,
              data=full)
    for i in range(16):                       # fill the first sector, so ARCHIVED has one to erase
        clock.advance(1)
        filler = cbor.encode(make_invoice(1, "filler-%02d" % i))
        host.send("SEAL", request_id=record.request_id_for("1p:golden-%02d" % i), total=len(filler), offset=0,
                  data=filler)
    info = host.send("INFO")
    head = core.journal.chain(info["seq"])[1]
    host.send("ARCHIVED", seq=info["seq"], hash=head)   # ARCHIVE_OPEN_PERIOD: no Z yet
    z = host.send("CLOSE", kind="Z", period="2026-02-17", offset=0, records=[], last=True)
    host.send("CLOSE", kind="Z", period="2026-02-16", offset=0, records=[], last=True)   # CLOSE_PERIOD
    m = host.send("CLOSE", kind="M", period="2026-02", offset=0, records=[z["record"]], last=True)
    host.send("CLOSE", kind="Y", period="2026", offset=0, records=[m["record"]], last=True)
    host.send("X")
    info = host.send("INFO")
    for seq, payload in core.journal.records(1):
        print("record %d %s" % (seq, hexs(payload)))
    host.send("ARCHIVED", seq=z["seq"], hash=b"\x00" * 32)   # ARCHIVE_HASH_MISMATCH
    host.send("ARCHIVED", seq=z["seq"], hash=z["hash"])
    host.send("ARCHIVED", seq=z["seq"], hash=z["hash"])   # a re-send: harmless
    host.send("READ_JOURNAL", first=1, count=16)        # RANGE_INVALID: archived and erased
    host.send("READ_JOURNAL", first=z["seq"] + 1, count=16)
    # SEAL_BATCH in two chunks: two new invoices, the first again (replayed), a credit (BATCH_CREDIT),
    # a malformed invoice and a reused request id; then the same batch again: every seal replayed
    clock.advance(5)
    entries = [[record.request_id_for("1p:golden-b%d" % i), cbor.encode(make_invoice(i + 1, "batch-%d" % i))]
               for i in range(2)]
    entries += [entries[0], [record.request_id_for("1p:golden-bc"), credit],
                [record.request_id_for("1p:golden-bm"), b"\xa0"], [entries[1][0], small]]
    doc = cbor.encode(entries)
    for _ in range(2):
        host.send("SEAL_BATCH", total=len(doc), offset=0, data=doc[:300])
        host.send("SEAL_BATCH", total=len(doc), offset=300, data=doc[300:])
    host.send("STATUS", request_id=entries[1][0])
    host.send("INFO")
    for seq, payload in core.journal.records(core.journal.first_live):
        print("live %d %s" % (seq, hexs(payload)))
    print("flash %s" % hexs(hashlib.sha256(flash.image()).digest()))


main()
