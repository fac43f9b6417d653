"""The small ports through which the fiscal core meets the world, and their portable versions.

The core never imports a platform module: it is handed a flash (device/flash.py), a clock port
(``monotonic_ms()``), an entropy port (``random(n)``) and a keystore (``secret()``,
``device_id(public_key)``). The board, the emulator and the tests each pass their own. The versions here
run anywhere (MicroPython included) and are what the golden vectors and the WASM run use, so that
CPython and MicroPython see identical inputs and must produce identical bytes.
"""

import hashlib


class SeededEntropy:
    """Deterministic entropy: SHA-256(seed || counter) blocks. For tests and ``--seed N`` only."""

    def __init__(self, seed):
        self._seed = b"fiscal-entropy:" + str(seed).encode()
        self._counter = 0
        self._pool = b""

    def random(self, n):
        while len(self._pool) < n:
            self._counter += 1
            self._pool += hashlib.sha256(self._seed + self._counter.to_bytes(8, "big")).digest()
        out = self._pool[:n]
        self._pool = self._pool[n:]
        return out


class ManualClock:
    """A monotonic millisecond counter that only moves when told to (tests, golden runs)."""

    def __init__(self, start_ms=0):
        self.ms = start_ms

    def monotonic_ms(self):
        return self.ms

    def advance(self, seconds):
        self.ms += int(seconds * 1000)


class StaticKeystore:
    """The keystore contract (device/keystore.py) in RAM: tests, golden runs, the WASM board run.

    ``secret=None`` is a factory-fresh device; PROVISION stores the secret it generates here. The
    device id is ``device_id`` when given (tests, golden runs), else derived from the public key
    with ``prefix``.
    """

    def __init__(self, secret, device_id, prefix="FMD", authority=None, profile=None):
        self._authority = authority
        self._profile = profile
        self._secret = secret
        self._device_id = device_id
        self._prefix = prefix
        self._cert = None
        self._anchor = None

    def secret(self):
        return self._secret

    def device_id(self, public_key):
        return self._device_id or device_id_for(public_key, self._prefix)

    def store_secret(self, secret):
        if self._secret is not None:
            raise ValueError("a device key exists already; it is never replaced")
        self._secret = secret

    def certificate(self):
        return self._cert

    def store_certificate(self, data):
        self._cert = bytes(data)

    def anchor(self):
        return self._anchor

    def authority(self):
        return self._authority

    def store_anchor(self, digest):
        self._anchor = bytes(digest)

    def profile(self):
        return self._profile

    def store_profile(self, data):
        self._profile = bytes(data)


def device_id_for(public_key, prefix="FMD"):
    """Stable device id from the public key: prefix + 8 hex digits of SHA-256(public key)."""
    h = hashlib.sha256(public_key).digest()
    return "%s-%s" % (prefix, "".join(["%02X" % b for b in h[:4]]))


class DeviceClock:
    """The device's notion of UTC: set by the host, then advanced by the monotonic port.

    It is unset after every power-up (the core refuses to seal until SET_TIME), which is how a
    board without a battery-backed RTC stays honest.
    """

    def __init__(self, port):
        self._port = port
        self._base = None
        self._at = 0

    def is_set(self):
        return self._base is not None

    def now(self):
        if self._base is None:
            return None
        return self._base + (self._port.monotonic_ms() - self._at) // 1000

    def set(self, t):
        self._base = t
        self._at = self._port.monotonic_ms()
