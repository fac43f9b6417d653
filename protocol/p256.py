"""NIST P-256 arithmetic and ECDSA verification, shared by the device and the host verifier.

Why pure Python: the device runs MicroPython, which has big integers but no elliptic-curve module,
and the host verifier must accept exactly what the device signs.  One small implementation serves
both sides, so the curve constants and the point encoding cannot diverge.

Specs followed:
- curve P-256 (secp256r1): FIPS 186-4 Appendix D.1.2.3, SEC 2 v2 section 2.4.2 (a = -3);
- point encoding: SEC 1 v2 sections 2.3.3 / 2.3.4 (uncompressed 0x04 || X || Y) and the raw
  64-byte X || Y form the journal stores; a decoded point is checked to lie on the curve
  (SEC 1 section 3.2.2.1; the cofactor is 1, so on-curve means in the prime-order group);
- ECDSA verification: SEC 1 v2 section 4.1.4, FIPS 186-4 section 6.4.2.

Representation: affine points are (x, y) tuples of ints, None is the point at infinity.  Jacobian
points are (X, Y, Z) with x = X / Z^2, y = Y / Z^3; Z == 0 is infinity.  Jacobian formulas avoid
a field inversion per addition: one inversion converts the final result back to affine.

MicroPython notes (docs/CONTRIBUTING.md): pow(x, -1, m) silently returns 0 there, so inverses use
Fermat (x^(m-2) mod m, m prime); there is no int.bit_length(), so scalars (all < 2^256) are walked
as 64 fixed 4-bit windows.  Not constant time: nothing here handles secrets except through
scalar_mult/public_key, and MicroPython big integers are not constant time anyway.
"""

from protocol.errors import VerifyError

P = 0xFFFFFFFF00000001000000000000000000000000FFFFFFFFFFFFFFFFFFFFFFFF
N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
A = P - 3
B = 0x5AC635D8AA3A93E7B3EBBD55769886BC651D06B0CC53B0F63BCE3C3E27D2604B
GX = 0x6B17D1F2E12C4247F8BCE6E563A440F277037D812DEB33A0F4A13945D898C296
GY = 0x4FE342E2FE1A7F9B8EE7EB4A7C0F9E162BCE33576B315ECECBB6406837BF51F5
G = (GX, GY)
INFINITY = (1, 1, 0)


def inverse(x, m):
    """Inverse of ``x`` modulo the prime ``m`` by Fermat; refuses 0 (pow would return 0)."""
    x = x % m
    if x == 0:
        raise ZeroDivisionError("0 has no inverse modulo m")
    return pow(x, m - 2, m)


def bits2int(data):
    """Integer of the leftmost 256 bits of ``data`` (RFC 6979 section 2.3.2, FIPS 186-4 6.4).

    qlen is 256 bits, a whole number of bytes, so truncation is a byte slice."""
    if len(data) > 32:
        data = data[:32]
    return int.from_bytes(bytes(data), "big")


def is_on_curve(x, y):
    """True when (x, y) are field elements satisfying y^2 = x^3 - 3x + b (mod p)."""
    if not (0 <= x < P and 0 <= y < P):
        return False
    return (y * y - (x * x * x - 3 * x + B)) % P == 0


def jacobian_double(pt):
    """2 * pt in Jacobian coordinates, a = -3 ("dbl-2001-b", 3M + 5S)."""
    x1, y1, z1 = pt
    if z1 == 0 or y1 == 0:
        return INFINITY
    delta = z1 * z1 % P
    gamma = y1 * y1 % P
    beta = x1 * gamma % P
    alpha = 3 * (x1 - delta) * (x1 + delta) % P
    x3 = (alpha * alpha - 8 * beta) % P
    z3 = ((y1 + z1) * (y1 + z1) - gamma - delta) % P
    y3 = (alpha * (4 * beta - x3) - 8 * gamma * gamma) % P
    return (x3, y3, z3)


def jacobian_add(p1, p2):
    """p1 + p2, both Jacobian ("add-1998-cmo-2"); handles infinity, doubling and p + (-p)."""
    x1, y1, z1 = p1
    x2, y2, z2 = p2
    if z1 == 0:
        return p2
    if z2 == 0:
        return p1
    z1z1 = z1 * z1 % P
    z2z2 = z2 * z2 % P
    u1 = x1 * z2z2 % P
    u2 = x2 * z1z1 % P
    s1 = y1 * z2 * z2z2 % P
    s2 = y2 * z1 * z1z1 % P
    h = (u2 - u1) % P
    r = (s2 - s1) % P
    if h == 0:
        return jacobian_double(p1) if r == 0 else INFINITY
    hh = h * h % P
    hhh = h * hh % P
    v = u1 * hh % P
    x3 = (r * r - hhh - 2 * v) % P
    y3 = (r * (v - x3) - s1 * hhh) % P
    return (x3, y3, z1 * z2 * h % P)


def jacobian_add_affine(p1, x2, y2):
    """p1 (Jacobian) + (x2, y2) (affine, not infinity): the mixed addition, 8M + 3S."""
    x1, y1, z1 = p1
    if z1 == 0:
        return (x2, y2, 1)
    z1z1 = z1 * z1 % P
    u2 = x2 * z1z1 % P
    s2 = y2 * z1 * z1z1 % P
    h = (u2 - x1) % P
    r = (s2 - y1) % P
    if h == 0:
        return jacobian_double(p1) if r == 0 else INFINITY
    hh = h * h % P
    hhh = h * hh % P
    v = x1 * hh % P
    x3 = (r * r - hhh - 2 * v) % P
    y3 = (r * (v - x3) - y1 * hhh) % P
    return (x3, y3, z1 * h % P)


def to_affine(pt):
    """Jacobian to affine (x, y) with one field inversion; None for infinity."""
    x, y, z = pt
    if z == 0:
        return None
    zi = inverse(z, P)
    zi2 = zi * zi % P
    return (x * zi2 % P, y * zi2 * zi % P)


def _multiples(point):
    """[infinity, 1P, ..., 15P] in Jacobian coordinates: the table of a 4-bit window."""
    jac = (point[0], point[1], 1)
    table = [INFINITY, jac, jacobian_double(jac)]
    for _ in range(13):
        table.append(jacobian_add_affine(table[-1], point[0], point[1]))
    return table


def double_scalar_mult(u1, p1, u2, p2):
    """u1 * p1 + u2 * p2 (affine points, None allowed) with interleaved 4-bit windows.

    Shares the 256 doublings between both products (Shamir's trick); returns affine or None."""
    tables = []
    for u, pt in ((u1 % N, p1), (u2 % N, p2)):
        if u and pt is not None:
            tables.append((u, _multiples(pt)))
    acc = INFINITY
    for shift in range(252, -4, -4):
        for _ in range(4):
            acc = jacobian_double(acc)
        for u, table in tables:
            digit = (u >> shift) & 15
            if digit:
                acc = jacobian_add(acc, table[digit])
    return to_affine(acc)


def scalar_mult(k, point):
    """k * point for any affine point (variable base, 4-bit fixed window); affine or None."""
    return double_scalar_mult(k, point, 0, None)


def _checked(pt):
    """Return (x, y) as ints when it is a point of the curve, else raise VERIFY_KEY."""
    if pt is None or len(pt) != 2:
        raise VerifyError("VERIFY_KEY", "public key must be an (x, y) pair")
    x, y = pt
    for c in (x, y):
        if isinstance(c, bool) or not isinstance(c, int):
            raise VerifyError("VERIFY_KEY", "public key coordinates must be integers")
    if not is_on_curve(x, y):
        raise VerifyError("VERIFY_KEY", "public key is not a point of P-256")
    return (x, y)


def public_key(secret):
    """Public point secret * G of a secret scalar in [1, n-1] (SEC 1 section 3.2.1)."""
    if isinstance(secret, bool) or not isinstance(secret, int) or not 0 < secret < N:
        raise VerifyError("VERIFY_KEY", "secret scalar must be an integer in [1, n-1]")
    return scalar_mult(secret, G)


def encode_point(x, y):
    """64 bytes X || Y, big-endian, of a point on the curve (the journal's key format)."""
    _checked((x, y))
    return x.to_bytes(32, "big") + y.to_bytes(32, "big")


def decode_point(data):
    """(x, y) from 64 raw bytes X || Y or 65 bytes 0x04 || X || Y (SEC 1 section 2.3.4).

    Compressed points are refused; a point off the curve raises VerifyError VERIFY_KEY."""
    if not isinstance(data, (bytes, bytearray)):
        raise VerifyError("VERIFY_KEY", "public key must be bytes")
    data = bytes(data)
    if len(data) == 65:
        if data[0] != 4:
            raise VerifyError("VERIFY_KEY", "only uncompressed (0x04) SEC 1 points are accepted")
        data = data[1:]
    elif len(data) != 64:
        raise VerifyError("VERIFY_KEY", "public key must be 64 or 65 bytes, got %d" % len(data))
    return _checked((int.from_bytes(data[:32], "big"), int.from_bytes(data[32:], "big")))


def is_low_s(sig):
    """Whether the raw signature's s is at most n/2 (the only form protocol 2 records and heads
    may carry; PROTOCOL.md 7.2)."""
    return len(sig) == 64 and int.from_bytes(bytes(sig[32:]), "big") <= N // 2


def verify(pub, digest, sig):
    """True when ``sig`` (raw r || s, 2 x 32 bytes big-endian) signs ``digest`` under ``pub``.

    ``pub`` is an (x, y) pair or 64/65 encoded bytes; an unusable key raises VerifyError
    VERIFY_KEY (that is a broken certificate, not a bad signature).  Any bad signature, including
    a wrong length or r, s outside [1, n-1], returns False.  SEC 1 4.1.4, FIPS 186-4 6.4.2."""
    if isinstance(pub, (bytes, bytearray)):
        q = decode_point(pub)
    else:
        q = _checked(pub)
    if len(sig) != 64:
        return False
    r = int.from_bytes(bytes(sig[:32]), "big")
    s = int.from_bytes(bytes(sig[32:]), "big")
    if not (0 < r < N and 0 < s < N):
        return False
    w = inverse(s, N)
    e = bits2int(digest)
    point = double_scalar_mult(e * w, G, r * w, q)
    if point is None:
        return False
    return point[0] % N == r
