"""Regenerate protocol/vectors/golden.json from tests/golden_run.py run under CPython.

The file is the published golden vector set (protocol version 3): the request and response
frames of the golden exchange (PROFILE_READ and PROFILE, PREPARE -> COMMIT chunked and replayed,
an unknown nonce, a 50-line invoice, SEAL replayed and refused, STATUS by nonce and by request id,
HEAD, EVIDENCE and a credit note, stale evidence and a credit beyond the balance refused, CLOSE Z,
M and Y, X, ARCHIVED refused for the open period, then with a checkpoint and an erase,
READ_JOURNAL), the journal records before archiving, the live records after it and a hash of the
flash image.
Run it only when the protocol deliberately changes; the tests fail whenever CPython or
MicroPython stop reproducing the committed file byte for byte.

Usage: .venv/bin/python tools/gen_vectors.py
"""

import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "protocol", "vectors", "golden.json")


def run_cpython():
    env = dict(os.environ, PYTHONPATH=ROOT)
    return subprocess.run([sys.executable, os.path.join(ROOT, "tests", "golden_run.py")], env=env,
                          check=True, capture_output=True, text=True).stdout


def to_vectors(output):
    """golden_run.py's lines -> the JSON document stored in the repo."""
    exchange, records, live, other = [], [], [], {}
    for line in output.splitlines():
        parts = line.split(" ")
        if parts[0] in ("req", "resp"):
            exchange.append({"dir": parts[0], "message": parts[1], "hex": parts[2]})
        elif parts[0] == "record":
            records.append(parts[2])
        elif parts[0] == "live":
            live.append(parts[2])
        else:
            other[parts[0]] = " ".join(parts[1:])
    return {"about": "Golden vectors: see tests/golden_run.py and protocol/PROTOCOL.md section Golden vectors",
            "exchange": exchange, "journal_records": records, "live_records": live, "facts": other,
            "lines": output.splitlines()}


def main():
    vectors = to_vectors(run_cpython())
    with open(OUT, "w") as fh:
        json.dump(vectors, fh, indent=1)
        fh.write("\n")
    print("wrote %s (%d frames, %d records)" % (OUT, len(vectors["exchange"]), len(vectors["journal_records"])))


if __name__ == "__main__":
    main()
