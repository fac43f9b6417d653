"""The pty emulator (CPython only): the same fiscal core as a board, behind a raw-mode pty.

``fiscal emulator --profile DIR`` keeps the flash image, the device key and the tax profile
(``profile.cbor``, seed-tg unless ``--tax-profile`` says otherwise) in DIR, so a restart (or a
``kill -9``) comes back with the same journal and identity. The pty slave is put in raw mode
right after ``openpty()``, before anyone can open it: otherwise the line discipline echoes and
rewrites binary frames (reference ecosystem-and-reliability.md E2b). The emulator keeps its own
slave descriptor open so a host closing and reopening the port never makes the master read fail.
The slave path is the first line on stdout; everything else goes to stderr.
"""

import hashlib
import os
import select
import signal
import sys
import time
import tty

from device.core import Core
from device.emu_flash import FileFlash, ProfileError
from device.keystore import AUTHORITY_FILE, KEY_FILE, FileKeystore
from device.link import Link
from device.ports import SeededEntropy
from device.signer import derive_secret
from protocol.errors import PowerCut

FLASH_SIZE = 2 * 1024 * 1024
JOURNAL_KIB = FLASH_SIZE // 1024   # default journal size of a new profile (fiscal emulator --journal-kib)
MIN_JOURNAL_KIB = 32


class ProfileMismatch(ValueError):
    """The profile's flash image has another size than the one asked for: a journal is never resized."""


class MonotonicClock:
    def monotonic_ms(self):
        return time.monotonic_ns() // 1000000


class OsEntropy:
    def random(self, n):
        return os.urandom(n)


def _write_private(path, data):
    """Write a secret file (mode 0600) atomically; on a full filesystem leave nothing behind."""
    try:
        fd = os.open(path + ".new", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            if os.write(fd, data) != len(data):
                raise OSError(28, "short write (no space left on device?)")
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(path + ".new", path)
    except OSError as exc:
        if os.path.lexists(path + ".new"):
            os.unlink(path + ".new")
        raise ProfileError("cannot write %s: %s" % (path, exc.strerror or exc))


def journal_size(profile, journal_kib=None):
    """Flash bytes of the profile: its existing image's size, or ``journal_kib`` KiB (default
    2048) for a new one. ``journal_kib`` for an existing image of another size is refused."""
    if journal_kib is not None and (journal_kib < MIN_JOURNAL_KIB or journal_kib % 4):
        raise ProfileMismatch("--journal-kib must be a multiple of 4, at least %d (got %d)" % (MIN_JOURNAL_KIB, journal_kib))
    path = os.path.join(profile, "flash.bin")
    if not os.path.exists(path):
        return (JOURNAL_KIB if journal_kib is None else journal_kib) * 1024
    actual = os.path.getsize(path)
    if journal_kib is not None and actual != journal_kib * 1024:
        raise ProfileMismatch("profile %s has a %d KiB journal; it keeps that size (asked for %d KiB: use "
                              "another profile for another size)" % (profile, actual // 1024, journal_kib))
    return actual


def open_profile(profile, seed=None, flash_size=None, factory_fresh=False, journal_kib=None):
    """(flash, entropy, keystore) for a profile directory, creating key and flash on first use.
    ``flash_size`` (bytes) or ``journal_kib`` sizes a new profile; an existing one keeps its size.

    ``factory_fresh`` leaves a new profile without a key, as a board comes from the factory: the
    key is then made inside the emulator by PROVISION (``fiscal board provision``).

    With ``seed`` the entropy is deterministic but still differs per boot: it is keyed with a hash
    of the flash image, which every boot changes (it appends a power-up record), so a restarted
    seeded emulator never hands out a nonce it already used.
    """
    try:
        os.makedirs(profile, exist_ok=True)
    except OSError as exc:
        raise ProfileError("cannot create the profile directory %s: %s" % (profile, exc.strerror or exc))
    if flash_size is None:
        flash_size = journal_size(profile, journal_kib)
    flash = FileFlash(os.path.join(profile, "flash.bin"), flash_size)
    if seed is None:
        entropy = OsEntropy()
    else:
        entropy = SeededEntropy("%s:%s" % (seed, hashlib.sha256(flash.image()).hexdigest()))
    key_path = os.path.join(profile, KEY_FILE)
    if not os.path.exists(key_path) and not factory_fresh:
        key_entropy = SeededEntropy("key:%s" % seed) if seed is not None else entropy
        _write_private(key_path, derive_secret(key_entropy.random(32)))
    return flash, entropy, FileKeystore(profile, "EMU")


def pin_authority(profile, public_key):
    """Install the authority key the emulator's CERTIFY checks against (as a deploy does on a board)."""
    os.makedirs(profile, exist_ok=True)
    _write_private(os.path.join(profile, AUTHORITY_FILE), public_key)


def _write_all(fd, data, stop):
    """Write an answer to the (non-blocking) pty master. A host that stops reading fills the pty
    buffer; waiting for room in short selects keeps SIGTERM effective meanwhile (issue 8)."""
    while data and not stop:
        try:
            n = os.write(fd, data)
        except BlockingIOError:
            select.select([], [fd], [], 0.5)
            continue
        data = data[n:]


class TaxProfileRefused(ValueError):
    """The device refused the tax profile asked for (PROFILE_LOCKED after the first invoice, ...)."""


def install_tax_profile(core, tax_profile=None):
    """Give a new emulator profile its country profile, as `fiscal board provision` does a board:
    ``tax_profile`` (a shipped name or a JSON path) is sent with PROFILE; without one, a device
    that has a key but no stored profile gets the default (seed-tg). A factory-fresh device (no key
    yet) gets it after PROVISION, from `fiscal board provision --tax-profile`."""
    from protocol import messages, profile_host

    if core.signer is None or core.fault or (tax_profile is None and core.keystore.profile() is not None):
        return None
    data = profile_host.load_bytes(tax_profile or profile_host.DEFAULT)
    name, status, detail, fields = messages.decode_response(core.handle(messages.encode_request("PROFILE", data=data)))
    if status:
        raise TaxProfileRefused("the device refused tax profile %s: %s" % (tax_profile or profile_host.DEFAULT, detail))
    return fields


def serve(profile, seed=None, cut_after=None, cut_bytes=0, fail_program=None,
          max_pending=10, nonce_ttl=120, out=sys.stdout, exit_with_parent=False, factory_fresh=False,
          journal_kib=None, tax_profile=None):
    """Run until SIGTERM/SIGINT. A simulated power cut ends the process at once (exit 75)."""
    flash, entropy, keystore = open_profile(profile, seed, factory_fresh=factory_fresh, journal_kib=journal_kib)
    flash.cut_after, flash.cut_bytes, flash.fail_at = cut_after, cut_bytes, fail_program
    try:
        core = Core(flash, MonotonicClock(), entropy, keystore, max_pending, nonce_ttl)
        install_tax_profile(core, tax_profile)
    except PowerCut:
        os._exit(75)
    link = Link(core)
    master, slave = os.openpty()
    tty.setraw(slave)
    os.set_blocking(master, False)
    path = os.ttyname(slave)
    with open(os.path.join(profile, "emu.tty"), "w") as fh:
        fh.write(path + "\n")
    link_path = os.path.join(profile, "tty")   # stable name for the daemon: follows restarts
    if os.path.lexists(link_path + ".new"):
        os.unlink(link_path + ".new")
    os.symlink(path, link_path + ".new")
    os.replace(link_path + ".new", link_path)
    with open(os.path.join(profile, "emu.pid"), "w") as fh:
        fh.write("%d\n" % os.getpid())
    out.write(path + "\n")
    out.flush()
    sys.stderr.write("fiscal emulator %s on %s (counter %d, %d records)\n"
                     % (core.device_id or "(not provisioned)", path, core.counter, core.seq))
    parent = os.getppid()
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))
    while not stop:
        try:
            ready = select.select([master], [], [], 0.5)[0]
        except InterruptedError:
            continue
        if not ready:
            link.idle()
            if exit_with_parent and os.getppid() != parent:
                sys.stderr.write("fiscal emulator: parent process gone; stopping\n")
                break
            continue
        try:
            data = os.read(master, 4096)
        except BlockingIOError:
            continue
        try:
            link.feed(data, lambda answer: _write_all(master, answer, stop))
        except PowerCut:
            sys.stderr.write("simulated power cut after flash program %d\n" % flash.programs)
            sys.stderr.flush()
            os._exit(75)
    flash.close()
    os.close(slave)
    os.close(master)
