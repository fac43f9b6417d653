"""What the daemon's background senders share (the webhook dispatcher, the sync agent): a wake-up
the owner thread can ring after filing, and the retry delay both follow.

The delay is exponential with jitter (``base * 2^(attempt-1)``, capped, times 0.5-1.5: AWS
"Exponential Backoff and Jitter"), so receivers that come back are not hit by every sender at
once; Standard Webhooks asks for the same.
"""

import random


class Retrying:
    """Mixed into a sender that sets ``base``, ``cap``, ``loop`` and ``wakeup`` in its ``run``."""

    def wake(self):
        """Thread-safe: there may be new work (called by the owner after filing)."""
        if self.loop is not None:
            self.loop.call_soon_threadsafe(self.wakeup.set)

    def delay(self, attempt):
        """Seconds before retry ``attempt`` (1 for the first retry)."""
        return min(self.cap, self.base * 2 ** (attempt - 1)) * random.uniform(0.5, 1.5)
