"""The nonce table: PREPAREd invoices waiting for COMMIT, and what became of recent nonces.

Limits follow the DRC e-MCF (reference fiscal-device-standards.md section 5.4): at most
``max_pending`` open PREPAREs (10 by default) and an expiry of ``ttl`` seconds (120) by the
device clock. Pending entries live in RAM only: after a power cut they are gone, STATUS answers
"unknown", and since a commit is always journalled the host knows the invoice was *not* sealed.
Committed nonces are remembered in a RAM ring of the ``remember`` most recent (nonce -> seq), so
COMMIT and STATUS never scan the journal; an older or pre-power-cut committed nonce answers
"unknown", and the host asks STATUS by request id, which the journal itself answers (PROTOCOL.md
4.10). Aborted and expired nonces are remembered in a bounded ring too.
"""

from protocol import messages
from protocol.errors import NonceError


class Nonces:
    def __init__(self, max_pending=10, ttl=120, remember=32):
        self.max_pending = max_pending
        self.ttl = ttl
        self.remember = remember
        self.pending = {}     # nonce -> {"hash", "summary", "expires"}
        self.ended = []       # [(nonce, ABORTED|EXPIRED)], oldest first
        self.committed = []   # [(nonce, seq)], oldest first

    def expire(self, now):
        """Move every pending nonce whose expiry is reached to the EXPIRED ring."""
        if now is None:
            return
        gone = [n for n in self.pending if self.pending[n]["expires"] <= now]
        gone.sort()  # dict order differs between interpreters; keep the ring deterministic
        for nonce in gone:
            del self.pending[nonce]
            self._end(nonce, messages.EXPIRED)

    def known(self, nonce):
        return nonce in self.pending or self.ended_state(nonce) is not None \
            or self.committed_seq(nonce) is not None

    def add(self, nonce, entry):
        self.check_room()
        self.pending[nonce] = entry

    def check_room(self):
        if len(self.pending) >= self.max_pending:
            raise NonceError("TOO_MANY_PENDING", "%d PREPAREs are pending; COMMIT or ABORT one first"
                             % len(self.pending))

    def ended_state(self, nonce):
        for n, state in self.ended:
            if n == nonce:
                return state
        return None

    def committed_seq(self, nonce):
        for n, seq in self.committed:
            if n == nonce:
                return seq
        return None

    def abort(self, nonce):
        del self.pending[nonce]
        self._end(nonce, messages.ABORTED)

    def mark_committed(self, nonce, seq):
        self.pending.pop(nonce, None)
        self.committed.append((nonce, seq))
        if len(self.committed) > self.remember:
            self.committed.pop(0)

    def refuse_ended(self, nonce):
        """Raise the typed error for a nonce that was aborted or expired (COMMIT refused)."""
        state = self.ended_state(nonce)
        if state == messages.ABORTED:
            raise NonceError("NONCE_ABORTED", "nonce was aborted; PREPARE the invoice again")
        if state == messages.EXPIRED:
            raise NonceError("NONCE_EXPIRED", "nonce expired after %d s; PREPARE the invoice again" % self.ttl)

    def _end(self, nonce, state):
        self.ended.append((nonce, state))
        if len(self.ended) > self.remember:
            self.ended.pop(0)
