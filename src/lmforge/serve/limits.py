"""Per-key rate limits: token buckets for requests per minute and tokens per minute, and the
ledger of what one call took, so that a refused call gives it all back."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from lmforge.errors import LmforgeError


class RateLimited(LmforgeError):
    def __init__(self, what: str, retry_after: float) -> None:
        super().__init__(f"rate limit exceeded: {what}; retry after {retry_after:.0f} s")
        self.retry_after = retry_after


class TokenBucket:
    """`per_minute` units refill continuously; holds at most one minute's worth."""

    def __init__(self, per_minute: float) -> None:
        self.capacity = per_minute
        self.rate = per_minute / 60.0
        self.level = per_minute
        self.stamp = time.monotonic()

    def _refill(self) -> None:
        now = time.monotonic()
        self.level = min(self.capacity, self.level + (now - self.stamp) * self.rate)
        self.stamp = now

    def shortfall(self, amount: float) -> float:
        """Seconds until `amount` is there (0: it is now); takes nothing."""
        self._refill()
        if amount <= self.level:
            return 0.0
        if amount > self.capacity:
            return 60.0
        return (amount - self.level) / self.rate

    def take(self, amount: float) -> float:
        """Take `amount` and return 0, or take nothing and return the seconds to wait."""
        wait = self.shortfall(amount)
        if not wait:
            self.level -= amount
        return wait

    def give_back(self, amount: float) -> None:
        """Return what a refused call took (never above one minute's worth)."""
        self._refill()
        self.level = min(self.capacity, self.level + amount)


class RateLimiter:
    def __init__(self, requests_per_minute: float, tokens_per_minute: float) -> None:
        self.limits = {"requests": requests_per_minute, "tokens": tokens_per_minute}
        self._buckets: dict[tuple[str, str], TokenBucket] = {}
        self._lock = threading.Lock()

    def charge(self, key_id: str, what: str, amount: float) -> None:
        """Take `amount`, or raise `RateLimited` (with Retry-After seconds) having taken
        nothing when `key_id` is over its limit."""
        self._apply(key_id, what, amount, TokenBucket.take)

    def require(self, key_id: str, what: str, amount: float) -> None:
        """Raise `RateLimited` when `key_id` has less than `amount` left; takes nothing (a
        call checks what it will surely cost before the work that tells the exact cost)."""
        self._apply(key_id, what, amount, TokenBucket.shortfall)

    def _apply(
        self, key_id: str, what: str, amount: float, op: Callable[[TokenBucket, float], float]
    ) -> None:
        per_minute = self.limits[what]
        if not per_minute:
            return
        with self._lock:
            bucket = self._buckets.setdefault((key_id, what), TokenBucket(per_minute))
            wait = op(bucket, amount)
        if wait:
            raise RateLimited(f"{per_minute:g} {what} per minute", max(1.0, wait))

    def refund(self, key_id: str, what: str, amount: float) -> None:
        """Give back `amount` that `charge` took."""
        if not self.limits[what]:
            return
        with self._lock:
            bucket = self._buckets.get((key_id, what))
            if bucket is not None:
                bucket.give_back(amount)


class Ledger:
    """What one call has taken from its caller's buckets: a call the server refuses (a 4xx
    or 429 answer) is refunded whole, so refusals never spend the caller's budget."""

    def __init__(self, limiter: RateLimiter, key_id: str) -> None:
        self.limiter = limiter
        self.key_id = key_id
        self.taken: dict[str, float] = {}

    def charge(self, what: str, amount: float) -> None:
        self.limiter.charge(self.key_id, what, amount)
        self.taken[what] = self.taken.get(what, 0.0) + amount

    def require(self, what: str, amount: float) -> None:
        self.limiter.require(self.key_id, what, amount)

    def refund(self) -> None:
        for what, amount in self.taken.items():
            self.limiter.refund(self.key_id, what, amount)
        self.taken.clear()
