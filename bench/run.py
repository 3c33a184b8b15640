"""Benchmark the real bot through the simulator's HTTP API, on SQLite and on PostgreSQL + Redis.

    .venv/bin/python -m bench.run [--backend sqlite|postgres|both] [--quick] [--no-docs] [--profile FILE]

Three scenarios, each on a fresh database with the shipped demo config and a frozen clock
(Monday 10:00 Asia/Shanghai), the bot started in-process by tests.simclient.Sim:

1. intake      N residents walk the whole intake form (Sim.ask_for_help), C at a time; every HTTP call
               is timed client-side.
2. claim race  50 volunteers press 接单 on the same group card at once, repeated R times; exactly one
               must win each time, else the benchmark aborts (numbers of a broken system are worthless).
3. full loop   intake → claim → start → (clock +60 min) → finish → rate, L times, one after another.

Prints a table and (unless --no-docs) overwrites docs/benchmarks.md with the results.
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import importlib.metadata
import math
import os
import platform
import pstats
import re
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg
import redis.asyncio as aioredis
from sqlalchemy.engine import make_url

from bot.clock import Clock
from storage.models import Claim, HelpRequest, Rating
from tests.simclient import (
    CROWD,
    MONDAY_10AM_UTC,
    Sim,
    add_crowd,
    count_rows,
    delete_redis_keys,
    demo_config,
)

# Same defaults and advisory lock as tests/conftest.py, so a benchmark never resets the schema under
# a running test (and vice versa): whoever comes second waits.
PG_URL = os.environ.get("WUWEI_TEST_PG_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("WUWEI_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
PG_TEST_LOCK_ID = 0x77757765  # "wuwe", as in tests/conftest.py
CHECK_TIMEOUT = 2.0

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs" / "benchmarks.md"
COMMAND = ".venv/bin/python -m bench.run"
SECTION_MARK = "<!-- bench."  # each other script's section starts with "<!-- bench.NAME: ... -->"

# (category button, service button, community button, team group, a member on duty Monday 10:00–12:00)
CASES = [
    ("为老服务", "陪同就医", "幸福社区", "grp-xingfu-elderly", "v-liming"),
    ("为小服务", "课业辅导", "幸福社区", "grp-xingfu-children", "v-wangfang"),
    ("困难帮扶", "生活帮扶", "光明社区", "grp-guangming-hardship", "v-zhaolei"),
]
RACE_GROUP = "grp-xingfu-elderly"


@dataclass
class Sizes:
    """How much work each scenario does."""

    residents: int = 20
    concurrency: int = 5
    race_rounds: int = 10
    loops: int = 10

    @classmethod
    def quick(cls) -> Sizes:
        return cls(residents=10, concurrency=5, race_rounds=3, loops=3)


class BenchError(RuntimeError):
    """The system misbehaved: the benchmark stops rather than report numbers for a broken system."""


# ---- timing ------------------------------------------------------------------------------------------

@dataclass
class Call:
    """One HTTP call to the bot, timed client-side with perf_counter."""

    kind: str  # send | press | clock | read
    start: float
    end: float

    @property
    def seconds(self) -> float:
        return self.end - self.start


_KINDS = {"/sim/api/send": "send", "/sim/api/press": "press", "/sim/api/clock": "clock"}


@dataclass
class TimedSim(Sim):
    """tests.simclient.Sim with every HTTP call it makes timed (Sim itself is not changed)."""

    calls: list[Call] = field(default_factory=list)
    recording: bool = True

    async def post(self, path: str, body: Any, expect: int = 200) -> Any:
        start = time.perf_counter()
        out = await super().post(path, body, expect)
        self._record(_KINDS.get(path, path), start)
        return out

    async def messages(self, chat_id: str) -> list[dict[str, Any]]:
        start = time.perf_counter()
        out = await super().messages(chat_id)
        self._record("read", start)
        return out

    def _record(self, kind: str, start: float) -> None:
        if self.recording:
            self.calls.append(Call(kind, start, time.perf_counter()))


def pct(values: list[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100) of a non-empty list."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


@dataclass
class Dist:
    """p50/p95/max of a list of durations, in milliseconds."""

    n: int
    p50: float
    p95: float
    max: float

    @classmethod
    def of(cls, seconds: list[float]) -> Dist:
        ms = [s * 1000 for s in seconds]
        return cls(len(ms), pct(ms, 50), pct(ms, 95), max(ms))


# ---- backends ----------------------------------------------------------------------------------------

def _asyncpg_dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


class Backend:
    """Where the bot's data lives; `fresh()` empties it before each scenario."""

    name: str
    database_url: str
    redis_url: str | None = None
    redis_prefix: str = "wuwei:"

    async def fresh(self) -> None:
        raise NotImplementedError

    async def close(self) -> None:
        """Release what the backend holds."""


class SqliteBackend(Backend):
    """A new SQLite file per scenario in a temporary directory; locks are in-process."""

    name = "sqlite"

    def __init__(self) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="wuwei-bench-")
        self._n = 0
        self.database_url = ""

    async def fresh(self) -> None:
        self._n += 1
        self.database_url = f"sqlite+aiosqlite:///{self._dir.name}/bench{self._n}.db"

    async def close(self) -> None:
        self._dir.cleanup()


class PostgresBackend(Backend):
    """The `test` database (public schema dropped and recreated per scenario) plus Redis (rate limits)."""

    name = "postgres"

    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn  # holds the advisory lock shared with the test suite
        self.database_url = PG_URL
        self.redis_url = REDIS_URL
        self.redis_prefix = f"wuwei-bench:{uuid.uuid4().hex}:"

    @classmethod
    async def connect(cls) -> PostgresBackend | str:
        """The backend, or why PostgreSQL/Redis cannot be used."""
        problems = []
        conn = None
        try:
            conn = await asyncpg.connect(_asyncpg_dsn(PG_URL), timeout=CHECK_TIMEOUT)
        except Exception as exc:  # refused, timeout, auth, no such database: all mean unusable
            problems.append(f"PostgreSQL ({type(exc).__name__}: {exc})")
        client = aioredis.Redis.from_url(REDIS_URL, socket_connect_timeout=CHECK_TIMEOUT,
                                         socket_timeout=CHECK_TIMEOUT)
        try:
            await client.ping()
        except Exception as exc:
            problems.append(f"Redis ({type(exc).__name__}: {exc})")
        finally:
            await client.aclose()
        if problems or conn is None:
            if conn is not None:
                await conn.close()
            where = f"{make_url(PG_URL).render_as_string()} and {REDIS_URL}"
            return f"not reachable at {where}: {'; '.join(problems)}"
        if not await conn.fetchval("SELECT pg_try_advisory_lock($1)", PG_TEST_LOCK_ID):
            print("  waiting for the test database lock (a test run is using it) ...", flush=True)
            await conn.execute("SELECT pg_advisory_lock($1)", PG_TEST_LOCK_ID)
        return cls(conn)

    async def fresh(self) -> None:
        await self._conn.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public;")
        await self._clean_redis()

    async def _clean_redis(self) -> None:
        await delete_redis_keys(REDIS_URL, self.redis_prefix)

    async def close(self) -> None:
        try:
            await self._clean_redis()
        finally:
            await self._conn.close()  # also releases the advisory lock

    async def versions(self) -> tuple[str, str]:
        pg = await self._conn.fetchval("SHOW server_version")
        client = aioredis.Redis.from_url(REDIS_URL)
        try:
            info = await client.info("server")
        finally:
            await client.aclose()
        return str(pg), str(info.get("redis_version", "?"))


@contextlib.asynccontextmanager
async def bot(backend: Backend, mutate: Callable[[dict[str, Any]], None] | None = None) -> AsyncIterator[TimedSim]:
    """A running bot on a fresh, migrated database (start-up is not measured)."""
    await backend.fresh()
    cfg = demo_config(backend.database_url, backend.redis_url, mutate)
    sim = TimedSim(cfg, Clock(frozen_at=MONDAY_10AM_UTC), redis_prefix=backend.redis_prefix)
    await sim.start()
    sim.calls.clear()
    try:
        yield sim
    finally:
        sim.recording = False
        await sim.close()  # also checks that no group chat shows a phone or an address


# ---- scenarios ---------------------------------------------------------------------------------------

@dataclass
class IntakeResult:
    residents: int
    concurrency: int
    wall: float
    cpu: float  # CPU seconds of this process (client + bot, all threads) / wall seconds
    per_kind: dict[str, Dist]

    @property
    def rate(self) -> float:
        return self.residents / self.wall


async def bench_intake(backend: Backend, sizes: Sizes) -> IntakeResult:
    async with bot(backend) as sim:
        gate = asyncio.Semaphore(sizes.concurrency)

        async def one(i: int) -> str:
            category, service, community, _, _ = CASES[i % len(CASES)]
            async with gate:
                return await sim.ask_for_help(f"r-bench{i:03d}", category, service, community)

        start, cpu = time.perf_counter(), time.process_time()
        numbers = await asyncio.gather(*(one(i) for i in range(sizes.residents)))
        wall, cpu = time.perf_counter() - start, time.process_time() - cpu
        calls = list(sim.calls)
        if len(set(numbers)) != sizes.residents:
            raise BenchError(f"intake: {sizes.residents} residents got {len(set(numbers))} distinct numbers")
        stored = await count_rows(sim.cfg.storage.database_url, HelpRequest)
        if stored != sizes.residents:
            raise BenchError(f"intake: {sizes.residents} residents submitted, {stored} requests stored")
    per_kind = {k: Dist.of([c.seconds for c in calls if c.kind == k]) for k in ("send", "press", "read")}
    per_kind["all"] = Dist.of([c.seconds for c in calls])
    return IntakeResult(sizes.residents, sizes.concurrency, wall, cpu / wall, per_kind)


@dataclass
class RaceResult:
    rounds: int
    racers: int
    race: Dist  # first press sent → all answers received
    press: Dist  # each single press, all rounds
    cpu: float  # CPU seconds of this process / wall seconds, during the races


async def bench_race(backend: Backend, sizes: Sizes) -> RaceResult:
    races: list[float] = []
    presses: list[float] = []
    cpu = wall = 0.0
    async with bot(backend, add_crowd) as sim:
        for i in range(sizes.race_rounds):
            number = await sim.ask_for_help(f"r-race{i:02d}", "为老服务", "陪同就医", "幸福社区")
            message_id, data = await sim.find_button(RACE_GROUP, "接单", contains=number)
            mark, t0, c0 = len(sim.calls), time.perf_counter(), time.process_time()
            answers = await asyncio.gather(*(sim.press_data(RACE_GROUP, v, message_id, data) for v in CROWD))
            wall, cpu = wall + time.perf_counter() - t0, cpu + time.process_time() - c0
            calls = [c for c in sim.calls[mark:] if c.kind == "press"]
            races.append(max(c.end for c in calls) - min(c.start for c in calls))
            presses += [c.seconds for c in calls]
            winners = [v for v, a in zip(CROWD, answers, strict=True) if a and "接单成功" in a]
            losers = [a for a in answers if a and "已经有人接了" in a]
            if len(winners) != 1 or len(losers) != len(CROWD) - 1:
                known = ("接单成功", "已经有人接了")
                odd = sorted({a or "(no answer)" for a in answers if not (a and any(k in a for k in known))})
                raise BenchError(f"claim race {i + 1} on {number}: {len(winners)} winners {winners}, "
                                 f"{len(losers)} told 'taken', other answers: {odd}")
        claims = await count_rows(sim.cfg.storage.database_url, Claim)
        if claims != sizes.race_rounds:
            raise BenchError(f"claim race: {sizes.race_rounds} races left {claims} claims in the database")
    return RaceResult(sizes.race_rounds, len(CROWD), Dist.of(races), Dist.of(presses), cpu / wall)


@dataclass
class LoopResult:
    loops: int
    wall: float
    loop: Dist
    claim: Dist  # the uncontended 接单 press of each loop: the baseline for the race
    cpu: float
    calls_per_loop: float

    @property
    def rate(self) -> float:
        return self.loops / self.wall


def _expect(step: str, answer: str | None, needle: str) -> None:
    if not answer or needle not in answer:
        raise BenchError(f"full loop: {step} answered {answer!r}, expected {needle!r}")


async def bench_loop(backend: Backend, sizes: Sizes) -> LoopResult:
    times: list[float] = []
    claims: list[float] = []
    async with bot(backend) as sim:
        start, cpu = time.perf_counter(), time.process_time()
        for i in range(sizes.loops):
            category, service, community, group, volunteer = CASES[i % len(CASES)]
            resident = f"r-loop{i:02d}"
            t0 = time.perf_counter()
            number = await sim.ask_for_help(resident, category, service, community)
            _expect("接单", await sim.press(group, volunteer, "接单", contains=number), "接单成功")
            claims.append(sim.calls[-1].seconds)
            _expect("出发", await sim.press(volunteer, volunteer, "出发", contains=number), "出发")
            await sim.advance(60)
            _expect("完成服务", await sim.press(volunteer, volunteer, "完成服务", contains=number), "")
            _expect("打分", await sim.press(resident, resident, "⭐⭐⭐⭐⭐"), "5")
            times.append(time.perf_counter() - t0)
        wall, cpu = time.perf_counter() - start, time.process_time() - cpu
        calls = len(sim.calls)
        rated = await count_rows(sim.cfg.storage.database_url, Rating)
        if rated != sizes.loops:
            raise BenchError(f"full loop: {sizes.loops} loops left {rated} ratings in the database")
    return LoopResult(sizes.loops, wall, Dist.of(times), Dist.of(claims), cpu / wall, calls / sizes.loops)


async def open_backend(name: str) -> tuple[Backend | None, str | None, tuple[str, str] | None]:
    """The backend named "sqlite" or "postgres": (backend, None, PostgreSQL versions or None), or, when
    PostgreSQL/Redis cannot be used, (None, why, None) after saying so on stderr."""
    if name == "sqlite":
        return SqliteBackend(), None, None
    got = await PostgresBackend.connect()
    if isinstance(got, str):
        print(f"[postgres] SKIPPED: PostgreSQL/Redis {got}", file=sys.stderr, flush=True)
        return None, got, None
    return got, None, await got.versions()


@dataclass
class BackendResult:
    name: str
    intake: IntakeResult
    race: RaceResult
    loop: LoopResult
    seconds: float


async def run_backend(backend: Backend, sizes: Sizes) -> BackendResult:
    start = time.perf_counter()
    print(f"[{backend.name}] intake: {sizes.residents} residents, {sizes.concurrency} at a time ...", flush=True)
    intake = await bench_intake(backend, sizes)
    print(f"[{backend.name}] claim race: {len(CROWD)} volunteers x {sizes.race_rounds} requests ...", flush=True)
    race = await bench_race(backend, sizes)
    print(f"[{backend.name}] full loop: {sizes.loops} requests one after another ...", flush=True)
    loop = await bench_loop(backend, sizes)
    return BackendResult(backend.name, intake, race, loop, time.perf_counter() - start)


# ---- report ------------------------------------------------------------------------------------------

def _ms(x: float) -> str:
    return f"{x:.0f}" if x >= 100 else f"{x:.1f}"


def results_table(r: BackendResult) -> str:
    i, c, lp = r.intake, r.race, r.loop
    rows = [
        ("intake", f"{i.residents} residents, {i.concurrency} at a time", "throughput",
         f"**{i.rate:.2f} requests/s** ({i.wall:.2f} s wall, process CPU {i.cpu:.0%} of wall)"),
    ]
    labels = {"send": "typed message (POST /send)", "press": "button press (POST /press)",
              "read": "read chat (GET /messages)", "all": "every HTTP call"}
    for kind in ("send", "press", "read", "all"):
        d = i.per_kind[kind]
        rows.append(("intake", f"{labels[kind]}, n={d.n}", "latency p50 / p95 / max",
                     f"{_ms(d.p50)} / {_ms(d.p95)} / {_ms(d.max)} ms"))
    rows += [
        ("claim race", f"{c.racers} presses at once x {c.rounds}, 1 winner each (verified)",
         "first press sent → all answered, p50 / p95 / max",
         f"**{_ms(c.race.p50)} / {_ms(c.race.p95)} / {_ms(c.race.max)} ms** (process CPU {c.cpu:.0%} of wall)"),
        ("claim race", f"single press, n={c.press.n}", "latency p50 / p95 / max",
         f"{_ms(c.press.p50)} / {_ms(c.press.p95)} / {_ms(c.press.max)} ms"),
        ("full loop", f"{lp.loops} x intake→claim→start→finish→rate, sequential, "
                      f"{lp.calls_per_loop:.0f} HTTP calls each", "throughput",
         f"**{lp.rate:.2f} loops/s** ({lp.wall:.2f} s wall, process CPU {lp.cpu:.0%} of wall)"),
        ("full loop", "one loop", "duration p50 / max", f"{_ms(lp.loop.p50)} / {_ms(lp.loop.max)} ms"),
        ("full loop", f"uncontended 接单 press, n={lp.claim.n}", "latency p50 / max",
         f"{_ms(lp.claim.p50)} / {_ms(lp.claim.max)} ms"),
    ]
    out = ["| scenario | what | metric | result |", "|---|---|---|---|"]
    out += [f"| {a} | {b} | {m} | {v} |" for a, b, m, v in rows]
    return "\n".join(out)


def comparison_table(results: list[BackendResult]) -> str:
    names = [r.name for r in results]
    rows = [
        ("intake requests/s", [f"{r.intake.rate:.2f}" for r in results]),
        ("intake HTTP call p50 / p95 ms", [f"{_ms(r.intake.per_kind['all'].p50)} / "
                                           f"{_ms(r.intake.per_kind['all'].p95)}" for r in results]),
        ("50-way claim race p50 / p95 ms", [f"{_ms(r.race.race.p50)} / {_ms(r.race.race.p95)}" for r in results]),
        ("full loops/s", [f"{r.loop.rate:.2f}" for r in results]),
        ("whole scenario set, s (incl. start-up)", [f"{r.seconds:.1f}" for r in results]),
    ]
    out = ["| | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    out += [f"| {label} | " + " | ".join(vals) + " |" for label, vals in rows]
    return "\n".join(out)


def _version(pkg: str) -> str:
    try:
        return importlib.metadata.version(pkg)
    except importlib.metadata.PackageNotFoundError:
        return "?"


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "?"


def _git() -> str:
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=ROOT, capture_output=True, text=True,
                               check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "?"
    return head + (" plus uncommitted changes in the working tree" if dirty else "")


def load() -> str:
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())


def machine(pg_versions: tuple[str, str] | None) -> list[tuple[str, str]]:
    return [
        ("CPUs (`nproc`)", str(len(os.sched_getaffinity(0)))),
        ("CPU", _cpu_model()),
        ("OS", platform.platform()),
        ("Python", platform.python_version()),
        ("SQLite (library used by aiosqlite)", sqlite3.sqlite_version),
        ("PostgreSQL server", pg_versions[0] if pg_versions else "not used"),
        ("Redis server", pg_versions[1] if pg_versions else "not used"),
        ("SQLAlchemy / aiosqlite / asyncpg / redis-py / aiohttp",
         " / ".join(_version(p) for p in ("SQLAlchemy", "aiosqlite", "asyncpg", "redis", "aiohttp"))),
        ("code", f"git {_git()}"),
    ]


INTERPRETATION = """\
Where the time goes (from the code, SQLAlchemy engine events counting transactions and statements,
and cProfile / py-spy runs):

* **The bot is CPU-bound in Python, not waiting on the database.** Client and bot share one process
  and one event loop, and that process is busy for most of the wall time ("process CPU … of wall"
  above). SQLAlchemy (statement compilation, cache keys, ORM state) is the biggest block of own time
  (about a third), then the event loop, the drivers and aiohttp; the project's own functions are a few
  percent. Every number here includes the client's CPU time too, so treat them as a relative measure
  for comparing versions of this code on this machine, not as capacity.
* **An event is one write transaction, then its messages go from memory.** The handler's transaction
  (dedupe row, conversation lock, state, the event's outbox rows in one INSERT) commits; rows for chats
  with nothing else waiting are written leased to the worker and sent right after the commit
  (`Outbox.deliver_now`), their sent marks written in batches. A refresh renders every copy of a
  request in one read-only transaction and edits only the copies whose content changed (a hash per copy
  in the message ledger). A press on a card someone already has is answered from a read, with no write.
* **SQLite has one writer.** `storage.db.Database.transaction()` queues this process's write
  transactions on one `asyncio.Lock` and opens them with `BEGIN IMMEDIATE`; reads
  (`Database.read()`) take no lock and run beside the writer (WAL). Statements run inline on the event
  loop (`storage.db.InlineSqlite`); only a BEGIN IMMEDIATE that finds another connection's write lock and
  the COMMIT of a write (it syncs the WAL) go to aiosqlite's thread. Concurrent residents' events are
  written one after another, so tail latency grows with concurrency.
* **One claim wins a race on both backends.** The single conditional
  `UPDATE … WHERE status IN (…)` built from `flows/requests.py` TRANSITIONS (`storage.repo.transition`)
  decides it, not a lock. In each worker only the first 接单 press on a card runs it: the presses that
  arrive meanwhile wait for it (`Dispatcher.handle`, one lock per card) and are then answered from a
  read, with no write. PostgreSQL could run the transactions in parallel, but one Python process cannot
  feed it; that needs several worker processes (conversations are locked inside their transaction with
  `pg_advisory_xact_lock`, outbox rows are leased for 3 s and renewed every second).
* **The two backends are close, and which one wins changes from run to run.** SQLite pays the
  in-process write lock and a thread hop per committed write; PostgreSQL pays a network round trip
  per statement, with the PostgreSQL server and Redis competing with the bot for the same 2 cores.
  Differences below ~30 % are noise on this shared machine (see the load averages above).
* **Reading a chat gets slower as the chat grows.** `GET /sim/api/chats/{id}/messages` returns the
  whole chat, and `Sim.find_button` / `Sim.last` read it for every press, so team group chats that
  collect every card make later calls slower. That is a cost of the simulator and its test client,
  not of a real channel.
"""


def _observations(results: list[BackendResult]) -> list[str]:
    out = []
    by = {r.name: r for r in results}
    for r in results:
        alone = r.loop.claim.p50
        out.append(f"{r.name}: a 50-way claim race took {_ms(r.race.race.p50)} ms (p50), i.e. "
                   f"{_ms(r.race.race.p50 / r.race.racers)} ms per press amortised, against {_ms(alone)} ms for "
                   f"one uncontended winning 接单 press (loop scenario); each racer waited "
                   f"{_ms(r.race.press.p50)} ms (p50) for its answer.")
    if "sqlite" in by and "postgres" in by:
        s, p = by["sqlite"], by["postgres"]
        out.append(f"PostgreSQL+Redis vs SQLite: intake {p.intake.rate / s.intake.rate:.2f}×, claim race p50 "
                   f"{p.race.race.p50 / s.race.race.p50:.2f}× the time, full loop {p.loop.rate / s.loop.rate:.2f}× "
                   f"the throughput.")
    return out


def write_docs(results: list[BackendResult], skipped: dict[str, str], sizes: Sizes, quick: bool,
               pg_versions: tuple[str, str] | None, argv: list[str], when: datetime, loads: tuple[str, str]) -> None:
    cmd = " ".join([COMMAND, *argv])
    lines = [
        "# Benchmarks",
        "",
        f"Generated by `{cmd}` on {when:%Y-%m-%d %H:%M %Z} — rerun it to refresh this page "
        "(it overwrites the file; `--no-docs` only prints).",
        "",
        "## What is measured, and how",
        "",
        "The real bot (`bot.app.App`) is started in-process on a free port by `tests.simclient.Sim` and driven "
        "through the simulator channel's JSON API exactly as the end-to-end tests drive it. Each scenario gets a "
        "fresh database (SQLite: a new file in a temporary directory; PostgreSQL: the `public` schema of `test` "
        "dropped and recreated, Redis keys under a unique key prefix) with the shipped `config.yaml` and a "
        "frozen clock (Monday 10:00 Asia/Shanghai, so duty rosters apply). Start-up and migrations are not "
        "measured. Every HTTP call is timed on the client with `time.perf_counter` by a subclass of `Sim` "
        "(`bench.run.TimedSim`); a POST returns only after the bot has handled the event *and* delivered the "
        "messages it caused, so a call's latency is the whole server-side work for that event.",
        "",
        f"1. **Intake** — {sizes.residents} residents each walk the whole intake form with `Sim.ask_for_help` "
        f"(greeting, 5 button presses, date, address, phone, description, confirm: 11 POSTs plus the GETs the "
        f"client makes to find buttons and read the result), {sizes.concurrency} residents at a time. "
        "Throughput is submitted requests per second of wall time; latency percentiles are per HTTP call.",
        f"2. **Claim race** — a request is posted to 幸福社区's elderly team, to which 50 extra trained volunteers "
        f"are added (as in `tests/test_e2e_robust.py`); all 50 press 接单 on the same card at once "
        f"(`asyncio.gather`). Measured: from the first press sent to the last answer received. Repeated for "
        f"{sizes.race_rounds} requests; every round must have exactly one 接单成功 and 49 已经有人接了 answers, and "
        f"the database exactly one claim per request, or the benchmark aborts.",
        f"3. **Full loop** — {sizes.loops} requests one after another, each: intake → the on-duty volunteer "
        "presses 接单 in the team group → 出发 → clock +60 min (`/sim/api/clock`, fires due timers) → 完成服务 → "
        "the resident presses ⭐⭐⭐⭐⭐. Every answer is checked. Throughput is loops per second of wall time.",
        "",
        "Percentiles are nearest-rank, so with fewer than 20 samples (the races, the loops) p95 is the maximum.",
        "",
        "## Machine",
        "",
        "| | |",
        "|---|---|",
        *[f"| {k} | {v} |" for k, v in machine(pg_versions)],
        f"| date | {when:%Y-%m-%d %H:%M %Z} |",
        f"| load average (1, 5, 15 min) | before the run {loads[0]}; after {loads[1]} (other people's jobs share "
        "this machine) |",
        f"| run | `{cmd}`{' (quick sizes)' if quick else ''} |",
        "",
        "## Results",
        "",
    ]
    for r in results:
        title = "SQLite (temp file, in-process locks)" if r.name == "sqlite" else "PostgreSQL + Redis"
        lines += [f"### {title}", "", results_table(r), ""]
    for name, why in skipped.items():
        lines += [f"### {name}", "", f"Skipped: {why}.", ""]
    if len(results) > 1:
        lines += ["### Side by side", "", comparison_table(results), ""]
    lines += ["## Interpretation", "", *[f"* {o}" for o in _observations(results)], "", INTERPRETATION]
    DOCS.parent.mkdir(parents=True, exist_ok=True)
    # keep the sections other scripts (bench.crisis, bench.channels, bench.webhook …) write below their markers
    old = DOCS.read_text(encoding="utf-8") if DOCS.exists() else ""
    tail = old[old.index(SECTION_MARK):] if SECTION_MARK in old else ""
    DOCS.write_text("\n".join(lines).rstrip() + "\n" + ("\n" + tail if tail else ""), encoding="utf-8")


def write_section(mark: str, lines: list[str], docs: Path = DOCS) -> None:
    """Put one script's section of docs/benchmarks.md (`mark`, a "<!-- bench.NAME: ... -->" line, then
    `lines`) in place of its previous one, which ends where the next script's marker starts; at the end
    of the page if it has none yet. The other sections are kept as they are."""
    key = mark.split(":")[0] + ":"
    old = docs.read_text(encoding="utf-8") if docs.exists() else "# Benchmarks\n"
    body = mark + "\n\n" + "\n".join(lines).strip() + "\n"
    if key in old:
        start = old.index(key)
        end = old.find(SECTION_MARK, start + len(key))
        new = old[:start] + body + ("" if end < 0 else "\n" + old[end:])
    else:
        new = old.rstrip() + "\n\n" + body
    docs.parent.mkdir(parents=True, exist_ok=True)
    docs.write_text(new, encoding="utf-8")


# ---- main --------------------------------------------------------------------------------------------

async def amain(args: argparse.Namespace) -> int:
    sizes = Sizes.quick() if args.quick else Sizes()
    wanted = ["sqlite", "postgres"] if args.backend == "both" else [args.backend]
    results: list[BackendResult] = []
    skipped: dict[str, str] = {}
    pg_versions: tuple[str, str] | None = None
    when = datetime.now().astimezone()
    load_before = load()
    start = time.perf_counter()
    for name in wanted:
        backend, why, versions = await open_backend(name)
        if backend is None:
            skipped["PostgreSQL + Redis"] = why or ""
            continue
        pg_versions = versions or pg_versions
        try:
            results.append(await run_backend(backend, sizes))
        finally:
            await backend.close()
    if not results:
        print("nothing was measured", file=sys.stderr)
        return 2
    for r in results:
        print(f"\n## {r.name}\n\n{results_table(r)}")
    if len(results) > 1:
        print(f"\n## side by side\n\n{comparison_table(results)}")
    print()
    for o in _observations(results):
        print(f"* {o}")
    print(f"\ntotal {time.perf_counter() - start:.1f} s")
    if not args.no_docs:
        write_docs(results, skipped, sizes, args.quick, pg_versions, args.argv, when, (load_before, load()))
        print(f"wrote {DOCS.relative_to(ROOT)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--quick", action="store_true", help="smaller sizes (a smoke run, ~4x faster)")
    parser.add_argument("--no-docs", action="store_true", help=f"do not overwrite {DOCS.relative_to(ROOT)}")
    parser.add_argument("--profile", metavar="FILE", help="run under cProfile, save stats to FILE, print the top")
    argv = sys.argv[1:] if argv is None else argv
    args = parser.parse_args(argv)
    args.argv = argv
    os.chdir(ROOT)  # demo_config reads config.yaml from the working directory
    try:
        if not args.profile:
            return asyncio.run(amain(args))
        prof = cProfile.Profile()
        try:
            return prof.runcall(asyncio.run, amain(args))
        finally:
            prof.dump_stats(args.profile)
            pstats.Stats(prof).strip_dirs().sort_stats("tottime").print_stats(25)
            project = "|".join(re.escape(str(ROOT / d)) for d in ("bot", "handlers", "flows", "storage"))
            pstats.Stats(prof).sort_stats("cumulative").print_stats(project, 40)
    except (BenchError, AssertionError) as exc:
        print(f"\nBENCHMARK ABORTED: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
