"""The device's signing key: ECDSA P-256 over SHA-256 with deterministic k (RFC 6979).

Why deterministic: a repeated or biased ECDSA nonce reveals the private key, and the board has no
randomness it can trust at signing time (the WASM build has no os.urandom at all).  RFC 6979
section 3.2 derives k from the secret and the message digest with HMAC-SHA256, so one record
always gets one signature, and the emulator, the board and OpenSSL's deterministic ECDSA (what
`cryptography` exposes as ``ec.ECDSA(hashes.SHA256(), deterministic_signing=True)``) agree byte for
byte once OpenSSL's s is normalised the same way: s is always the low one of s and n - s
(s <= n/2), because (r, n - s) verifies too and would give one record two signatures, hence two
ledger hashes and auth codes. Verifiers (protocol version 2 on) refuse high s (PROTOCOL.md 7.2).

Why a table: k * G dominates the cost of a signature (SEC 1 4.1.3, FIPS 186-4 6.4.1).
device/p256_table.py ships i * 16^w * G for w = 0..63 and i = 1..15 as affine X || Y, so k * G
is one mixed Jacobian addition per non-zero nibble of k (at most 64), no doubling, and one field
inversion; s costs one more inversion modulo n.  Entry (w, i) starts at byte (15 * w + i - 1) * 64.

HMAC (RFC 2104) is written out because ``hmac`` is not on every board; hashlib.sha256 objects
have no copy() in MicroPython, so both pads are hashed again on every call.  Key material is
handled with big integers that are not constant time, as everywhere in MicroPython.
"""

import hashlib

from protocol import p256
from protocol.errors import VerifyError

N = p256.N
TABLE_WINDOWS = 64
TABLE_DIGITS = 15
TABLE_LEN = TABLE_WINDOWS * TABLE_DIGITS * 64


def sha256(data):
    return hashlib.sha256(data).digest()


# RFC 2104 ipad / opad over the 64-byte block, as integers so a pad is one XOR, not a byte loop.
IPAD = 0x36363636363636363636363636363636363636363636363636363636363636363636363636363636363636363636363636363636363636363636363636363636
OPAD = 0x5C5C5C5C5C5C5C5C5C5C5C5C5C5C5C5C5C5C5C5C5C5C5C5C5C5C5C5C5C5C5C5C5C5C5C5C5C5C5C5C5C5C5C5C5C5C5C5C5C5C5C5C5C5C5C5C5C5C5C5C5C5C5C5C


def hmac_sha256(key, data):
    """HMAC-SHA256 (RFC 2104, block size 64) built on hashlib.sha256 alone."""
    if len(key) > 64:
        key = sha256(key)
    block = int.from_bytes(bytes(key) + bytes(64 - len(key)), "big")
    inner = hashlib.sha256((block ^ IPAD).to_bytes(64, "big"))
    inner.update(data)
    outer = hashlib.sha256((block ^ OPAD).to_bytes(64, "big"))
    outer.update(inner.digest())
    return outer.digest()


def int2octets(x):
    """RFC 6979 section 2.3.3: x as rlen = 256 bits, big-endian."""
    return x.to_bytes(32, "big")


def bits2octets(h1):
    """RFC 6979 section 2.3.4: bits2int, reduced once modulo q, then int2octets."""
    z1 = p256.bits2int(h1)
    z2 = z1 - N if z1 >= N else z1
    return int2octets(z2)


def rfc6979_nonces(secret, h1):
    """Successive candidates k in [1, n-1] of RFC 6979 section 3.2 for scalar ``secret``, digest h1.

    Steps b-h with HMAC-SHA256; tlen = qlen = 256, so one V per candidate.  A candidate the
    caller cannot use (r or s zero) is passed over by asking for the next one, as in step h.3."""
    x = int2octets(secret)
    h = bits2octets(h1)
    v = b"\x01" * 32
    k = bytes(32)
    k = hmac_sha256(k, v + b"\x00" + x + h)
    v = hmac_sha256(k, v)
    k = hmac_sha256(k, v + b"\x01" + x + h)
    v = hmac_sha256(k, v)
    while True:
        v = hmac_sha256(k, v)
        candidate = p256.bits2int(v)
        if 0 < candidate < N:
            yield candidate
        k = hmac_sha256(k, v + b"\x00")
        v = hmac_sha256(k, v)


def derive_secret(entropy):
    """A valid 32-byte secret from 32 random bytes: kept when in [1, n-1], else SHA-256 again.

    Deterministic, so the emulator's key follows from its entropy port (cf. FIPS 186-4 B.4.2,
    which rejects out-of-range candidates and draws again)."""
    if not isinstance(entropy, (bytes, bytearray)) or len(entropy) != 32:
        raise VerifyError("VERIFY_KEY", "key entropy must be 32 bytes")
    candidate = bytes(entropy)
    while True:
        d = int.from_bytes(candidate, "big")
        if 0 < d < N:
            return candidate
        candidate = sha256(candidate)


class Signer:
    """Holds one P-256 secret and signs with it; ``table`` defaults to device.p256_table.TABLE."""

    def __init__(self, secret, table=None):
        if not isinstance(secret, (bytes, bytearray)) or len(secret) != 32:
            raise VerifyError("VERIFY_KEY", "secret must be 32 bytes")
        d = int.from_bytes(bytes(secret), "big")
        if not 0 < d < N:
            raise VerifyError("VERIFY_KEY", "secret scalar must be in [1, n-1]")
        if table is None:
            from device.p256_table import TABLE

            table = TABLE
        if len(table) != TABLE_LEN or bytes(table[:64]) != p256.encode_point(p256.GX, p256.GY):
            raise VerifyError("VERIFY_KEY", "fixed-base table is not the P-256 table")
        self._d = d
        self._table = table
        self._public = None

    @classmethod
    def generate(cls, entropy, table=None):
        """Signer whose secret is derive_secret(entropy) (32 bytes from the entropy port)."""
        return cls(derive_secret(entropy), table)

    def base_mult(self, k):
        """k * G for 0 < k < n from the fixed-base table: affine (x, y)."""
        table = self._table
        acc = p256.INFINITY
        offset = -64
        for _ in range(TABLE_WINDOWS):
            digit = k & 15
            k >>= 4
            if digit:
                at = offset + digit * 64
                entry = table[at:at + 64]   # one read when the table is a file (device/table_file.py)
                x = int.from_bytes(entry[:32], "big")
                y = int.from_bytes(entry[32:], "big")
                acc = p256.jacobian_add_affine(acc, x, y)
            offset += TABLE_DIGITS * 64
        return p256.to_affine(acc)

    def public_key(self):
        """64 bytes X || Y of the public point (computed once, from the table)."""
        if self._public is None:
            x, y = self.base_mult(self._d)
            self._public = p256.encode_point(x, y)
        return self._public

    def sign_digest(self, h1):
        """Raw r || s (2 x 32 bytes) over the SHA-256 digest h1 (SEC 1 4.1.3, RFC 6979 3.2).

        A digest of another length is used as bits2int/bits2octets define, like verify does."""
        e = p256.bits2int(h1)
        for k in rfc6979_nonces(self._d, h1):
            point = self.base_mult(k)
            r = point[0] % N
            if r == 0:
                continue
            s = p256.inverse(k, N) * (e + r * self._d) % N
            if s != 0:
                return int2octets(r) + int2octets(min(s, N - s))

    def sign(self, message):
        """Raw r || s over SHA-256(message): OpenSSL's deterministic ECDSA with s normalised low."""
        return self.sign_digest(sha256(message))
