"""Process-wide counters of what the service spends (the seed's ResourceTracker), for ``/metrics``.

They live beside the code that does the spending so the AI engine, the ledger and the job runner
report without knowing which front-end (HTTP, Slack, CLI) exposes them. Credits are counted after
the transaction that logged them commits, so the counter never runs ahead of the ledger.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import Counter, Gauge

AI_CALLS = Counter("igny8_ai_calls_total", "Calls to AI providers, per AI function", ["function", "outcome"])
CREDITS = Counter("igny8_credits_spent_total", "Credits charged for work done", ["operation"])
JOBS = Counter("igny8_jobs_total", "Long actions (jobs) finished", ["action", "outcome"])
JOBS_RUNNING = Gauge("igny8_jobs_running", "Long actions (jobs) running now", ["action"])


def count_ai_call(function: str, *, ok: bool) -> None:
    AI_CALLS.labels(function, "ok" if ok else "error").inc()


def count_credits(operation: str, credits: int) -> None:
    if credits > 0:
        CREDITS.labels(operation).inc(credits)


@contextmanager
def job(action: str) -> Iterator[None]:
    """Count one long action while it runs and by how it ended."""
    JOBS_RUNNING.labels(action).inc()
    outcome = "error"
    try:
        yield
        outcome = "ok"
    finally:
        JOBS_RUNNING.labels(action).dec()
        JOBS.labels(action, outcome).inc()
