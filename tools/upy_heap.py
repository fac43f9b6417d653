"""Report the MicroPython heap needed to seal a 50-line invoice (PREPARE in chunks + COMMIT).

Run: .venv/bin/python tools/upy_heap.py [--json]

The WebAssembly build collects garbage only between script parts (tests/upy.py explains why), so
two honest figures bracket the true peak a board would see:

- live: bytes still allocated after sealing, once garbage is collected (a lower bound of the peak);
- upper: the smallest heap in which the seal step fits with no collection at all during it (an
  upper bound: live data plus every temporary allocation plus fragmentation).

The setup (imports, the 61,440-byte fixed-base table, a booted core) is measured separately.
"""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tests.upy import COLLECT, heap_stats, min_heap  # noqa: E402

SETUP = """
import gc
import sys
sys.path.append("/lib")
from device.core import Core
from device.flash import Flash
from device.link import Link
from device.ports import ManualClock, SeededEntropy, StaticKeystore, device_id_for
from device.signer import Signer, derive_secret
from protocol import cbor, frames, invoice, messages
"""

BOOT = """
secret = derive_secret(SeededEntropy("heap").random(32))
core = Core(Flash(16 * 1024), ManualClock(), SeededEntropy("heap-n"), StaticKeystore(secret, "HEAP-1"))
core.handle(messages.encode_request("SET_TIME", time=1771300800))
items = []
for i in range(50):
    items.append({1: "SKU-%04d" % i, 2: "Item number %d" % i, 3: 1000, 4: 1999 + i, 5: "TG02", 6: "EA"})
lines = invoice.compute_groups(items, "2026-02-17T04:00:00Z")
base, rate, tax = lines[0][2], lines[0][1], lines[0][3]
doc = {1: "308123456", 2: "outlet-kin001", 3: "POS-07", 4: "cashier-13", 5: "sale", 6: "2026-02-17T04:00:00Z",
       7: {1: "Acme Ltd", 2: "123456789", 3: "Company"}, 8: items,
       9: [{1: "TG02", 2: "", 3: rate, 4: base, 5: tax}], 10: {1: base, 2: tax, 3: base + tax, 4: "CDF"},
       11: [{1: "cash", 2: base + tax, 3: "", 4: "CDF"}]}
canonical = cbor.encode(doc)
del items, doc, lines
"""

SEAL = """
offset = 0
while offset < len(canonical):
    answer = messages.decode_response(core.handle(messages.encode_request(
        "PREPARE", total=len(canonical), offset=offset, data=canonical[offset:offset + 1984],
        request_id=b"\x01" * 16)))[3]
    offset += 1984
sealed = messages.decode_response(core.handle(messages.encode_request("COMMIT", nonce=answer["nonce"])))[3]
assert sealed["sealed"][2] == 1
del answer, sealed, offset
"""


def measure():
    script = "\n".join([SETUP, COLLECT, BOOT, COLLECT, SEAL, COLLECT])
    stats = heap_stats(script, heap=4 << 20)
    upper = min_heap("\n".join([SETUP, COLLECT, BOOT, COLLECT, SEAL]), hi=4 << 20, last_part=True)
    return {"invoice_lines": 50, "live_after_imports": stats["live"][0], "live_after_boot": stats["live"][1],
            "live_after_seal": stats["live"][2], "seal_upper_bound": upper}


def main():
    result = measure()
    if "--json" in sys.argv:
        print(json.dumps(result))
        return
    print("MicroPython 1.27 (WebAssembly), sealing a %d-line invoice:" % result["invoice_lines"])
    print("  live heap after imports (incl. 61,440 B fixed-base table): %7d B" % result["live_after_imports"])
    print("  live heap after booting the core (16 KiB RAM flash model) + invoice: %7d B" % result["live_after_boot"])
    print("  live heap after PREPARE x2 + COMMIT (lower bound of peak):  %7d B" % result["live_after_seal"])
    print("  heap that fits the seal with no GC at all (upper bound):    %7d B" % result["seal_upper_bound"])


if __name__ == "__main__":
    main()
