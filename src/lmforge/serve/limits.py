"""Per-key rate limits: token buckets for requests per minute and tokens per minute."""

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

    def take(self, amount: float) -> float:
        """Take `amount` and return 0, or take nothing and return the seconds to wait."""
        now = time.monotonic()
        self.level = min(self.capacity, self.level + (now - self.stamp) * self.rate)
        self.stamp = now
        if amount <= self.level:
            self.level -= amount
            return 0.0
        if amount > self.capacity:
            return 60.0
        return (amount - self.level) / self.rate


class RateLimiter:
    def __init__(self, requests_per_minute: float, tokens_per_minute: float) -> None:
        self.limits = {"requests": requests_per_minute, "tokens": tokens_per_minute}
        self._buckets: dict[tuple[str, str], TokenBucket] = {}
        self._lock = threading.Lock()

    def charge(self, key_id: str, what: str, amount: float) -> None:
        """Raise `RateLimited` (with Retry-After seconds) when `key_id` is over its limit."""
        per_minute = self.limits[what]
        if not per_minute:
            return
        with self._lock:
            bucket = self._buckets.setdefault((key_id, what), TokenBucket(per_minute))
            wait = bucket.take(amount)
        if wait:
            raise RateLimited(f"{per_minute:g} {what} per minute", max(1.0, wait))
