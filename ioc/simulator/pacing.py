"""Rate control: a token bucket that stays accurate from 1 event/s to tens of thousands."""

from __future__ import annotations

import time
from collections.abc import Callable


class TokenBucket:
    """Grants events at ``rate`` per second on average, in bursts of at most ``burst``.

    Taking more tokens than are available puts the bucket in debt and sleeps
    until it is paid, so chunked callers (thousands of events per call at high
    rates) keep the exact long-run rate. It starts nearly empty (one token) so
    a short run is not front-loaded; ``burst`` (a quarter second of events by
    default) absorbs scheduling jitter yet keeps a stalled publisher from
    catching up with a flood afterwards.
    """

    def __init__(
        self,
        rate: float,
        burst: float | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be greater than zero")
        self.rate = rate
        self.burst = burst if burst is not None else max(1.0, rate * 0.25)
        self._clock = clock
        self._sleep = sleep
        self._tokens = min(1.0, self.burst)
        self._last = clock()

    def take(self, n: float) -> None:
        """Wait until ``n`` events may go."""
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate) - n
        self._last = now
        if self._tokens < 0:
            self._sleep(-self._tokens / self.rate)

    def chunk(self, cap: int) -> int:
        """A good number of events to take at once: about 20 ms worth, at most ``cap``."""
        return max(1, min(cap, int(self.rate * 0.02)))
