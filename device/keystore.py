"""Keystores: where a device keeps its signing secret and its certificate.

The core asks a keystore for ``secret()`` (32 bytes, or None before provisioning),
``device_id(public_key)``,
``certificate()`` (bytes or None), ``profile()`` (the installed country profile, canonical CBOR, or
None), and, to provision, ``store_secret(secret)``, ``store_certificate(data)`` and
``store_profile(data)``. The secret is generated *inside* the device (core PROVISION, from the
entropy port: os.urandom on a board) and never leaves it; only the public key is exported.

:class:`FileKeystore` keeps both in a directory: on a board the littlefs filesystem, in the
emulator the profile directory. Each file is written whole to ``NAME.new`` and renamed over the
old one (littlefs and POSIX renames are atomic), so a power cut leaves the old file or the new one.
The device id is derived from the public key the core computed (device.ports.device_id_for),
never stored apart from the key, so the two cannot disagree.
"""

import os

from device.ports import device_id_for

KEY_FILE = "key.bin"
CERT_FILE = "cert.bin"
ANCHOR_FILE = "anchor.bin"
AUTHORITY_FILE = "authority.bin"   # 64 bytes X || Y of the pinned authority key, if any
PROFILE_FILE = "profile.cbor"      # the installed country profile, canonical CBOR (PROFILE)


def _write(path, data):
    with open(path + ".new", "wb") as fh:
        fh.write(data)
    os.rename(path + ".new", path)


class FileKeystore:
    def __init__(self, directory, prefix="FMD"):
        self._dir = directory
        self._prefix = prefix

    def _path(self, name):
        return self._dir + "/" + name

    def _read(self, name):
        """The file's bytes, or None when it does not exist. Existence is asked of the directory
        listing, not guessed from an OSError's errno (2 on littlefs, 44 under Emscripten): any
        failure to read an existing file propagates, because an unreadable key must not look
        like "no key" (that would invite a second one)."""
        if name not in os.listdir(self._dir):
            return None
        with open(self._path(name), "rb") as fh:
            return fh.read()

    def secret(self):
        data = self._read(KEY_FILE)
        if data is not None and len(data) != 32:
            raise ValueError("%s holds %d bytes, not a 32-byte secret" % (self._path(KEY_FILE), len(data)))
        return data

    def device_id(self, public_key):
        return device_id_for(public_key, self._prefix)

    def store_secret(self, secret):
        if self.secret() is not None:
            raise ValueError("a device key exists already; it is never replaced")
        _write(self._path(KEY_FILE), secret)

    def certificate(self):
        return self._read(CERT_FILE)

    def store_certificate(self, data):
        _write(self._path(CERT_FILE), data)

    def anchor(self):
        return self._read(ANCHOR_FILE)

    def authority(self):
        return self._read(AUTHORITY_FILE)

    def store_anchor(self, digest):
        _write(self._path(ANCHOR_FILE), digest)

    def profile(self):
        return self._read(PROFILE_FILE)

    def store_profile(self, data):
        _write(self._path(PROFILE_FILE), data)

