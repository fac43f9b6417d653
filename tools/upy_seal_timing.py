#!/usr/bin/env python3
"""Seal timing in real MicroPython 1.27 (the WebAssembly build the tests run), for the board estimate.

Blocks of 27 repetitions after a warm-up, each block in its own script part (this port collects
garbage only between parts, tests/upy.py): a pure-Python signature, the invoice checks, reading
and decoding the tax profile, a one-frame SEAL through Core.handle, and the same invoices through
SEAL_BATCH as 3 x 9 and as 16 + 11 entries (milliseconds per invoice). Prints JSON: min and
median per figure over the rounds. It asserts nothing about time; the figures feed the RP2040
estimate (issue 15), which scales them by a factor stated with the estimate.

Usage: .venv/bin/python tools/upy_seal_timing.py [ROUNDS]
"""
import binascii
import collections
import json
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
from tests.upy import run_upy  # noqa: E402
from tests.daemonkit import sample  # noqa: E402
from hostd.intake.canonical import parse_invoice  # noqa: E402
from protocol import profile_host  # noqa: E402

inv = parse_invoice(sample()).canonical
prof = profile_host.load_bytes("seed-tg")
head = '''
import time, binascii, hashlib
from device.core import Core
from device.flash import Flash
from device.ports import ManualClock, SeededEntropy, StaticKeystore, device_id_for
from device.signer import Signer, derive_secret
from protocol import messages, record, batch, invoice, cbor
INV = binascii.unhexlify("%s")
PROFILE = binascii.unhexlify("%s")
N = 27
secret = derive_secret(SeededEntropy("board-estimate").random(32))
keys = StaticKeystore(secret, device_id_for(Signer(secret).public_key(), "RP2"))
clock = ManualClock()
core = Core(Flash(1024 * 1024), clock, SeededEntropy("e"), keys)
def call(name, **f):
    r = messages.decode_response(core.handle(messages.encode_request(name, **f)))
    assert r[1] == 0, r
    return r[3]
call("PROFILE", data=PROFILE)
call("SET_TIME", time=%d)
def ns():
    return time.time_ns()
def per(t0):
    return (ns() - t0) / 1e6 / N
RID = [0]
def rid():
    RID[0] += 1
    return record.request_id_for("r%%d" %% RID[0])
def singles():
    t0 = ns()
    for i in range(N):
        core.handle(messages.encode_request("SEAL", request_id=rid(), total=len(INV), offset=0, data=INV))
    return per(t0)
def batches(sizes):
    docs = [batch.encode([(rid(), INV) for j in range(n)]) for n in sizes]
    t0 = ns()
    for doc in docs:
        off = 0
        while off < len(doc):
            core.handle(messages.encode_request("SEAL_BATCH", total=len(doc), offset=off, data=doc[off:off + 1984]))
            off += 1984
    return per(t0)
singles()
batches((9, 9, 9))
''' % (binascii.hexlify(inv).decode(), binascii.hexlify(prof).decode(), int(time.time()))
part = '''
#upy:collect
t0 = ns()
for i in range(N):
    core.signer.sign(b"x" * 200)
print("sign_ms %.3f" % per(t0))
#upy:collect
profile = core._the_profile()
t0 = ns()
for i in range(N):
    invoice.decode(INV, profile)
print("invoice_check_ms %.3f" % per(t0))
#upy:collect
t0 = ns()
for i in range(N):
    core._the_profile()
print("profile_load_ms %.3f" % per(t0))
#upy:collect
print("seal_single_ms %.3f" % singles())
#upy:collect
print("seal_batch_9x3_ms %.3f" % batches((9, 9, 9)))
#upy:collect
print("seal_batch_16+11_ms %.3f" % batches((16, 11)))
'''
rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 3
out = run_upy(head + part * rounds, heap=4 << 20, timeout=1800)
got = collections.defaultdict(list)
for line in out.splitlines():
    k, v = line.split()
    got[k].append(float(v))
print(json.dumps({k: {"min": min(v), "median": sorted(v)[len(v) // 2], "all": v} for k, v in got.items()}, indent=1))
