"""What the daemon's background senders share (the webhook dispatcher, the sync agent): a wake-up
the owner thread can ring after filing, and the retry delay both follow.

The wake-up is coalesced: a ring already on its way to the loop is not sent again, and a sender
woken by one lets SETTLE pass before it reads the store, so a burst of seals costs it one pass
(two store reads in worker threads) instead of one per invoice. Measured on the single lane
(issue 15, py-spy): a pass per seal was about a tenth of the daemon's CPU. Nothing is missed:
``awake()`` clears the flag before the pass reads the store, so a filing after that rings again.

The delay is exponential with jitter (``base * 2^(attempt-1)``, capped, times 0.5-1.5: AWS
"Exponential Backoff and Jitter"), so receivers that come back are not hit by every sender at
once; Standard Webhooks asks for the same.
"""

import asyncio
import random

SETTLE = 0.05   # seconds a woken sender waits for the rest of a burst before its pass


class Retrying:
    """Mixed into a sender that sets ``base``, ``cap``, ``loop`` and ``wakeup`` in its ``run``
    and starts each pass with ``awake()`` and waits with ``sleep(seconds)``."""

    ringing = False   # a wake-up is on its way to the loop and not taken by a pass yet

    def wake(self):
        """Thread-safe: there may be new work (called by the owner after filing)."""
        if self.loop is not None and not self.ringing:
            self.ringing = True
            self.loop.call_soon_threadsafe(self.wakeup.set)

    def awake(self):
        """At the start of a pass, before it reads the store: later filings ring again."""
        self.wakeup.clear()
        self.ringing = False

    async def sleep(self, seconds):
        """Wait ``seconds`` or until woken; a wake-up then lets SETTLE pass (the rest of a burst)."""
        try:
            await asyncio.wait_for(self.wakeup.wait(), seconds)
        except asyncio.TimeoutError:
            return
        await asyncio.sleep(SETTLE)

    def delay(self, attempt):
        """Seconds before retry ``attempt`` (1 for the first retry)."""
        return min(self.cap, self.base * 2 ** (attempt - 1)) * random.uniform(0.5, 1.5)
