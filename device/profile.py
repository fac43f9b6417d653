"""The country profile inside the core: PROFILE, PROFILE_READ, and the rules every seal reads.

A profile (protocol/taxgroups.py, PROTOCOL.md 6.4) says which tax groups and rates exist and which
groups an invoice type or client class may use. The device holds exactly one, stored through the
keystore port (``profile.cbor`` beside the key) and bound to the journal by a signed EVENT
``profile`` carrying its SHA-256: a verifier then knows which rules bind the records. It may be
installed or replaced only while no invoice is sealed; the same bytes again are harmless, other
bytes after the first invoice are PROFILE_LOCKED. Without a profile, or with a stored profile
that is not the journaled one (a power cut between storing and journaling, or an edited file), the
device refuses to seal (PROFILE_MISSING); at power-up a fresh device journals a stored profile
that lacks its EVENT.

RAM: on a board only the id and the 32-byte hash stay; the first seal of a message reads the
stored bytes, checks their hash and decodes them, and the map is dropped once the message is
answered (a decoded profile is a few KB on a board). An emulator keeps the map while the hash
stays the one it was read under, until the next PROFILE: a profile file edited under a running
emulator is noticed at its next power-up, not at its next seal. That is device/sealing.py
``_the_profile``. This module is imported only when used, like device/credits.py: at power-up
(``load``, ``heal``) and by PROFILE and PROFILE_READ (device/core.py), and with it the profile
check (protocol/profile_check.py).
"""

import hashlib

from protocol import invoice, record
from protocol.errors import IdentityError, JournalError, ProfileError


def load(core):
    """The stored profile's id and hash at power-up, when it is a valid profile; else why not."""
    core.profile_id, core.profile_hash, core.profile_detail = "", None, ""
    try:
        data = core.keystore.profile()
        if data is not None:
            doc = invoice.load_profile(data)
            core.profile_id, core.profile_hash = doc["id"], hashlib.sha256(data).digest()
    except OSError as exc:
        core.profile_detail = "the stored profile cannot be read: %s" % exc
    except ProfileError as exc:
        core.profile_detail = "the stored profile is not valid: %s" % exc.detail


def heal(core):
    """Power-up of a device without invoices: journal a stored profile whose EVENT a power cut
    lost, so it binds the first invoice (a full journal leaves it for PROFILE to retry)."""
    if core.profile_hash is not None and core.counter == 0 and core.journal.profile_hash != core.profile_hash \
            and core.journal.fits([256], 1):
        _event(core, core.profile_id, core.profile_hash)


def _event(core, pid, digest):
    core._append(record.EVENT, {record.K_EVENT: "profile", record.K_DETAIL: {1: digest, 2: pid}},
                 core._time_or_last())


def on_profile(core, fields):
    core.profile_memo = None   # whatever this ends in, the next seal reads the stored profile again
    data = bytes(fields["data"])
    doc = invoice.load_profile(data)
    digest = hashlib.sha256(data).digest()
    journaled = core.journal.profile_hash == digest
    if not journaled and core.counter > 0:
        raise ProfileError("PROFILE_LOCKED", "invoices are sealed under profile %s; it is never replaced"
                           % core.profile_id)
    if not journaled and not core.journal.fits([256], 1):
        raise JournalError("JOURNAL_FULL", "no room for the profile event; archive the journal first")
    try:
        if core.keystore.profile() != data:
            core.keystore.store_profile(data)
    except OSError as exc:
        raise IdentityError("KEYSTORE_FAILURE", "cannot store the profile: %s" % exc)
    core.profile_id, core.profile_hash, core.profile_detail = doc["id"], digest, ""
    if not journaled:
        _event(core, doc["id"], digest)
    return {"installed": not journaled, "profile_id": doc["id"], "profile_hash": digest}


def on_profile_read(core, fields):
    try:
        data = core.keystore.profile()
    except OSError as exc:
        raise IdentityError("KEYSTORE_FAILURE", "cannot read the profile: %s" % exc)
    return {"data": data or b"", "profile_id": core.profile_id, "profile_hash": core.profile_hash or b""}
