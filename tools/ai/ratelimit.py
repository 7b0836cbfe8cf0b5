"""Per-account request/token budgets for calls to paid model APIs.

A batch of AI work (hundreds of keywords, dozens of articles) should run as fast as the account's
upstream limits allow and no faster: exceeding them only buys 429s, retries and wasted tokens. The
limiter therefore enforces, per key (the account id):

* requests per window (RPM) and tokens per window (TPM) with an exact sliding-window log, so the
  count of requests started in *any* window never exceeds the limit;
* a cap on requests in flight.

Token use is unknown until the response arrives, so a caller reserves an estimate and later
``settle``s the lease with the real figure; the window then counts the real figure.

Only :class:`InProcessRateLimiter` exists today. Callers depend on the :class:`RateLimiter` protocol
(every method async), so a Redis-backed implementation sharing budgets across worker processes can
be dropped in later without touching them.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Protocol

__all__ = [
    "InProcessRateLimiter",
    "Lease",
    "NoRateLimit",
    "RateLimiter",
    "RateLimits",
    "limited",
    "shared_limiter",
]


@dataclass(frozen=True)
class RateLimits:
    """Budgets for one key. ``None`` disables that dimension.

    ``window_s`` is 60 for real per-minute limits; tests pass a short window so that "rpm" means
    "requests per window" and a saturation test finishes in seconds.
    """

    rpm: int | None = None
    tpm: int | None = None
    max_concurrency: int | None = None
    window_s: float = 60.0
    # Slots are counted when granted, the server counts arrivals; a request that travels faster than
    # the one it replaces would land inside the server's window. The margin absorbs that jitter.
    jitter_margin_s: float = 0.25

    def __post_init__(self) -> None:
        for name in ("rpm", "tpm", "max_concurrency"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be >= 1 or None, got {value}")
        if self.window_s <= 0:
            raise ValueError("window_s must be positive")


class Lease(Protocol):
    """One granted request slot. Settle it with the real token count, release it when done."""

    async def settle(self, actual_tokens: int) -> None: ...

    async def release(self) -> None: ...


class RateLimiter(Protocol):
    async def acquire(self, key: str, tokens: int = 0) -> Lease:
        """Wait until ``key`` may start one request estimated at ``tokens``; return its lease."""
        ...

    async def pause(self, key: str, seconds: float) -> None:
        """Hold every new request for ``key`` back for ``seconds`` (the server said so, e.g. 429)."""
        ...


@contextlib.asynccontextmanager
async def limited(limiter: RateLimiter, key: str, tokens: int = 0) -> AsyncIterator[Lease]:
    """``async with limited(...) as lease:`` — acquire, and always release, one slot."""
    lease = await limiter.acquire(key, tokens)
    try:
        yield lease
    finally:
        await lease.release()


class _NullLease:
    async def settle(self, actual_tokens: int) -> None:
        return None

    async def release(self) -> None:
        return None


class NoRateLimit:
    """A limiter that never waits (local models, tests that are not about limits)."""

    async def acquire(self, key: str, tokens: int = 0) -> Lease:
        return _NullLease()

    async def pause(self, key: str, seconds: float) -> None:
        return None


class _Entry:
    """One request in the sliding window: when it started and the tokens it is charged."""

    __slots__ = ("at", "live", "tokens")

    def __init__(self, at: float, tokens: int) -> None:
        self.at = at
        self.tokens = tokens
        self.live = True


class _KeyState:
    def __init__(self, limits: RateLimits) -> None:
        self.limits = limits
        # asyncio primitives belong to one loop; a worker that runs each job in a fresh loop gets a
        # fresh state (cross-loop and cross-process budgets are the Redis limiter's job).
        self.loop = asyncio.get_running_loop()
        self.entries: deque[_Entry] = deque()
        self.tokens = 0
        self.paused_until = 0.0
        # Waiters queue on ``gate`` (FIFO); only the head computes and sleeps, so hundreds of waiting
        # tasks cost one timer, not a thundering herd re-checking the window on every change.
        self.gate = asyncio.Lock()
        self.changed = asyncio.Event()
        self.slots = asyncio.Semaphore(limits.max_concurrency) if limits.max_concurrency else None


class _Lease:
    __slots__ = ("_entry", "_limiter", "_released", "_state")

    def __init__(self, limiter: InProcessRateLimiter, state: _KeyState, entry: _Entry) -> None:
        self._limiter = limiter
        self._state = state
        self._entry = entry
        self._released = False

    async def settle(self, actual_tokens: int) -> None:
        self._limiter._settle(self._state, self._entry, max(0, actual_tokens))

    async def release(self) -> None:
        if self._released:
            return
        self._released = True
        if self._state.slots is not None:
            self._state.slots.release()


class InProcessRateLimiter:
    """Sliding-window RPM/TPM plus a concurrency cap, per key, inside one event loop.

    A request is counted from the moment its slot is granted (immediately before it is sent), so
    the server sees at most ``rpm`` request starts in any ``window_s``-long interval, give or take
    network jitter. A single request estimated above ``tpm`` is let through once the window is
    empty, otherwise it could never run.
    """

    def __init__(
        self,
        limits: RateLimits,
        *,
        per_key: dict[str, RateLimits] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.default_limits = limits
        self._per_key = dict(per_key or {})
        self._states: dict[str, _KeyState] = {}
        self._clock = clock

    def set_limits(self, key: str, limits: RateLimits) -> None:
        """Give one account its own budget (e.g. a higher plan). Applies to requests not yet waiting."""
        self._per_key[key] = limits
        self._states.pop(key, None)

    def usage(self, key: str) -> tuple[int, int]:
        """``(requests, tokens)`` counted in the current window for ``key`` — for metrics and tests."""
        state = self._states.get(key)
        if state is None:
            return 0, 0
        self._prune(state, self._clock())
        return len(state.entries), state.tokens

    async def acquire(self, key: str, tokens: int = 0) -> Lease:
        state = self._state(key)
        if state.slots is not None:
            await state.slots.acquire()
        try:
            async with state.gate:
                entry = await self._reserve(state, max(0, tokens))
        except BaseException:
            if state.slots is not None:
                state.slots.release()
            raise
        return _Lease(self, state, entry)

    async def pause(self, key: str, seconds: float) -> None:
        state = self._state(key)
        state.paused_until = max(state.paused_until, self._clock() + max(0.0, seconds))
        state.changed.set()

    def _state(self, key: str) -> _KeyState:
        state = self._states.get(key)
        if state is None or state.loop is not asyncio.get_running_loop():
            state = _KeyState(self._per_key.get(key, self.default_limits))
            self._states[key] = state
        return state

    async def _reserve(self, state: _KeyState, tokens: int) -> _Entry:
        """Called with the gate held: wait until the window has room, then record the request."""
        while True:
            now = self._clock()
            self._prune(state, now)
            wait = self._wait_needed(state, tokens, now)
            if wait <= 0:
                entry = _Entry(now, tokens)
                state.entries.append(entry)
                state.tokens += tokens
                return entry
            state.changed.clear()
            # A settle() that returns tokens, or a pause(), wakes us early to recompute.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(state.changed.wait(), timeout=wait)

    def _prune(self, state: _KeyState, now: float) -> None:
        horizon = now - state.limits.window_s - state.limits.jitter_margin_s
        while state.entries and state.entries[0].at <= horizon:
            entry = state.entries.popleft()
            entry.live = False
            state.tokens -= entry.tokens

    def _wait_needed(self, state: _KeyState, tokens: int, now: float) -> float:
        limits = state.limits
        waits = [state.paused_until - now]
        entries = state.entries
        if limits.rpm is not None and len(entries) >= limits.rpm:
            # The oldest len-rpm+1 entries must leave the window; the last of them decides.
            waits.append(
                entries[len(entries) - limits.rpm].at + limits.window_s + limits.jitter_margin_s - now
            )
        if limits.tpm is not None and entries and state.tokens + tokens > limits.tpm:
            waits.append(self._token_wait(state, tokens, now))
        return max(waits)

    @staticmethod
    def _token_wait(state: _KeyState, tokens: int, now: float) -> float:
        """Seconds until enough old entries expire for ``tokens`` to fit (or the window empties)."""
        limit = state.limits.tpm or 0
        remaining = state.tokens
        for entry in state.entries:
            remaining -= entry.tokens
            if remaining + tokens <= limit:
                return entry.at + state.limits.window_s - now
        return state.entries[-1].at + state.limits.window_s - now

    def _settle(self, state: _KeyState, entry: _Entry, actual: int) -> None:
        if entry.live:
            state.tokens += actual - entry.tokens
        entry.tokens = actual
        state.changed.set()


_SHARED: dict[str, InProcessRateLimiter] = {}


def shared_limiter(scope: str, limits: RateLimits) -> InProcessRateLimiter:
    """One limiter per ``scope`` ("llm", "images", ...) for the whole process.

    Providers are cheap to construct per request; the budget must not be, or two instances would
    each think they own the whole RPM. The first caller's ``limits`` win.
    """
    limiter = _SHARED.get(scope)
    if limiter is None:
        limiter = _SHARED[scope] = InProcessRateLimiter(limits)
    return limiter
