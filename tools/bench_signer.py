"""Benchmark: signatures per second of the pure-Python device signer against pyca/cryptography.

Why: the device signs every sealed invoice with device/signer.py (ECDSA P-256 / SHA-256, RFC 6979
deterministic k, fixed-base table from device/p256_table.py).  This prints how far the pure-Python
fixed-base path is from OpenSSL's deterministic ECDSA (FIPS 186-4 6.4.1 signing), measured in the
same run on the same messages, plus the variable-base and verification paths of protocol/p256.py.
It asserts nothing (docs/CONTRIBUTING.md: no timing assertions; benchmarks live under tools/).

Usage: python tools/bench_signer.py [seconds per measurement, default 1.0]
"""

import hashlib
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from cryptography.hazmat.primitives import hashes  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec, utils  # noqa: E402

from device.signer import Signer  # noqa: E402
from protocol import p256  # noqa: E402

SECRET = hashlib.sha256(b"bench_signer fixed key").digest()


def rate(fn, seconds):
    """Calls per second of fn(i), running for about ``seconds`` (at least 3 calls)."""
    count = 0
    start = time.perf_counter()
    while True:
        fn(count)
        count += 1
        elapsed = time.perf_counter() - start
        if count >= 3 and elapsed >= seconds:
            return count / elapsed


def main(argv):
    seconds = float(argv[1]) if len(argv) > 1 else 1.0
    d = int.from_bytes(SECRET, "big")
    signer = Signer(SECRET)
    key = ec.derive_private_key(d, ec.SECP256R1())
    algo = ec.ECDSA(hashes.SHA256(), deterministic_signing=True)
    messages = [b"invoice %d" % i for i in range(256)]

    # Same signatures or the comparison is meaningless.
    for message in messages[:8]:
        r, s = utils.decode_dss_signature(key.sign(message, algo))
        s = min(s, p256.N - s)   # the device normalises s to the low half (PROTOCOL.md 7.2)
        if signer.sign(message) != r.to_bytes(32, "big") + s.to_bytes(32, "big"):
            print("MISMATCH on %r: the two signers disagree" % message)
            return 1

    pure = rate(lambda i: signer.sign(messages[i % 256]), seconds)
    native = rate(lambda i: key.sign(messages[i % 256], algo), seconds)
    pub = p256.decode_point(signer.public_key())
    digest = hashlib.sha256(messages[0]).digest()
    sig = signer.sign(messages[0])
    verify = rate(lambda i: p256.verify(pub, digest, sig), seconds)
    variable = rate(lambda i: p256.scalar_mult(d + i, p256.G), seconds)

    line = "%-36s: %10.1f signatures/s  (%.3f ms each)"
    print(line % ("pure-Python sign (fixed-base table)", pure, 1000 / pure))
    print(line % ("cryptography sign (OpenSSL, RFC6979)", native, 1000 / native))
    print("ratio cryptography / pure-Python    : %10.1f x" % (native / pure))
    print("pure-Python verify (p256.verify)    : %10.1f verifications/s" % verify)
    print("pure-Python variable-base k*G       : %10.1f multiplications/s" % variable)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
