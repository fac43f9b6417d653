"""The day's close: a Z at a configured time of day, and a warning for every day without one.

NF525 (seed 004) and every regime we anchor on close each business day. ``fiscal daemon
--close-at HH:MM`` (UTC, default 23:55; ``off`` to leave it to the POS through
``POST /api/v1/reports``) has the owner CLOSE Z of the device's day at that time. A daemon that
was down then closes at its next start, the Z labelled with the device's day, and a day whose
records no Z of its own closes is named in the log (warning) and in ``/status``
(``closures.missing_z``), once per check, for the last ``LOOKBACK`` days.

A day opens with its first invoice: with no invoice since the last Z nothing is closed (a day
already closed is not closed again; a power-up or clock record opens no day).
"""

import asyncio
import logging
import time

from protocol import record, timefmt
from hostd.errors import ConfigError, HostdError
from hostd.owner.owner import SEAL_BUDGET

log = logging.getLogger("fiscal.daemon")
DEFAULT_AT = "23:55"
LOOKBACK = 31      # days checked for a missing Z
RETRY = 60.0       # seconds before a failed close is tried again
WAIT = 2.0         # seconds between looks for a connected device before closing


def parse_at(text):
    """Minutes after midnight UTC of ``HH:MM``, or None for ``off``."""
    if text == "off":
        return None
    parts = text.split(":") if isinstance(text, str) else ()
    if len(parts) != 2 or not all(p.isascii() and p.isdigit() and len(p) == 2 for p in parts) \
            or int(parts[0]) > 23 or int(parts[1]) > 59:
        raise ConfigError("--close-at must be HH:MM (UTC) or off, not %r" % (text,), field="--close-at")
    return int(parts[0]) * 60 + int(parts[1])


def seconds_until(at_minutes, now):
    """Seconds from epoch ``now`` to the next ``at_minutes`` after midnight UTC (never 0)."""
    day_start = now - now % 86400
    target = day_start + at_minutes * 60
    if target <= now:
        target += 86400
    return target - now


class Closer:
    def __init__(self, owner, at_minutes, clock=time.time):
        self.owner = owner
        self.at = at_minutes
        self.clock = clock
        self.missing = []   # days without a Z, as last checked (``/status``)

    async def run(self):
        """Close at start when a past day is open, then every day at ``at``."""
        await self._close(at_start=True)
        while True:
            await asyncio.sleep(seconds_until(self.at, self.clock()))
            await self._close(at_start=False)

    async def _close(self, at_start):
        while True:
            while self.owner.client is None:   # never hold the owner thread waiting for an absent device
                await asyncio.sleep(WAIT)
            try:
                await asyncio.wrap_future(self.owner.run(self.close_due, at_start))
                return
            except HostdError as exc:
                log.error("the day's Z could not be made, retried in %d s: %s", RETRY, exc.detail)
                await asyncio.sleep(RETRY)

    def close_due(self, at_start):
        """Owner thread: Z when due (at the hour; at start only when an earlier day is still
        open), then note the days without a Z."""
        deadline = time.monotonic() + SEAL_BUDGET
        owner = self.owner
        owner.catch_up_all(deadline)
        today = timefmt.format_time(int(self.clock()))[:10]
        newest = owner.closures.newest("Z")
        open_since = self._open_since(newest)
        if open_since is not None and (not at_start or open_since < today):
            row = owner.close_z(deadline)
            log.info("closed the day: Z %s (report %s)", row["period"], row["report_id"])
        self.check_missing(today)

    def _open_since(self, newest):
        """The UTC day of the first invoice after the newest Z (None: no invoice is open). Other
        records (a power-up before the clock was set is dated 1970) open no day."""
        after = newest["seq"] if newest is not None else 0
        while True:
            rows = self.owner.closures.mirror_after(after + 1, 512)
            for row in rows:
                rec = bytes(row["record"])
                if record.type_of(rec) == record.INVOICE:
                    return timefmt.format_time(record.decode(rec)[0][record.K_TIME])[:10]
            if len(rows) < 512:
                return None
            after = rows[-1]["seq"]

    def check_missing(self, today):
        first = timefmt.format_time(int(self.clock()) - LOOKBACK * 86400)[:10]
        missing = self.owner.closures.days_without_z(first, today)
        for day in missing:
            if day not in self.missing:
                log.warning("no Z closes %s: its records went into the next day's Z", day)
        self.missing = missing
