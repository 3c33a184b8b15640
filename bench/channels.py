"""Benchmark the platform channels through their real adapters against the local fake servers.

    .venv/bin/python -m bench.channels [--backend sqlite|postgres|both] [--loops N] [--no-docs]

1. limiter      `reserve()` of the shared rate limiter with Telegram's three rules (chat, group, global),
                in-process and through Redis (one Lua script per call): microseconds per call.
2. telegram     the whole loop (intake → 接单 in the group → 出发 → +60 min → 完成服务 → ⭐⭐⭐⭐⭐) on the fake
                Telegram Bot API, by long polling and by webhook: seconds per loop.
3. wecom        how long the bot takes to answer an encrypted 微信客服 callback (WeCom gives 5 s), and the
                resident's first message end to end (callback → kf/sync_msg → reply through kf/send_msg).

Writes the "Channels" section of docs/benchmarks.md (bench.run and bench.webhook keep it when they write theirs).
"""
from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from datetime import datetime
from typing import Any

from bench.run import DOCS, ROOT, Backend, Dist, PostgresBackend, SqliteBackend, load, write_section
from bot.clock import Clock
from bot.ratelimit import Rule, make_rate_limiter
from tests import test_e2e_loop as loop
from tests.fakes.telegram_sim import TgSim
from tests.fakes.wecom_bot import WecomBot
from tests.simclient import MONDAY_10AM_UTC

MARK = "<!-- bench.channels: everything below is written by `python -m bench.channels` -->"
TEAMS = {"grp-xingfu-elderly": "t-xingfu-elderly", "grp-xingfu-children": "t-xingfu-children",
         "grp-guangming-hardship": "t-guangming-hardship"}


def _ms(d: Dist) -> str:
    return f"{d.p50:.0f} / {d.p95:.0f} ms"


async def bench_limiter(backend: Backend, calls: int = 3000) -> float:
    """Microseconds per reserve() with three rules (never limited: the windows are wide)."""
    lim = make_rate_limiter(backend.redis_url, Clock(frozen_at=MONDAY_10AM_UTC), backend.redis_prefix + "rate:")
    try:
        start = time.perf_counter()
        for i in range(calls):
            wait = await lim.reserve([Rule(f"tg:chat:{i}", 5, 1), Rule(f"tg:group:{i % 50}", 10**6, 60),
                                      Rule("tg:global", 10**6, 1)])
            assert wait == 0.0
        return (time.perf_counter() - start) / calls * 1e6
    finally:
        await lim.aclose()  # type: ignore[attr-defined]


async def bench_telegram(backend: Backend, mode: str, loops: int) -> Dist:
    """Seconds per whole loop on Telegram."""
    await backend.fresh()
    sim = await TgSim.create(backend, mode)
    times: list[float] = []
    try:
        await sim.bootstrap("c-zhao")
        for group, team in TEAMS.items():
            await sim.bind(group, team)
        for case in loop.CASES.values():
            await sim.link(case[4])
        for i in range(loops):
            category, service, community, group, volunteer = loop.CASES[sorted(loop.CASES)[i % len(loop.CASES)]]
            resident = f"r-tg{i:02d}"
            t0 = time.perf_counter()
            number = await sim.ask_for_help(resident, category, service, community)
            assert "接单成功" in (await sim.press(group, volunteer, "接单", contains=number) or "")
            await sim.press(volunteer, volunteer, "出发", contains=number)
            await sim.advance(60)
            await sim.press(volunteer, volunteer, "完成服务", contains=number)
            assert "5" in (await sim.press(resident, resident, "⭐⭐⭐⭐⭐") or "")
            times.append(time.perf_counter() - t0)
    finally:
        await sim.close()
    return Dist.of(times)


async def bench_wecom(backend: Backend, residents: int) -> tuple[Dist, Dist]:
    """(time to answer a kf callback, time until the resident's first reply was sent)."""
    await backend.fresh()
    bot = await WecomBot.create(backend.database_url, backend.redis_url, backend.redis_prefix)
    answer: list[float] = []
    total: list[float] = []
    try:
        for i in range(residents):
            t0 = time.perf_counter()
            statuses = await bot.fake.resident_says(f"wm-bench{i:03d}", "你好")
            answer.append(time.perf_counter() - t0)
            assert statuses == [200]
            await bot.settle()
            total.append(time.perf_counter() - t0)
            assert bot.fake.kf_texts(f"wm-bench{i:03d}"), "the resident got no reply"
    finally:
        await bot.app.stop()
        await bot.fake.close()
    return Dist.of(answer), Dist.of(total)


async def run(backend: Backend, loops: int) -> list[str]:
    """One backend's rows: (what, result)."""
    label = "SQLite" if backend.name == "sqlite" else "PostgreSQL + Redis"
    rows = [f"| limiter `reserve()` (3 rules) | {label} | {await bench_limiter(backend):.0f} µs per call |"]
    for mode in ("polling", "webhook"):
        d = await bench_telegram(backend, mode, loops)
        rows.append(f"| Telegram whole loop, {mode} | {label} | {_ms(d)} per loop ({loops} loops) |")
    answer, total = await bench_wecom(backend, 3 * loops)
    rows.append(f"| WeCom kf callback answered | {label} | {_ms(answer)} ({3 * loops} callbacks) |")
    rows.append(f"| WeCom kf message → bot's reply sent | {label} | {_ms(total)} |")
    print("\n".join(rows), flush=True)
    return rows


def write_docs(rows: list[str], argv: list[str]) -> None:
    """Replace the Channels section of docs/benchmarks.md."""
    when = datetime.now().astimezone()
    body = ["## Channels", "",
            f"Generated by `{' '.join(['.venv/bin/python -m bench.channels', *argv])}`" +
            f" on {when:%Y-%m-%d %H:%M %Z} (load average {load()}). The real adapters talk to the local fake "
            "servers of `tests/fakes/` on 127.0.0.1, with the same frozen clock as the tests; see the module "
            "docstring for what each row does. Times are wall-clock p50 / p95 (nearest rank) on this shared "
            "2-core machine, so they vary by about ±30 % between runs.", "",
            "| what | backend | result |", "|---|---|---|", *rows, "",
            "The limiter row on SQLite is the in-process limiter (one worker); with Redis each call is one Lua "
            "script round trip, shared by every worker. A Telegram loop makes the same steps as the simulator's "
            "full loop above, plus HTTP round trips through python-telegram-bot to the fake server and back. "
            "The kf callback is answered long before WeCom's 5-second deadline because the work (sync_msg, the "
            "flow, the reply) runs after the answer."]
    write_section(MARK, body)


async def amain(args: argparse.Namespace) -> int:
    rows: list[str] = []
    for name in (["sqlite", "postgres"] if args.backend == "both" else [args.backend]):
        backend: Any = SqliteBackend() if name == "sqlite" else await PostgresBackend.connect()
        if isinstance(backend, str):
            print(f"[postgres] SKIPPED: {backend}", file=sys.stderr)
            continue
        try:
            rows += await run(backend, args.loops)
        finally:
            await backend.close()
    if rows and not args.no_docs:
        write_docs(rows, args.argv)
        print(f"wrote {DOCS.relative_to(ROOT)}")
    return 0 if rows else 2


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.channels", description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--loops", type=int, default=5, help="Telegram loops per mode (kf callbacks: 3x)")
    parser.add_argument("--no-docs", action="store_true", help="do not write docs/benchmarks.md")
    argv = sys.argv[1:] if argv is None else argv
    args = parser.parse_args(argv)
    args.argv = argv
    os.chdir(ROOT)  # demo_config reads config.yaml from the working directory
    return asyncio.run(amain(args))


if __name__ == "__main__":
    sys.exit(main())
