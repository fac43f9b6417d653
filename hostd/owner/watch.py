"""Device events for webhooks and the log (issue 12): the device lost and found, a fault, and
journal fill crossing 80, 90 and 95 percent (the Belgian FDM warns at 90 %, the German TSE at
configurable levels: reference fiscal-device-standards.md).

``DeviceWatch`` sees every INFO the owner reads and every link loss, and turns transitions into
outbox events (hostd/store/outbox.py), each once: lost once per outage, found once when it ends,
a fault when it appears or changes, a fill level when it is first reached (remembered in the
store, so a restart does not announce it again).
"""

import logging
import time

from hostd.books import events
from hostd.store.outbox import Outbox

log = logging.getLogger("fiscal.device")
FILL_LEVELS = (80, 90, 95)


class DeviceWatch:
    def __init__(self, store):
        self.store = store
        self.outbox = Outbox(store)
        self.lost_since = None
        self.connected = False
        self.fault = ""
        self.on_event = None

    def _emit(self, kind, device_id, **detail):
        self.outbox.emit(kind, events.device_event(kind, device_id, **detail), time.time())
        if self.on_event is not None:
            self.on_event()

    def lost(self, device_id, reason):
        if self.connected:
            self.connected = False
            self.lost_since = time.time()
            log.warning("device %s lost: %s", device_id, reason)
            self._emit(events.DEVICE_LOST, device_id, reason=reason)
        elif self.lost_since is None:
            self.lost_since = time.time()

    def found(self, info):
        if not self.connected:
            outage = None if self.lost_since is None else int(time.time() - self.lost_since)
            log.info("device %s found (counter %d)", info["device_id"], info["counter"])
            if self.lost_since is not None:
                self._emit(events.DEVICE_FOUND, info["device_id"], offline_seconds=outage)
        self.connected = True
        self.lost_since = None
        self.seen(info)

    def seen(self, info):
        """An INFO answer: announce a new fault and a newly reached fill level."""
        if info["fault"] and info["fault"] != self.fault:
            log.error("device %s fault: %s", info["device_id"], info["fault"])
            self._emit(events.DEVICE_FAULT, info["device_id"], fault=info["fault"])
        self.fault = info["fault"]
        fill = 100.0 * info["journal_used"] / max(1, info["journal_size"])
        reached = max([level for level in FILL_LEVELS if fill >= level], default=0)
        known = self.store.meta("fill_level", 0)
        if reached != known:
            self.store.set_meta("fill_level", reached)
            if reached > known:
                log.warning("device %s journal %.1f%% full", info["device_id"], fill)
                self._emit(events.JOURNAL_FILL, info["device_id"], level=reached, fill=round(fill, 2))
