"""P-256 / ECDSA / RFC 6979 against oracles: the RFC's own vectors and pyca/cryptography (OpenSSL).

The device signer must give byte-identical signatures to OpenSSL's deterministic ECDSA, the shared
verifier must accept what OpenSSL signs and reject every single-bit change, and the committed
fixed-base table must be exactly what tools/gen_p256_table.py produces.
"""

import hashlib
import hmac
import importlib.util
import os

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, utils
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from device import p256_table
from device.signer import Signer, derive_secret, hmac_sha256, rfc6979_nonces
from protocol import p256
from protocol.errors import VerifyError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SLOW = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
secrets = st.integers(min_value=1, max_value=p256.N - 1)
messages = st.binary(max_size=300)

# RFC 6979 A.2.5, ECDSA 256 bits (prime field), SHA-256.
RFC_X = 0xC9AFA9D845BA75166B5C215767B1D6934E50C3DB36E89B127B8A622B120F6721
RFC_UX = 0x60FED4BA255A9D31C961EB74C6356D68C049B8923B61FA6CE669622E60F29FB6
RFC_UY = 0x7903FE1008B8BC99A41AE9E95628BC64F2F1B20C2D7E9F5177A3C294D4462299
RFC_VECTORS = [
    (b"sample",
     0xA6E3C57DD01ABE90086538398355DD4C3B17AA873382B0F24D6129493D8AAD60,
     0xEFD48B2AACB6A8FD1140DD9CD45E81D69D2C877B56AAF991C34D0EA84EAF3716,
     0xF7CB1C942D657C41D436C7A1B6E29F65F3E900DBB9AFF4064DC4AB2F843ACDA8),
    (b"test",
     0xD16B6AE827F17175E040871A1C7EC3500192C4C92677336EC2537ACAEE0008E0,
     0xF1ABB023518351CD71D881567B1EA663ED3EFCF6C5132B354F28D3B0B7D38367,
     0x019F4113742A2B14BD25926B49C649155F267E60D3814B4C0CC84250E46F0083),
]


def raw(der):
    r, s = utils.decode_dss_signature(der)
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def low_s(sig):
    """The oracle's signature with s normalised to the low half, as the device signer does."""
    s = int.from_bytes(sig[32:], "big")
    return sig[:32] + min(s, p256.N - s).to_bytes(32, "big")


def openssl_deterministic(d, message):
    key = ec.derive_private_key(d, ec.SECP256R1())
    return raw(key.sign(message, ec.ECDSA(hashes.SHA256(), deterministic_signing=True)))


def openssl_public(d):
    numbers = ec.derive_private_key(d, ec.SECP256R1()).public_key().public_numbers()
    return numbers.x.to_bytes(32, "big") + numbers.y.to_bytes(32, "big")


def flip(data, bit):
    out = bytearray(data)
    out[bit // 8] ^= 0x80 >> (bit % 8)
    return bytes(out)


@pytest.mark.parametrize("message, k, r, s", RFC_VECTORS)
def test_rfc6979_a25_vectors(message, k, r, s):
    signer = Signer(RFC_X.to_bytes(32, "big"))
    assert next(rfc6979_nonces(RFC_X, hashlib.sha256(message).digest())) == k
    assert signer.sign(message) == r.to_bytes(32, "big") + min(s, p256.N - s).to_bytes(32, "big")
    assert signer.public_key() == RFC_UX.to_bytes(32, "big") + RFC_UY.to_bytes(32, "big")
    assert p256.public_key(RFC_X) == (RFC_UX, RFC_UY)


@settings(SLOW, max_examples=200)
@given(secrets, messages)
def test_sign_matches_openssl_deterministic(d, message):
    signer = Signer(d.to_bytes(32, "big"))
    sig = signer.sign(message)
    assert sig == low_s(openssl_deterministic(d, message))
    assert p256.is_low_s(sig) and not p256.is_low_s(sig[:32] + (p256.N - int.from_bytes(sig[32:], "big")).to_bytes(32, "big"))
    assert signer.public_key() == openssl_public(d)


@pytest.mark.parametrize("digest", [b"\xff" * 32, (p256.N + 5).to_bytes(32, "big"), bytes(32)])
def test_digest_not_below_n_is_reduced_like_openssl(digest):
    # bits2octets reduces h1 mod q (RFC 6979 2.3.4); only a prehashed digest can reach that path.
    key = ec.derive_private_key(RFC_X, ec.SECP256R1())
    algo = ec.ECDSA(utils.Prehashed(hashes.SHA256()), deterministic_signing=True)
    assert Signer(RFC_X.to_bytes(32, "big")).sign_digest(digest) == low_s(raw(key.sign(digest, algo)))


@settings(max_examples=200)
@given(secrets)
def test_public_key_matches_openssl(d):
    expected = openssl_public(d)
    x, y = p256.public_key(d)
    assert p256.encode_point(x, y) == expected
    assert Signer(d.to_bytes(32, "big")).public_key() == expected


@settings(SLOW, max_examples=100)
@given(secrets, messages, st.booleans())
def test_verify_accepts_openssl_signatures(d, message, deterministic):
    key = ec.derive_private_key(d, ec.SECP256R1())
    sig = raw(key.sign(message, ec.ECDSA(hashes.SHA256(), deterministic_signing=deterministic)))
    pub = openssl_public(d)
    digest = hashlib.sha256(message).digest()
    assert p256.verify(pub, digest, sig)
    assert p256.verify(b"\x04" + pub, digest, sig)
    assert p256.verify(p256.decode_point(pub), digest, sig)
    # (r, n - s) is the other valid signature of the same pair; OpenSSL accepts it too.
    s = int.from_bytes(sig[32:], "big")
    twin = sig[:32] + (p256.N - s).to_bytes(32, "big")
    key.public_key().verify(utils.encode_dss_signature(int.from_bytes(sig[:32], "big"), p256.N - s),
                            message, ec.ECDSA(hashes.SHA256()))
    assert p256.verify(pub, digest, twin)


def check_key_flip(pub, digest, sig, bit):
    """A flipped key either is off the curve (VERIFY_KEY, as OpenSSL refuses it) or fails."""
    bad = flip(pub, bit)
    try:
        ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), b"\x04" + bad)
        on_curve = True
    except ValueError:
        on_curve = False
    if on_curve:
        assert p256.verify(bad, digest, sig) is False
    else:
        with pytest.raises(VerifyError) as info:
            p256.verify(bad, digest, sig)
        assert info.value.name == "VERIFY_KEY" and info.value.code == 0x65
    return on_curve


def test_verify_rejects_every_single_bit_flip():
    signer = Signer(RFC_X.to_bytes(32, "big"))
    pub, digest = signer.public_key(), hashlib.sha256(b"sample").digest()
    sig = signer.sign(b"sample")
    assert p256.verify(pub, digest, sig) is True
    for bit in range(512):
        assert p256.verify(pub, digest, flip(sig, bit)) is False
    for bit in range(256):
        assert p256.verify(pub, flip(digest, bit), sig) is False
    outcomes = [check_key_flip(pub, digest, sig, bit) for bit in range(512)]
    assert not any(outcomes)  # flipping one coordinate bit of a valid point never stays on P-256


@settings(SLOW, max_examples=100)
@given(secrets, messages, st.integers(0, 511), st.integers(0, 255))
def test_verify_rejects_random_flips(d, message, sig_bit, digest_bit):
    signer = Signer(d.to_bytes(32, "big"))
    pub, digest, sig = signer.public_key(), hashlib.sha256(message).digest(), signer.sign(message)
    assert p256.verify(pub, flip(digest, digest_bit), sig) is False
    assert p256.verify(pub, digest, flip(sig, sig_bit)) is False
    check_key_flip(pub, digest, sig, sig_bit)


def test_verify_range_and_length_checks():
    signer = Signer(RFC_X.to_bytes(32, "big"))
    pub, digest, sig = signer.public_key(), hashlib.sha256(b"test").digest(), signer.sign(b"test")
    r, s = sig[:32], sig[32:]
    assert p256.verify(pub, digest, sig) is True
    for bad_r in (0, p256.N, 2 ** 256 - 1):
        assert p256.verify(pub, digest, bad_r.to_bytes(32, "big") + s) is False
    for bad_s in (0, p256.N, 2 ** 256 - 1):
        assert p256.verify(pub, digest, r + bad_s.to_bytes(32, "big")) is False
    for bad in (sig[:63], sig + b"\x00", b""):
        assert p256.verify(pub, digest, bad) is False


@pytest.mark.parametrize("data", [
    b"", bytes(63), bytes(66), b"\x02" + bytes(64), b"\x03" + bytes(64), bytes(64),
    p256.P.to_bytes(32, "big") + bytes(32),
    "x+p",
    p256.GX.to_bytes(32, "big") + (p256.GY + 1).to_bytes(32, "big"),
])
def test_decode_point_refuses_non_points(data):
    if data == "x+p":  # x >= p although x - p is the abscissa of a real point: still refused
        x = 1
        while pow((x ** 3 - 3 * x + p256.B) % p256.P, (p256.P - 1) // 2, p256.P) != 1:
            x += 1
        y = pow((x ** 3 - 3 * x + p256.B) % p256.P, (p256.P + 1) // 4, p256.P)
        assert p256.is_on_curve(x, y)
        data = (x + p256.P).to_bytes(32, "big") + y.to_bytes(32, "big")
    with pytest.raises(VerifyError) as info:
        p256.decode_point(data)
    assert info.value.name == "VERIFY_KEY"


def test_scalar_mult_and_inverse_edges():
    assert p256.scalar_mult(0, p256.G) is None and p256.scalar_mult(p256.N, p256.G) is None
    assert p256.scalar_mult(p256.N - 1, p256.G) == (p256.GX, p256.P - p256.GY)
    assert p256.scalar_mult(2, p256.G) == p256.to_affine(p256.jacobian_double((p256.GX, p256.GY, 1)))
    with pytest.raises(ZeroDivisionError):
        p256.inverse(p256.N, p256.N)
    for bad in (0, p256.N, True):
        with pytest.raises(VerifyError):
            p256.public_key(bad)


@settings(max_examples=200)
@given(st.integers(1, p256.P - 1), secrets)
def test_inverse_and_variable_base_mult(x, k):
    assert x * p256.inverse(x, p256.P) % p256.P == 1
    q = p256.public_key(k)
    assert p256.scalar_mult(k, q) == p256.public_key(k * k % p256.N)


@given(st.binary(max_size=200), st.binary(max_size=300))
def test_hmac_sha256_matches_stdlib(key, data):
    assert hmac_sha256(key, data) == hmac.new(key, data, hashlib.sha256).digest()


def test_generate_rehashes_out_of_range_entropy():
    for entropy in (bytes(32), p256.N.to_bytes(32, "big"), b"\xff" * 32):
        expected = entropy
        while not 0 < int.from_bytes(expected, "big") < p256.N:
            expected = hashlib.sha256(expected).digest()
        assert expected != entropy and derive_secret(entropy) == expected
        assert Signer.generate(entropy).public_key() == openssl_public(int.from_bytes(expected, "big"))
    assert derive_secret(b"\x01" * 32) == b"\x01" * 32
    for bad in (bytes(31), bytes(33), "x" * 32):
        with pytest.raises(VerifyError):
            derive_secret(bad)


def test_signer_refuses_bad_secret_and_table():
    for bad in (bytes(32), p256.N.to_bytes(32, "big"), bytes(31)):
        with pytest.raises(VerifyError):
            Signer(bad)
    with pytest.raises(VerifyError):
        Signer(b"\x01" * 32, table=p256_table.TABLE[:-64])
    with pytest.raises(VerifyError):
        Signer(b"\x01" * 32, table=bytes(len(p256_table.TABLE)))


def test_committed_table_equals_generator_output():
    path = os.path.join(ROOT, "tools", "gen_p256_table.py")
    spec = importlib.util.spec_from_file_location("gen_p256_table", path)
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    with open(os.path.join(ROOT, "device", "p256_table.py"), encoding="ascii", newline="") as handle:
        assert handle.read() == gen.render()
    assert p256_table.TABLE == gen.table_bytes() and len(p256_table.TABLE) == 61440
    for w, i in ((0, 1), (0, 15), (17, 9), (63, 15)):
        at = (15 * w + i - 1) * 64
        assert p256_table.TABLE[at:at + 64] == openssl_public(i * 16 ** w)
