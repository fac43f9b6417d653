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

RAM: only the id and the 32-byte hash stay; each seal reads the stored bytes, checks their hash and
decodes them, and drops the map afterwards (a decoded profile is a few KB on a board).
"""

import hashlib

from protocol import cbor, invoice, record
from protocol.errors import IdentityError, JournalError, ProfileError


class Profile:
    """Mixed into device.core.Core: expects ``keystore``, ``journal``, ``counter``, ``_append``."""

    def _load_profile(self):
        self.profile_id, self.profile_hash, self.profile_detail = "", None, ""
        self.profile_memo = None
        try:
            data = self.keystore.profile()
            if data is not None:
                doc = invoice.load_profile(data)
                self.profile_id, self.profile_hash = doc["id"], hashlib.sha256(data).digest()
        except OSError as exc:
            self.profile_detail = "the stored profile cannot be read: %s" % exc
        except ProfileError as exc:
            self.profile_detail = "the stored profile is not valid: %s" % exc.detail

    def _heal_profile(self):
        """Power-up of a device without invoices: journal a stored profile whose EVENT a power cut
        lost, so it binds the first invoice (a full journal leaves it for PROFILE to retry)."""
        if self.profile_hash is not None and self.counter == 0 and self.journal.profile_hash != self.profile_hash \
                and self.journal.fits([256], 1):
            self._profile_event(self.profile_id, self.profile_hash)

    def _profile_event(self, pid, digest):
        self._append(record.EVENT, {record.K_EVENT: "profile", record.K_DETAIL: {1: digest, 2: pid}},
                     self._time_or_last())

    def _the_profile(self):
        """The installed profile, decoded, when it is the journaled one; else PROFILE_MISSING.
        Within one message (a SEAL, PREPARE or SEAL_BATCH) the one it already read and decoded
        (``profile_memo``, cleared after every message by Core.handle) serves."""
        if self.profile_memo is not None:
            return self.profile_memo
        if self.profile_hash is None:
            raise ProfileError("PROFILE_MISSING", self.profile_detail or "no tax profile installed; send PROFILE")
        if self.journal.profile_hash != self.profile_hash:
            raise ProfileError("PROFILE_MISSING", "the stored profile is not the journaled one; send PROFILE again")
        try:
            data = self.keystore.profile()
        except OSError as exc:
            raise IdentityError("KEYSTORE_FAILURE", "cannot read the profile: %s" % exc)
        if data is None or hashlib.sha256(data).digest() != self.profile_hash:
            raise ProfileError("PROFILE_MISSING", "the stored profile changed since power-up; send PROFILE again")
        return cbor.decode(data)

    def _on_profile(self, fields):
        data = bytes(fields["data"])
        doc = invoice.load_profile(data)
        digest = hashlib.sha256(data).digest()
        journaled = self.journal.profile_hash == digest
        if not journaled and self.counter > 0:
            raise ProfileError("PROFILE_LOCKED", "invoices are sealed under profile %s; it is never replaced"
                               % self.profile_id)
        if not journaled:
            self._check_event_room()
        try:
            if self.keystore.profile() != data:
                self.keystore.store_profile(data)
        except OSError as exc:
            raise IdentityError("KEYSTORE_FAILURE", "cannot store the profile: %s" % exc)
        self.profile_id, self.profile_hash, self.profile_detail = doc["id"], digest, ""
        if not journaled:
            self._profile_event(doc["id"], digest)
        return {"installed": not journaled, "profile_id": doc["id"], "profile_hash": digest}

    def _check_event_room(self):
        if not self.journal.fits([256], 1):
            raise JournalError("JOURNAL_FULL", "no room for the profile event; archive the journal first")

    def _on_profile_read(self, fields):
        try:
            data = self.keystore.profile()
        except OSError as exc:
            raise IdentityError("KEYSTORE_FAILURE", "cannot read the profile: %s" % exc)
        return {"data": data or b"", "profile_id": self.profile_id, "profile_hash": self.profile_hash or b""}
