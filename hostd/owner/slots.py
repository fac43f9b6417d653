"""Fair use of the device's pending PREPARE slots (issue 8).

The device holds at most ``max_pending`` open PREPAREs (10 by default, DRC e-MCF). A two-phase
PREPARE holds its slot until the POS commits or aborts it, or the nonce expires (120 s by
default), so one terminal that prepares and walks away could lock every other terminal out.
So each terminal (``outlet_id/pos_terminal_id``) may hold at most ``share`` open two-phase
PREPAREs (default a third of the device's slots, at least 1), and so may each token scoped to
outlets (hostd/api/auth.py), whatever terminals its invoices name: a client cannot take every
slot by naming a new terminal each time. A token of every outlet (``*``, the back office) is held
to the terminal share only. One-call seals need no slot at all (protocol 2's SEAL), so they are
never locked out.

A slot can also leak: PREPARE succeeds on the device, then the store cannot record the nonce
(disk full). Such a nonce is an *orphan*: the owner aborts it at once, and if the device cannot
be reached then, before its next job, until the device confirms it is gone.
"""

import logging

from hostd.errors import DeviceRefused, DeviceUnavailable, ShareExhausted

log = logging.getLogger("fiscal.owner")


class Slots:
    def __init__(self, store, share=None):
        self.store = store
        self.share = share
        self.orphans = []

    def share_for(self, info):
        if self.share is not None:
            return self.share
        return max(1, info["max_pending"] // 3)

    def check(self, prefix, row, info, now):
        """Refuse a new two-phase PREPARE for ``row`` beyond its terminal's share (429)."""
        since = now - info["nonce_ttl"]
        terminal = row["terminal"]
        held, oldest = self.store.open_prepares(prefix, since, terminal) if terminal else (0, None)
        share = self.share_for(info)
        if held >= share:
            raise ShareExhausted("terminal %s holds %d open PREPAREs, its share of the device's %d; commit or "
                                 "abort one" % (terminal, held, info["max_pending"]), "pos_terminal_id",
                                 max(1, int(oldest + info["nonce_ttl"] - now + 1)))
        caller = row["caller"]
        if caller is not None:
            held, oldest = self.store.open_prepares(prefix, since, caller=caller)
            if held >= share:
                raise ShareExhausted("this token holds %d open PREPAREs, its share of the device's %d (over all "
                                     "its terminals); commit or abort one" % (held, info["max_pending"]),
                                     "Authorization", max(1, int(oldest + info["nonce_ttl"] - now + 1)))

    def orphan(self, nonce):
        self.orphans.append(nonce)

    def release(self, call, deadline):
        """ABORT every orphan nonce; keep those the device cannot be asked about yet."""
        for nonce in list(self.orphans):
            try:
                call(deadline, "ABORT", nonce=nonce)
            except DeviceRefused as exc:   # NONCE_UNKNOWN/COMMITTED...: the slot is free either way
                log.info("orphan nonce %s: %s", nonce.hex(), exc.name)
            except DeviceUnavailable as exc:
                log.warning("orphan nonce %s not aborted yet: %s", nonce.hex(), exc.detail)
                continue
            self.orphans.remove(nonce)

