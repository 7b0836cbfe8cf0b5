"""Throughput of generate_content under a provider rate limit, against a local OpenAI-wire stub.

The stub answers after --latency seconds and itself refuses (429) anything beyond --rpm per window,
so "never exceeds" is checked by the server, not by us. We run --calls generate_content items as
--batches concurrent actions and print:

* achieved RPM in the busiest window / the limit (target >= 0.9: a batch saturates the limit),
* requests the stub refused (target 0: we never exceed it),
* failures and double charges (target 0 each: one Content and one usage row per task, and the
  ledger, the usage log and the balance agree).

    python bench/throughput.py                  # 1,000 calls, 600 RPM, 300 ms, 60 s window (~75 s)
    python bench/throughput.py --window 10      # same shape, per-10-s window (~15 s)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import func, insert, select

from storage.db import Database
from storage.migrate import upgrade_async
from storage.models import Account, Content, CreditTransaction, CreditUsageLog, Task
from storage.settings import get_settings
from tests.stubs.openai_stub import OpenAIStub
from tests.stubs.scripted import Reply
from tools import load_actions
from tools.accounts import create_account, tenant_for_user_id
from tools.ai.ratelimit import RateLimits, shared_limiter
from tools.registry import invoke

ARTICLE = {
    "title": "Benchmark article",
    "meta_title": "Benchmark article",
    "meta_description": "A short article used to measure throughput.",
    "primary_keyword": "benchmark",
    "secondary_keywords": ["throughput"],
    "html_content": "<h1>Benchmark article</h1>" + "<p>Words about throughput and limits.</p>" * 20,
}


def busiest_window(times: list[float], window: float) -> int:
    best, start = 0, 0
    for end, at in enumerate(times):
        while times[start] <= at - window:
            start += 1
        best = max(best, end - start + 1)
    return best


async def setup(db: Database, stub: OpenAIStub, calls: int):
    made = await create_account(db, name="Bench", email="bench@example.com", plan="scale", credits=1_000_000)
    owner = await tenant_for_user_id(db, made.user_id)
    site = await invoke("sites.create", {"name": "Bench"}, db=db, tenant=owner)
    sector = await invoke("sectors.create", {"site_id": site.id, "name": "Bench"}, db=db, tenant=owner)
    await invoke(
        "integrations.save",
        {
            "integration_type": "openai",
            "config": {"base_url": stub.base_url, "api_key": stub.api_key, "model": stub.model},
        },
        db=db,
        tenant=owner,
    )
    async with db.transaction(owner) as s:
        rows = [
            {"site_id": site.id, "sector_id": sector.id, "title": f"Task {n}", "keywords": "benchmark"}
            for n in range(calls)
        ]
        ids = list((await s.scalars(insert(Task).returning(Task.id), rows)).all())
    return owner, ids


async def audit(db: Database, owner) -> dict[str, int]:
    async with db.transaction(owner) as s:
        contents = await s.scalar(select(func.count(Content.id))) or 0
        tasks_with_content = await s.scalar(select(func.count(func.distinct(Content.task_id)))) or 0
        logged = await s.scalar(select(func.coalesce(func.sum(CreditUsageLog.credits_used), 0))) or 0
        log_rows = await s.scalar(select(func.count(CreditUsageLog.id))) or 0
        ledger = await s.scalar(select(func.coalesce(func.sum(CreditTransaction.amount), 0))) or 0
        balance = await s.scalar(select(Account.credits)) or 0
    return {
        "contents": contents,
        "tasks_with_content": tasks_with_content,
        "logged": logged,
        "log_rows": log_rows,
        "ledger": ledger,
        "balance": balance,
    }


async def main(args: argparse.Namespace) -> int:
    settings = get_settings()
    settings.data_dir = Path(tempfile.mkdtemp())
    shared_limiter(
        "llm", RateLimits(rpm=args.rpm, tpm=None, max_concurrency=args.concurrency, window_s=args.window)
    )
    settings.llm_max_concurrency = args.concurrency
    load_actions()
    url = (
        f"sqlite+aiosqlite:///{settings.data_dir / 'bench.db'}"
        if not args.postgres_url
        else args.postgres_url
    )
    await upgrade_async(url)
    db = Database(url)
    async with OpenAIStub() as stub:
        stub.enforce_rpm(args.rpm, args.window)
        stub.set_default("chat", Reply(content=json.dumps(ARTICLE), delay_s=args.latency))
        owner, task_ids = await setup(db, stub, args.calls)
        per_batch = -(-len(task_ids) // args.batches)
        started = time.perf_counter()
        results = await asyncio.gather(
            *(
                invoke(
                    "tasks.auto_generate_content",
                    {"task_ids": task_ids[i : i + per_batch]},
                    db=db,
                    tenant=owner,
                )
                for i in range(0, len(task_ids), per_batch)
            ),
            return_exceptions=True,
        )
        elapsed = time.perf_counter() - started
        requests = stub.chat_requests()
    accepted = sorted(r.at for r in requests if r.status == 200)
    refused = sum(1 for r in requests if r.status == 429)
    failures = sum(len(r.failed) if not isinstance(r, BaseException) else per_batch for r in results)
    used = sum(r.credits_used for r in results if not isinstance(r, BaseException))
    found = await audit(db, owner)
    await db.dispose()
    double = (
        (found["contents"] - found["tasks_with_content"])
        + (found["log_rows"] - found["contents"])
        + (0 if found["logged"] == used == -found["ledger"] == 1_000_000 - found["balance"] else 1)
    )
    peak = busiest_window(accepted, args.window)
    ratio = peak / args.rpm
    print(
        f"calls: {args.calls} in {args.batches} concurrent batches, "
        f"stub latency {args.latency * 1000:.0f} ms, limit {args.rpm} per {args.window:g} s window"
    )
    print(f"busiest window: {peak} requests = {ratio:.2f} of the limit (target >= 0.90, never above 1.00)")
    print(f"run: {len(accepted)} requests in {elapsed:.1f} s; requests refused by the stub (429): {refused}")
    print(
        f"failures: {failures}   double charges: {double}   credits used: {used} "
        f"(usage log {found['logged']}, ledger {-found['ledger']})"
    )
    ok = 0.9 <= ratio <= 1.0 and refused == 0 and failures == 0 and double == 0
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--batches", type=int, default=10)
    parser.add_argument("--rpm", type=int, default=600, help="requests allowed per window")
    parser.add_argument("--window", type=float, default=60.0, help="window length in seconds")
    parser.add_argument("--latency", type=float, default=0.3)
    parser.add_argument("--concurrency", type=int, default=16, help="in-flight requests per account")
    parser.add_argument("--postgres-url", default=None)
    sys.exit(asyncio.run(main(parser.parse_args())))
