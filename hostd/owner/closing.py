"""Closures on the owner thread: the Z that ends a period before it may be archived (issue 11).

The device never erases the open period, the records after its newest Z (ARCHIVE_OPEN_PERIOD,
PROTOCOL.md 4.17, 4.22), so a Z and an X can always re-read it from flash. The host therefore
archives only up to its newest Z; when the journal needs the space and the whole live journal is
still open, it closes the period first. A Z's period is the UTC day of the device clock: a day may
be closed more than once (the second Z covers what came after the first), never before the last.
"""

import logging
import time

from protocol import cbor, record, timefmt

log = logging.getLogger("fiscal.owner")


def closure_fields(rec):
    """The fields of a CLOSURE record, or None for any other record."""
    fields = record.decode(rec)[0]
    return fields if fields[record.K_TYPE] == record.CLOSURE else None


def last_z(rows):
    """(seq, period) of the newest Z closure among mirrored ``rows`` (seq, record, hash), or None."""
    for seq, rec, _ in reversed(rows):
        if record.type_of(rec) == record.CLOSURE:
            fields = closure_fields(rec)
            if fields[record.K_KIND] == "Z":
                return seq, fields[record.K_PERIOD]
    return None


class Closing:
    """Expects Owner's ``call``, ``info``, ``store`` and ``reconcile``."""

    def z_period(self, deadline):
        """Today's UTC date by the device clock (its last record's time when the clock is unset),
        not before the newest Z's period."""
        info = self.call(deadline, "INFO")
        now = info["clock"] if info["clock"] is not None else info["last_time"]
        day = timefmt.format_time(max(now, info["last_time"]))[:10]
        newest = last_z(self.store.journal_from(max(1, info["first_live"])))
        return max(day, newest[1]) if newest else day

    def close_z(self, deadline, period=None):
        """CLOSE Z of ``period`` (default :meth:`z_period`); mirror it; return the CLOSE answer."""
        period = period or self.z_period(deadline)
        answer = self.call(deadline, "CLOSE", kind="Z", period=period, offset=0, records=[], last=True)
        log.info("closed Z %s at record %d", period, answer["seq"])
        self.reconcile()
        return answer
