"""Per-key rate limits: token buckets for requests per minute and tokens per minute, and the
ledger of what one call took, so that a refused call gives it all back."""

from __future__ import annotations

import threading
import time

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

    def take(self, amount: float) -> float:
        """Take `amount` and return 0, or take nothing and return the seconds to wait."""
        self._refill()
        if amount <= self.level:
            self.level -= amount
            return 0.0
        if amount > self.capacity:
            return 60.0
        return (amount - self.level) / self.rate

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
        per_minute = self.limits[what]
        if not per_minute:
            return
        with self._lock:
            bucket = self._buckets.setdefault((key_id, what), TokenBucket(per_minute))
            wait = bucket.take(amount)
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

    def refund(self) -> None:
        for what, amount in self.taken.items():
            self.limiter.refund(self.key_id, what, amount)
        self.taken.clear()
