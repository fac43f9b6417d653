"""Report the MicroPython heap needed to seal a 50-line invoice (PREPARE in chunks + COMMIT), and
the board firmware's heap after the scripted session of tests/test_board_fakes.py.

Run: .venv/bin/python tools/upy_heap.py [--json] [--board [RUNS]]

The WebAssembly build collects garbage only between script parts (tests/upy.py explains why), so
two honest figures bracket the true peak a board would see:

- live: bytes still allocated after sealing, once garbage is collected (a lower bound of the peak);
- upper: the smallest heap in which the seal step fits with no collection at all during it (an
  upper bound: live data plus every temporary allocation plus fragmentation).

The setup (imports; a booted core with the seed-tg profile installed, whose signer imports the
61,440-byte fixed-base table, device/p256_table.py) is measured separately.

``--board``: the figure tests/test_board_fakes.py::test_board_leaves_half_of_a_200k_heap_free
checks, from the .mpy files `fiscal board deploy` makes, in RUNS processes (default 3): the
session's certificates come from a fresh authority each time. The collector is conservative, but
text no longer aliases the heap areas the port adds (tests/upy.py), so every run gives the same
figure; a run that differs had a word of binary data name a garbage block.
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
PROFILE = bytes.fromhex("%(profile)s")     # protocol.profile_host.load_bytes("seed-tg")
assert messages.decode_response(core.handle(messages.encode_request("PROFILE", data=PROFILE)))[1] == 0
profile = invoice.load_profile(PROFILE)
items = []
for i in range(50):
    items.append({1: "SKU-%04d" % i, 2: "Item number %d" % i, 3: 1000, 4: 1999 + i, 5: "TG02", 6: "EA"})
lines = invoice.compute_groups(items, "2026-02-17T04:00:00Z", profile)
base, rate, tax = lines[0][2], lines[0][1], lines[0][3]
doc = {1: "308123456", 2: "outlet-kin001", 3: "POS-07", 4: "cashier-13", 5: "sale", 6: "2026-02-17T04:00:00Z",
       7: {1: "Acme Ltd", 2: "123456789", 3: "Company"}, 8: items,
       9: [{1: "TG02", 2: "", 3: rate, 4: base, 5: tax}], 10: {1: base, 2: tax, 3: base + tax, 4: "CDF"},
       11: [{1: "cash", 2: base + tax, 3: "", 4: "CDF"}]}
canonical = cbor.encode(doc)
del items, doc, lines, profile, PROFILE
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
    from protocol import profile_host

    boot = BOOT.replace("%(profile)s", profile_host.load_bytes("seed-tg").hex())
    script = "\n".join([SETUP, COLLECT, boot, COLLECT, SEAL, COLLECT])
    # a board's 200 KB as the first area: what does not fit goes to areas the port adds above the
    # 64 MiB that tools/upy_run.mjs reserves, where no text can name a garbage block (tests/upy.py)
    stats = heap_stats(script, heap=200 * 1024)
    upper = min_heap("\n".join([SETUP, COLLECT, boot, COLLECT, SEAL]), hi=4 << 20, last_part=True)
    return {"invoice_lines": 50, "live_after_imports": stats["live"][0], "live_after_boot": stats["live"][1],
            "live_after_seal": stats["live"][2], "seal_upper_bound": upper}


BOARD_RUN = r"""
import json, pathlib, shutil, sys, tempfile
sys.path.insert(0, %(root)r)
from hostd.boards.deploy import compile_mpy
from tests import test_board_fakes as t
from tests.upy import heap_stats

class Factory:   # what pytest's tmp_path_factory gives the fixtures
    def __init__(self, base):
        self.base = pathlib.Path(base)
    def mktemp(self, name):
        path = self.base / name
        path.mkdir()
        return path

tmp = tempfile.mkdtemp(prefix="upy-board-")
certs = t.certs.__wrapped__(Factory(tmp))
lib = pathlib.Path(tmp) / "lib"
shutil.copytree(t.FAKES, lib)
(lib / "device").mkdir(exist_ok=True)
(lib / "device" / "p256_table.bin").write_bytes(t.TABLE)
for pkg, name in t.BOARD_MODULES:
    (lib / pkg).mkdir(exist_ok=True)
    (lib / pkg / (name + ".mpy")).write_bytes(compile_mpy("%%s/%%s.py" %% (pkg, name), %(root)r))
stats = heap_stats(t._script(certs, '"file"'), heap=t.HEAP, lib=str(lib), root=str(Factory(tmp).mktemp("empty")),
                   timeout=300)
shutil.rmtree(tmp)
print(json.dumps([stats["live"][0], stats["live"][-1], t.HEAP]))
"""


def measure_board(runs=3):
    """[(live after imports, live after the session, heap), ...] of ``runs`` board sessions."""
    import subprocess

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = []
    for _ in range(runs):
        proc = subprocess.run([sys.executable, "-c", BOARD_RUN % {"root": root}], capture_output=True, text=True,
                              check=True, cwd=root)
        out.append(tuple(json.loads(proc.stdout.strip().splitlines()[-1])))
    return out


def main():
    if "--board" in sys.argv:
        at = sys.argv.index("--board")
        runs = int(sys.argv[at + 1]) if len(sys.argv) > at + 1 and sys.argv[at + 1].isdigit() else 3
        found = measure_board(runs)
        if "--json" in sys.argv:
            print(json.dumps(found))
            return
        print("Board firmware session (tests/test_board_fakes.py), MicroPython 1.27 (WebAssembly), %d runs:" % runs)
        for imports, live, heap in found:
            print("  live after imports %7d B, after the session %7d B, free %7d B of %d" % (imports, live,
                                                                                        heap - live, heap))
        return
    result = measure()
    if "--json" in sys.argv:
        print(json.dumps(result))
        return
    print("MicroPython 1.27 (WebAssembly), sealing a %d-line invoice:" % result["invoice_lines"])
    print("  live heap after imports (the sources, compiled here):      %7d B" % result["live_after_imports"])
    print("  live heap after booting the core (the 61,440 B fixed-base table, 16 KiB RAM flash model, "
          "seed-tg installed) + invoice: %7d B" % result["live_after_boot"])
    print("  live heap after PREPARE x2 + COMMIT (lower bound of peak):  %7d B" % result["live_after_seal"])
    print("  heap that fits the seal with no GC at all (upper bound):    %7d B" % result["seal_upper_bound"])


if __name__ == "__main__":
    main()
