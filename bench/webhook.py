"""Telegram webhook throughput: wuwei against a python-telegram-bot anchor and a bare aiohttp handler.

    .venv/bin/python -m bench.webhook [--backend sqlite|postgres|both] [--seconds N] [--rounds 3] [--docs]

Every target is its own process on 127.0.0.1, started fresh for each round and replying to an instant
stub Bot API (bench.tg_stub, in this process, no flood limits) that counts sendMessage per chat:

* bot-sqlite / bot-postgres  `wuwei run` in Telegram webhook mode (simulator off, `rate_limits: false`,
  as the anchor has none) on a fresh SQLite file, or on PostgreSQL `test` (schema public dropped and
  recreated) with Redis (its own database number, WUWEI_BENCH_REDIS_URL). Each update goes verify →
  parse → into the inbox (the updates of a moment in one INSERT and one commit) → 200; then, from memory:
  dedupe → flow → one commit (with the reply in the outbox); the outbox delivers the reply.
* anchor  bench.ptb_anchor: a PTB Application with a ConversationHandler on the same route and secret;
  the webhook puts the update on PTB's queue and answers 200, PTB replies one update at a time.
* bare  an aiohttp handler that reads the body and answers 200 (the ceiling of the HTTP stack).

Load: wrk (`-t2 -c32`, a Lua script; `--load client` is a small aiohttp client for machines without wrk)
POSTs Telegram updates with the secret header, each a new user in a private chat saying 你好, so every
update is a new conversation. Rounds are interleaved (bots, anchor, bare; again …). Before each load one
probe update tells how many messages a new user's 你好 gets (and warms the target up); after it the
script waits (bounded by --drain) until every reply is out, then checks each accepted update (bot: the
dedupe rows committed; anchor: the updates queued) got exactly that many sendMessage calls.
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

import aiohttp
import yaml
from aiohttp import web
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from bench.run import ROOT, BenchError, PostgresBackend, _git, _version, load, pct, write_section
from bench.tg_stub import StubBotApi
from tests.simclient import delete_redis_keys

TOKEN = "7712345678:AAF4k3-bench_token_only_0123456789abcd"
SECRET = "bench-webhook-secret_0123456789"
PATH = "/telegram/webhook"
PUBLIC_URL = "https://bot.example.org/telegram/webhook"  # what setWebhook registers; the stub never calls it
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
BENCH_REDIS_URL = os.environ.get("WUWEI_BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")
REDIS_PREFIX = "wuwei:"  # what `wuwei run` uses; only in the benchmark's own Redis database
MARK = "<!-- bench.webhook: everything below, up to the next bench marker, is written by " \
       "`python -m bench.webhook --docs` -->"
COMMAND = ".venv/bin/python -m bench.webhook"
# user / chat / update ids: each run gets its own block, each wrk thread its own part of it
ID_BASE, RUN_SPAN, THREAD_SPAN = 1_000_000_000, 100_000_000, 10_000_000
START_TIMEOUT = 90.0
PROBE_TIMEOUT = 30.0


def update_json(uid: int) -> dict[str, Any]:
    """A new user's 你好 in their private chat (the same body the Lua script builds)."""
    user = {"id": uid, "is_bot": False, "first_name": "居民", "language_code": "zh-hans"}
    return {"update_id": uid, "message": {"message_id": 1, "date": int(time.time()), "text": "你好", "from": user,
                                          "chat": {"id": uid, "type": "private", "first_name": "居民"}}}


# ---- load generators ---------------------------------------------------------------------------------

@dataclass
class Load:
    """What one load run measured (latencies in ms)."""

    requests: int  # responses received
    non2xx: int
    errors: int  # connect/read/write errors and timeouts
    seconds: float
    p50: float
    p90: float
    p99: float
    max: float

    @property
    def ok(self) -> int:
        return self.requests - self.non2xx

    @property
    def rate(self) -> float:
        """2xx responses per second."""
        return self.ok / self.seconds if self.seconds else 0.0


LUA = r"""
-- wuwei bench.webhook: every request a new user (update_id = user id = chat id) saying 你好
local threads = {}
function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end
function init(args)
  base = tonumber(args[1]) + tid * tonumber(args[4])
  secret = args[2]
  path = args[3]
  counter = 0
  headers = {["Content-Type"] = "application/json", ["X-Telegram-Bot-Api-Secret-Token"] = secret}
end
function request()
  counter = counter + 1
  local id = base + counter
  local body = string.format('{"update_id":%d,"message":{"message_id":1,"date":%d,"text":"你好",' ..
    '"from":{"id":%d,"is_bot":false,"first_name":"居民","language_code":"zh-hans"},' ..
    '"chat":{"id":%d,"type":"private","first_name":"居民"}}}', id, os.time(), id, id)
  return wrk.format("POST", path, headers, body)
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('WRKJSON {"requests":%d,"duration_us":%d,"non2xx":%d,"errors":%d,' ..
    '"p50":%d,"p90":%d,"p99":%d,"max":%d}\n', summary.requests, summary.duration, e.status,
    e.connect + e.read + e.write + e.timeout, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max))
end
"""


class LoadGen(Protocol):
    name: str

    async def run(self, url: str, base: int, seconds: float) -> Load:
        """POST new users' updates to `url` for `seconds`, ids from base + 1."""
        ...


class WrkLoad:
    """wrk with the Lua script above."""

    name = "wrk"

    def __init__(self, connections: int, threads: int, workdir: Path) -> None:
        self.connections, self.threads = connections, threads
        self.script = workdir / "webhook.lua"
        self.script.write_text(LUA, encoding="utf-8")

    async def run(self, url: str, base: int, seconds: float) -> Load:
        cmd = ["wrk", f"-t{self.threads}", f"-c{self.connections}", f"-d{max(1, round(seconds))}s", "--timeout", "30s",
               "-s", str(self.script), url, "--", str(base), SECRET, PATH, str(THREAD_SPAN)]
        proc = await asyncio.create_subprocess_exec(*cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            out, _ = await asyncio.wait_for(proc.communicate(), seconds + 60)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        lines = [ln for ln in out.decode(errors="replace").splitlines() if ln.startswith("WRKJSON ")]
        if proc.returncode != 0 or not lines:
            raise BenchError(f"wrk failed (exit {proc.returncode}):\n{out.decode(errors='replace')}")
        r = json.loads(lines[-1][len("WRKJSON "):])
        return Load(r["requests"], r["non2xx"], r["errors"], r["duration_us"] / 1e6,
                    r["p50"] / 1000, r["p90"] / 1000, r["p99"] / 1000, r["max"] / 1000)


class ClientLoad:
    """A small aiohttp client with `connections` workers (for the smoke test, or where wrk is missing).
    It shares this process's event loop with the stub, so it is slower than wrk: not for the record."""

    name = "aiohttp client"

    def __init__(self, connections: int) -> None:
        self.connections = connections

    async def run(self, url: str, base: int, seconds: float) -> Load:
        loop = asyncio.get_running_loop()
        ids = itertools.count(base + 1)
        latencies: list[float] = []
        counts = {"non2xx": 0, "errors": 0}
        headers = {SECRET_HEADER: SECRET, "Content-Type": "application/json"}
        deadline = loop.time() + seconds
        connector = aiohttp.TCPConnector(limit=self.connections)
        async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=30)) as http:
            async def worker() -> None:
                while loop.time() < deadline:
                    body = json.dumps(update_json(next(ids)), ensure_ascii=False).encode()
                    t0 = time.perf_counter()
                    try:
                        async with http.post(url, data=body, headers=headers) as r:
                            await r.read()
                            status = r.status
                    except (aiohttp.ClientError, OSError, TimeoutError):
                        counts["errors"] += 1
                        continue
                    latencies.append((time.perf_counter() - t0) * 1000)
                    counts["non2xx"] += not 200 <= status < 300

            start = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(self.connections)))
            wall = time.perf_counter() - start
        if not latencies:
            return Load(0, 0, counts["errors"], wall, 0, 0, 0, 0)
        return Load(len(latencies), counts["non2xx"], counts["errors"], wall, pct(latencies, 50), pct(latencies, 90),
                    pct(latencies, 99), max(latencies))


# ---- child processes ---------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all its threads) so far."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Child:
    """One server process in its own process group, its output in a log file; stopped by its id."""

    def __init__(self, name: str, cmd: list[str], log: Path, cwd: Path) -> None:
        self.name, self.cmd, self.log_path, self.cwd = name, cmd, log, cwd
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = self.log_path.open("ab")
        try:
            self.proc = subprocess.Popen(self.cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         cwd=self.cwd, start_new_session=True)
        finally:
            log.close()

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    async def wait_ready(self, url: str) -> None:
        """Until GET url answers 200 (the process started and is listening)."""
        deadline = time.monotonic() + START_TIMEOUT
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as http:
            while True:
                if not self.alive():
                    raise BenchError(f"{self.name} exited while starting:\n{self.tail()}")
                try:
                    async with http.get(url) as r:
                        if r.status == 200:
                            return
                except (aiohttp.ClientError, OSError, TimeoutError):
                    pass
                if time.monotonic() > deadline:
                    raise BenchError(f"{self.name} did not start within {START_TIMEOUT:.0f} s:\n{self.tail()}")
                await asyncio.sleep(0.1)

    async def stop(self) -> None:
        """SIGTERM to its process group, SIGKILL after 15 s."""
        if self.proc is None or self.proc.poll() is not None:
            return
        pgid = self.proc.pid  # start_new_session: the group is the child's own
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGTERM)
        for _ in range(150):
            if self.proc.poll() is not None:
                return
            await asyncio.sleep(0.1)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)
        self.proc.wait(10)


def wuwei_command() -> list[str]:
    """This venv's `wuwei` console script (else the same CLI through this interpreter)."""
    script = Path(sys.executable).parent / "wuwei"
    return [str(script)] if script.exists() else [sys.executable, "-m", "bot"]


# ---- targets -----------------------------------------------------------------------------------------

class Target(Protocol):
    name: str
    label: str
    child: Child | None

    async def start(self, stub: StubBotApi, workdir: Path) -> str:
        """Start on a free port; the webhook URL."""
        ...

    async def accepted(self) -> int | None:
        """Updates this target took on (None: not tracked)."""
        ...

    async def busy(self) -> bool:
        """True while replies are still to be sent."""
        ...

    async def stop(self) -> None:
        ...


class PgDb:
    """The test database under the advisory lock shared with the test suite and bench.run."""

    def __init__(self, backend: PostgresBackend) -> None:
        self.backend = backend

    @classmethod
    async def connect(cls) -> PgDb | str:
        got = await PostgresBackend.connect()
        if isinstance(got, str):
            return got
        client = None
        try:
            import redis.asyncio as aioredis

            client = aioredis.Redis.from_url(BENCH_REDIS_URL, socket_connect_timeout=2.0)
            await client.ping()
        except Exception as exc:
            await got.close()
            return f"Redis at {BENCH_REDIS_URL} not reachable ({type(exc).__name__}: {exc})"
        finally:
            if client is not None:
                await client.aclose()
        return cls(got)

    async def fresh(self) -> None:
        await self.backend.fresh()  # DROP SCHEMA public CASCADE; CREATE SCHEMA public
        await delete_redis_keys(BENCH_REDIS_URL, REDIS_PREFIX)

    async def close(self) -> None:
        try:
            await delete_redis_keys(BENCH_REDIS_URL, REDIS_PREFIX)
        finally:
            await self.backend.close()


async def _scalar(database_url: str, sql: str) -> int:
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as conn:
            return int((await conn.execute(text(sql))).scalar_one())
    finally:
        await engine.dispose()


def bot_config(database_url: str, redis_url: str | None, port: int, api: str) -> dict[str, Any]:
    """The shipped config.yaml with the simulator off and Telegram on in webhook mode, limits off."""
    data = yaml.safe_load((ROOT / "config.yaml").read_text(encoding="utf-8"))
    data["simulator"] = {"enabled": False}
    for team in data["teams"]:
        team["groups"] = {}  # Telegram groups are bound with /bind
    data["storage"] = {"database_url": database_url, "redis_url": redis_url}
    data["http"] = {"host": "127.0.0.1", "port": port}
    data["channels"] = {"telegram": {"enabled": True, "token": TOKEN, "api_base_url": api, "mode": "webhook",
                                     "webhook_url": PUBLIC_URL, "webhook_secret": SECRET, "webhook_path": PATH,
                                     "rate_limits": False}}
    return data


class BotTarget:
    """`wuwei run` in webhook mode on a fresh database."""

    def __init__(self, backend: str, pg: PgDb | None) -> None:
        self.backend, self.pg = backend, pg
        self.name = f"bot-{backend}"
        self.label = "wuwei, SQLite" if backend == "sqlite" else "wuwei, PostgreSQL + Redis"
        self.child: Child | None = None
        self.database_url = ""
        self._n = 0

    async def start(self, stub: StubBotApi, workdir: Path) -> str:
        self._n += 1
        redis_url = None
        if self.pg is not None:
            await self.pg.fresh()
            self.database_url, redis_url = self.pg.backend.database_url, BENCH_REDIS_URL
        else:
            self.database_url = f"sqlite+aiosqlite:///{workdir}/{self.name}-{self._n}.db"
        port = free_port()
        cfg = workdir / f"{self.name}-{self._n}.yaml"
        cfg.write_text(yaml.safe_dump(bot_config(self.database_url, redis_url, port, stub.base_url),
                                      allow_unicode=True), encoding="utf-8")
        self.child = Child(self.name, [*wuwei_command(), "run", "--config", str(cfg)],
                           workdir / f"{self.name}-{self._n}.log", workdir)
        self.child.start()
        await self.child.wait_ready(f"http://127.0.0.1:{port}/healthz")
        return f"http://127.0.0.1:{port}{PATH}"

    async def accepted(self) -> int:
        """Updates committed (their dedupe rows)."""
        return await _scalar(self.database_url, "SELECT count(*) FROM processed_events WHERE channel = 'telegram'")

    async def busy(self) -> bool:
        return await _scalar(self.database_url, "SELECT count(*) FROM outbox WHERE status = 'pending'") > 0

    async def transactions(self) -> tuple[int, int] | None:
        """(committed, rolled back) transactions in the PostgreSQL database so far (None on SQLite).
        Counts reach pg_stat_database when a backend goes idle or exits, so this is approximate while the
        bot runs and exact once it stopped; the benchmark's own few queries are included."""
        if self.pg is None:
            return None
        conn = self.pg.backend._conn
        await conn.execute("SELECT pg_stat_clear_snapshot()")
        row = await conn.fetchrow("SELECT xact_commit, xact_rollback FROM pg_stat_database "
                                  "WHERE datname = current_database()")
        return int(row[0]), int(row[1])

    async def failed(self) -> int:
        return await _scalar(self.database_url, "SELECT count(*) FROM outbox WHERE status = 'failed'")

    async def stop(self) -> None:
        if self.child:
            await self.child.stop()


class AnchorTarget:
    """bench.ptb_anchor (python-telegram-bot, ConversationHandler)."""

    name = "anchor"
    label = "PTB ConversationHandler"

    def __init__(self) -> None:
        self.child: Child | None = None
        self._port = 0
        self._n = 0

    async def start(self, stub: StubBotApi, workdir: Path) -> str:
        self._n += 1
        self._port = free_port()
        self.child = Child(self.name, [sys.executable, "-m", "bench.ptb_anchor", "--port", str(self._port), "--api",
                                       stub.base_url, "--token", TOKEN, "--secret", SECRET, "--path", PATH],
                           workdir / f"anchor-{self._n}.log", ROOT)
        self.child.start()
        await self.child.wait_ready(f"http://127.0.0.1:{self._port}/healthz")
        return f"http://127.0.0.1:{self._port}{PATH}"

    async def _stats(self) -> dict[str, int]:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:
            async with http.get(f"http://127.0.0.1:{self._port}/stats") as r:
                return dict(await r.json())

    async def accepted(self) -> int:
        return (await self._stats())["accepted"]

    async def busy(self) -> bool:
        s = await self._stats()
        return s["queued"] > 0 or s["handled"] < s["accepted"]

    async def stop(self) -> None:
        if self.child:
            await self.child.stop()


class BareTarget:
    """An aiohttp handler that reads the body and answers 200."""

    name = "bare"
    label = "bare aiohttp handler"

    def __init__(self) -> None:
        self.child: Child | None = None
        self._n = 0

    async def start(self, stub: StubBotApi, workdir: Path) -> str:
        self._n += 1
        port = free_port()
        self.child = Child(self.name, [sys.executable, "-m", "bench.webhook", "--serve-bare", str(port)],
                           workdir / f"bare-{self._n}.log", ROOT)
        self.child.start()
        await self.child.wait_ready(f"http://127.0.0.1:{port}/healthz")
        return f"http://127.0.0.1:{port}{PATH}"

    async def accepted(self) -> None:
        return None

    async def busy(self) -> bool:
        return False

    async def stop(self) -> None:
        if self.child:
            await self.child.stop()


def serve_bare(port: int) -> int:
    """The bare handler's process (`--serve-bare PORT`)."""
    async def hook(request: web.Request) -> web.Response:
        await request.read()
        return web.Response()

    async def health(request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    app = web.Application()
    app.add_routes([web.post(PATH, hook), web.get("/healthz", health)])
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)
    return 0


# ---- one run -----------------------------------------------------------------------------------------

@dataclass
class Run:
    """One target under load for one round, and what reached the stub."""

    target: str
    round: int
    load: Load
    cpu: float  # the target process's CPU seconds per second of load (1.0 = one core busy)
    expected: int = 0  # sendMessage calls a new user's 你好 gets (from the probe); 0: no replies
    accepted: int | None = None  # updates taken on (bot: committed; anchor: queued), the probe excluded
    replies: int = 0  # sendMessage calls to the load's chats
    chats: int = 0  # chats that got any
    exact: int = 0  # chats that got exactly `expected`
    short: int = 0  # chats that got fewer
    extra: int = 0  # chats that got more (duplicates)
    drain: float = 0.0  # seconds after the load until every reply was out
    drained: bool = True
    failed: int = 0  # outbox rows given up (bot)
    tx_per_update: tuple[float, float] | None = None  # PostgreSQL (commits, rollbacks) per accepted update
    notes: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        """Every accepted update's reply delivered exactly once."""
        if self.accepted is None:
            return True
        return (self.drained and self.exact == self.accepted == self.chats and not self.short and not self.extra
                and not self.failed)

    def line(self) -> str:
        """One line for the console."""
        ld = self.load
        out = (f"{self.target}: {ld.rate:.1f} updates/s, p50 {ld.p50:.1f} ms, p99 {ld.p99:.1f} ms, non-2xx "
               f"{ld.non2xx}, errors {ld.errors}, CPU {self.cpu:.0%}")
        if self.accepted is not None:
            out += (f"; {self.expected} replies per update, exact {self.exact}/{self.accepted} accepted, extra "
                    f"{self.extra}, short {self.short}, drain {self.drain:.1f} s")
            out += "" if self.complete else "  ✗ INCOMPLETE"
        if self.tx_per_update is not None:
            out += (f"; per update ≈{self.tx_per_update[0]:.1f} PostgreSQL commits, "
                    f"{self.tx_per_update[1]:.1f} rollbacks")
        return out

    @property
    def delivered_rate(self) -> float:
        """Updates fully answered per second, from the load's start until the last reply was out."""
        return self.exact / (self.load.seconds + self.drain) if self.accepted is not None else self.load.rate


async def _until(check: Callable[[], Awaitable[bool]], timeout: float, step: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(step)
    return True


async def probe(target: Target, stub: StubBotApi, url: str, uid: int) -> int:
    """One new user's 你好 (also warms the target up): how many sendMessage calls it gets."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=PROBE_TIMEOUT)) as http:
        async with http.post(url, json=update_json(uid), headers={SECRET_HEADER: SECRET}) as r:
            if r.status != 200:
                raise BenchError(f"{target.name}: the probe update was answered {r.status}: {await r.text()}")
    if target.name == "bare":
        return 0

    async def replied() -> bool:
        return stub.sent[uid] > 0

    async def idle() -> bool:
        return not await target.busy()

    if not await _until(replied, PROBE_TIMEOUT):
        raise BenchError(f"{target.name}: no reply to a new user's 你好 within {PROBE_TIMEOUT:.0f} s")
    await _until(idle, PROBE_TIMEOUT)
    await asyncio.sleep(0.5)  # a second message would have followed by now
    return stub.sent[uid]


async def run_one(target: Target, rnd: int, stub: StubBotApi, loadgen: LoadGen, seconds: float, drain: float,
                  base: int, workdir: Path, profile: Path | None = None) -> Run:
    """Start the target, probe it, load it, wait for its replies, count them, stop it. With `profile`,
    py-spy samples the target process during the load into that file (collapsed stacks)."""
    stub.reset()
    url = await target.start(stub, workdir)
    tx0: tuple[int, int] | None = None
    try:
        assert target.child is not None
        expected = await probe(target, stub, url, base)
        if isinstance(target, BotTarget):
            tx0 = await target.transactions()
        cpu0 = cpu_seconds(target.child.pid)
        spy = await start_py_spy(target.child.pid, seconds, profile) if profile else None
        load_result = await loadgen.run(url, base, seconds)
        if spy is not None:
            await finish_py_spy(spy)
        run = Run(target.name, rnd, load_result, (cpu_seconds(target.child.pid) - cpu0) / load_result.seconds,
                  expected)
        if target.name == "bare":
            return run
        t0 = time.monotonic()
        last = -1

        async def settled() -> bool:  # nothing left to send and no update still arriving
            nonlocal last
            if await target.busy():
                return False
            now = await target.accepted()
            stable, last = now == last, now if now is not None else 0
            return stable

        run.drained = await _until(settled, drain, step=0.25)
        run.drain = time.monotonic() - t0
        accepted = await target.accepted()
        run.accepted = None if accepted is None else accepted - 1  # without the probe
        counts = [n for chat, n in stub.sent.items() if chat != base]
        run.replies, run.chats = sum(counts), len(counts)
        run.exact = sum(1 for n in counts if n == expected)
        run.short = sum(1 for n in counts if n < expected)
        run.extra = sum(1 for n in counts if n > expected)
        if isinstance(target, BotTarget):
            run.failed = await target.failed()
        if not run.drained:
            run.notes.append(f"replies still pending after {drain:.0f} s")
        if run.accepted is not None and run.accepted < load_result.ok:
            run.notes.append(f"fewer updates accepted ({run.accepted}) than 2xx answers ({load_result.ok})")
    finally:
        await target.stop()
    if isinstance(target, BotTarget) and tx0 is not None and run.accepted:
        tx1 = await target.transactions()  # after the stop: its backends have reported their counts
        if tx1 is not None:
            run.tx_per_update = ((tx1[0] - tx0[0]) / run.accepted, (tx1[1] - tx0[1]) / run.accepted)
    return run


# ---- profile -----------------------------------------------------------------------------------------

PROJECT = ("bot/", "handlers/", "flows/", "storage/")
LIBRARIES = (("sqlalchemy", "SQLAlchemy"), ("asyncpg", "asyncpg"), ("aiosqlite", "aiosqlite / sqlite3"),
             ("sqlite3", "aiosqlite / sqlite3"), ("redis", "redis-py"), ("telegram", "python-telegram-bot"),
             ("httpx", "httpx / httpcore"), ("httpcore", "httpx / httpcore"), ("h11", "httpx / httpcore"),
             ("aiohttp", "aiohttp"), ("pydantic", "pydantic"), ("asyncio", "asyncio"), ("json", "json"),
             ("logging", "logging"), ("alembic", "alembic"))


async def start_py_spy(pid: int, seconds: float, out: Path) -> asyncio.subprocess.Process:
    """py-spy sampling `pid` (not paused: --nonblocking) for `seconds`, collapsed stacks into `out`."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(spy).exists():
        raise BenchError("--profile needs py-spy (.venv/bin/pip install py-spy)")
    return await asyncio.create_subprocess_exec(
        spy, "record", "--pid", str(pid), "--duration", str(max(1, round(seconds))), "--rate", "100",
        "--nonblocking", "--gil", "--nolineno", "--format", "raw", "--output", str(out),
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


async def finish_py_spy(proc: asyncio.subprocess.Process) -> None:
    try:
        _, err = await asyncio.wait_for(proc.communicate(), 30)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        return
    if proc.returncode != 0:
        print(f"py-spy failed: {err.decode(errors='replace')[-500:]}", file=sys.stderr)


def _area(frame: str) -> str:
    """'function (path/file.py)' -> the library or project package it belongs to."""
    path = frame.rsplit("(", 1)[-1].rstrip(")")
    if path.startswith(PROJECT):
        return "wuwei (" + path.split("/")[0] + "/)"
    for prefix, name in LIBRARIES:
        if path.startswith(prefix + "/") or path.startswith(prefix + ".") or path == prefix:
            return name
    return "other: " + path.split("/")[0]


def profile_tables(path: Path, top: int = 10) -> list[str]:
    """Markdown: own time by function and by library, and time inside wuwei's functions (inclusive),
    from py-spy's collapsed stacks (every sample of every non-idle thread)."""
    own: Counter[str] = Counter()
    area: Counter[str] = Counter()
    inside: Counter[str] = Counter()
    total = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n, frames = int(count), stack.split(";")
        total += n
        own[frames[-1]] += n
        area[_area(frames[-1])] += n
        for frame in {f for f in frames if f.rsplit("(", 1)[-1].startswith(PROJECT)}:
            inside[frame] += n
    if not total:
        return ["(py-spy recorded no samples)"]

    def table(title: str, counts: Counter[str]) -> list[str]:
        rows = [f"| `{k}` | {v / total:.1%} |" for k, v in counts.most_common(top)]
        return [f"| {title} | share of samples |", "|---|---|", *rows, ""]

    return [f"{total} samples.", "", *table("own time: function (file)", own), *table("own time: library", area),
            *table("inside wuwei's function (inclusive; a lower bound: frames run in SQLAlchemy's greenlets "
                   "lose their callers)", inside)]


# ---- report ------------------------------------------------------------------------------------------

def _med(values: list[float]) -> float:
    return statistics.median(values) if values else 0.0


def _num(x: float) -> str:
    return f"{x:,.0f}" if x >= 100 else f"{x:.1f}" if x >= 10 else f"{x:.2f}"


@dataclass
class Report:
    runs: list[Run]
    targets: list[tuple[str, str]]  # (name, label) in order
    seconds: float
    rounds: int
    loadgen: str
    connections: int
    skipped: dict[str, str] = field(default_factory=dict)
    profiles: dict[str, Path] = field(default_factory=dict)  # target -> py-spy's collapsed stacks

    def of(self, name: str) -> list[Run]:
        return [r for r in self.runs if r.target == name]

    def median_rate(self, name: str) -> float:
        return _med([r.load.rate for r in self.of(name)])

    def ratio(self, bot: str) -> float | None:
        anchor = self.median_rate("anchor")
        return self.median_rate(bot) / anchor if anchor and self.of(bot) else None

    def median_e2e(self, name: str) -> float:
        return _med([r.delivered_rate for r in self.of(name)])

    def rounds_table(self) -> list[str]:
        out = ["| target | round | updates/s (2xx) | p50 / p99 / max ms | non-2xx, errors | target CPU "
               "| replies: exact / accepted (extra, short) | drain s | end-to-end updates/s |",
               "|---|---|---|---|---|---|---|---|---|"]
        for name, label in self.targets:
            for r in self.of(name):
                ld = r.load
                if r.accepted is None:
                    replies, drain, e2e = "n/a (no replies)", "–", "–"
                else:
                    replies = f"{r.exact} / {r.accepted} ({r.extra}, {r.short})" + ("" if r.complete else " ✗")
                    drain = f"{r.drain:.1f}" + ("" if r.drained else " (gave up)")
                    e2e = _num(r.delivered_rate)
                out.append(f"| {label} | {r.round} | {_num(ld.rate)} | {ld.p50:.1f} / {ld.p99:.1f} / {ld.max:.0f} | "
                           f"{ld.non2xx}, {ld.errors} | {r.cpu:.0%} | {replies} | {drain} | {e2e} |")
        return out

    def summary_table(self) -> list[str]:
        out = ["| target | median updates/s | median p50 / p99 ms | every reply exactly once | vs anchor "
               "| median end-to-end updates/s | end-to-end vs anchor |",
               "|---|---|---|---|---|---|---|"]
        for name, label in self.targets:
            runs = self.of(name)
            if not runs:
                continue
            once = "n/a" if runs[0].accepted is None else ("yes" if all(r.complete for r in runs) else "**no**")
            ratio = self.ratio(name) if name.startswith("bot-") else None
            vs = f"**{ratio:.3f}×**" if ratio is not None else "1×" if name == "anchor" else \
                f"{self.median_rate(name) / self.median_rate('anchor'):.1f}×" if self.median_rate("anchor") else "–"
            e2e = e2e_vs = "–"
            if runs[0].accepted is not None:
                e2e = _num(self.median_e2e(name))
                anchor_e2e = self.median_e2e("anchor")
                e2e_vs = f"{self.median_e2e(name) / anchor_e2e:.2f}×" if anchor_e2e and name != "anchor" else \
                    "1×" if name == "anchor" else "–"
            out.append(f"| {label} | **{_num(self.median_rate(name))}** | "
                       f"{_med([r.load.p50 for r in runs]):.1f} / {_med([r.load.p99 for r in runs]):.1f} | "
                       f"{once} | {vs} | {e2e} | {e2e_vs} |")
        return out

    def verdicts(self) -> list[str]:
        """The issue's target, per backend: ≥ 1.0× the anchor, every reply exactly once, p99 < 50 ms."""
        out = []
        tx = [r.tx_per_update for r in self.runs if r.tx_per_update is not None]
        if tx:
            out.append(f"wuwei on PostgreSQL, per update: ≈{_med([c for c, _ in tx]):.1f} committed and "
                       f"≈{_med([r for _, r in tx]):.1f} rolled-back transactions (medians of the rounds; "
                       "pg_stat_database before the load and after the bot stopped, so the outbox's work, the "
                       "scheduler's ticks and the benchmark's own polling are in; read-only transactions end in a "
                       "rollback)")
        for name, label in self.targets:
            ratio = self.ratio(name) if name.startswith("bot-") else None
            if ratio is None:
                continue
            p99 = _med([r.load.p99 for r in self.of(name)])
            once = all(r.complete for r in self.of(name))
            met = ratio >= 1.0 and once and p99 < 50
            out.append(f"{label}: {ratio:.3f}× the anchor's updates/s (target ≥ 1.0×), p99 {p99:.0f} ms "
                       f"(target < 50 ms), every reply exactly once: {'yes' if once else 'no'} → target "
                       f"{'met' if met else 'not met'}")
        return out


def print_report(rep: Report) -> None:
    print("\n" + "\n".join(rep.rounds_table()) + "\n\n" + "\n".join(rep.summary_table()) + "\n")
    for v in rep.verdicts():
        print(f"* {v}")
    for name, why in rep.skipped.items():
        print(f"* {name} skipped: {why}")
    for name, path in rep.profiles.items():
        print(f"\n## py-spy: {name} under load, an extra run ({path})\n\n" + "\n".join(profile_tables(path)))


def write_docs(rep: Report, argv: list[str], when: datetime, loads: tuple[str, str]) -> None:
    versions = " / ".join(_version(p) for p in ("python-telegram-bot", "aiohttp", "SQLAlchemy"))
    lines = [
        "## Telegram webhook throughput", "",
        f"Generated by `{' '.join([COMMAND, *argv])}` on {when:%Y-%m-%d %H:%M %Z}, code git {_git()}; load "
        f"average before {loads[0]}, after {loads[1]} (a shared 2-core machine: expect ±20 % between runs). "
        f"python-telegram-bot / aiohttp / SQLAlchemy {versions}.", "",
        f"{rep.loadgen} with {rep.connections} connections, {rep.rounds} interleaved round(s) of "
        f"{rep.seconds:.0f} s per target, each target a fresh process (the bot on a fresh database) on 127.0.0.1. "
        "Every request is a new user's 你好 in a private chat (distinct update, user and chat ids), so every "
        "update starts a new conversation. Every target replies to one instant stub Bot API (`bench/tg_stub.py`, "
        "no flood limits; the bot runs with `channels.telegram.rate_limits: false`, as the anchor has none), which "
        "counts sendMessage per chat. See `bench/webhook.py` for the details.", "",
        "* **wuwei** — `wuwei run`, Telegram in webhook mode, simulator off: secret checked → update parsed → "
        "written to the inbox (group commit) → 200; then handled from the inbox: deduplicated → flow → one commit "
        "(reply in the outbox); the outbox sends the reply. While updates are being taken on, handling waits for "
        "calm moments (bot/inbox.py), so most of the handling happens in the drain, as with the anchor. "
        "SQLite: a new file; PostgreSQL + Redis: the `test` database with a fresh schema, Redis locks in the "
        "benchmark's own database.",
        "* **anchor** — `bench/ptb_anchor.py`: python-telegram-bot's Application with a ConversationHandler "
        "(greet with a menu → ask → answer) on the same route and secret check; the webhook queues the update "
        "and answers 200 as PTB's own webhook server does, PTB handles the queue one update at a time (what its "
        "docs require for a ConversationHandler). No database: a crash loses what is queued.",
        "* **bare** — an aiohttp handler that reads the body and answers 200: the ceiling of the HTTP stack.", "",
        "*updates/s* counts 2xx answers during the load (wrk's own duration). *exact / accepted*: chats that got "
        "exactly the probe's number of sendMessage calls, against updates the target took on (wuwei: dedupe rows "
        "committed; anchor: updates queued) — it may exceed the 2xx count by the requests still in flight when "
        "wrk stopped; *extra* are duplicates. *drain*: seconds after the load until every reply was out; "
        "*end-to-end updates/s* = exact / (load + drain). *target CPU*: the target process's CPU seconds per "
        "second of load.", "",
        "### Summary", "", *rep.summary_table(), "",
        *[f"* {v}" for v in rep.verdicts()],
        *[f"* {name}: skipped ({why})" for name, why in rep.skipped.items()], "",
        "### Every round", "", *rep.rounds_table(), "",
    ]
    for name, path in rep.profiles.items():
        lines += [f"### Where {name}'s time goes", "",
                  f"py-spy (`--profile`) sampled the {name} process 100 times a second, without pausing it, "
                  "under the same load in one extra run after the rounds (not counted above); only samples of a "
                  "thread holding the GIL count (`--gil`: the Python work, which is what limits a process at "
                  "~100 % of a core).", "",
                  *profile_tables(path)]
    notes = [f"* {r.target} round {r.round}: {n}" for r in rep.runs for n in r.notes]
    if notes:
        lines += ["Notes:", "", *notes, ""]
    write_section(MARK, lines)


# ---- main --------------------------------------------------------------------------------------------

async def bench(args: argparse.Namespace) -> Report:
    names = [t.strip() for t in args.targets.split(",") if t.strip()]
    backends = ["sqlite", "postgres"] if args.backend == "both" else [args.backend]
    workdir = Path(tempfile.mkdtemp(prefix="wuwei-webhook-bench-"))
    loadgen: LoadGen
    if args.load == "wrk" or (args.load == "auto" and shutil.which("wrk")):
        if not shutil.which("wrk"):
            raise BenchError("wrk is not installed (apt-get install -y wrk), or use --load client")
        loadgen = WrkLoad(args.connections, args.threads, workdir)
    else:
        loadgen = ClientLoad(args.connections)
        print("note: using the aiohttp client as load generator (not wrk)", file=sys.stderr)
    stub = await StubBotApi().start()
    targets: list[Any] = []
    skipped: dict[str, str] = {}
    pg: PgDb | None = None
    runs: list[Run] = []
    profiles: dict[str, Path] = {}
    try:
        for backend in backends if "bot" in names else []:
            if backend == "postgres":
                got = await PgDb.connect()
                if isinstance(got, str):
                    skipped["wuwei, PostgreSQL + Redis"] = got
                    print(f"[postgres] SKIPPED: {got}", file=sys.stderr, flush=True)
                    continue
                pg = got
            targets.append(BotTarget(backend, pg if backend == "postgres" else None))
        targets += [AnchorTarget()] if "anchor" in names else []
        targets += [BareTarget()] if "bare" in names else []
        seq = itertools.count()
        for rnd in range(1, args.rounds + 1):
            for target in targets:
                base = ID_BASE + next(seq) * RUN_SPAN
                print(f"[round {rnd}] {target.name} ...", flush=True)
                run = await run_one(target, rnd, stub, loadgen, args.seconds, args.drain, base, workdir)
                print(f"[round {rnd}] {run.line()}", flush=True)
                runs.append(run)
        for target in targets if args.profile else []:  # an extra run each, not counted in the rounds
            if isinstance(target, BotTarget):
                profiles[target.name] = Path(args.profile).resolve() / f"{target.name}.txt"
                profiles[target.name].parent.mkdir(parents=True, exist_ok=True)
                print(f"[profile] {target.name} under py-spy ...", flush=True)
                run = await run_one(target, 0, stub, loadgen, args.seconds, args.drain, ID_BASE + next(seq) * RUN_SPAN,
                                    workdir, profiles[target.name])
                print(f"[profile] {run.line()}", flush=True)
    finally:
        for target in targets:
            await target.stop()
        await stub.close()
        if pg is not None:
            await pg.close()
        if args.keep:
            print(f"logs and configs kept in {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return Report(runs, [(t.name, t.label) for t in targets], args.seconds, args.rounds, loadgen.name,
                  args.connections, skipped, profiles)


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.webhook", description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--seconds", type=float, default=10.0, help="load per target and round (default 10)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--docs", action="store_true", help="write the section in docs/benchmarks.md")
    parser.add_argument("--targets", default="bot,anchor,bare", help="comma-separated: bot, anchor, bare")
    parser.add_argument("--load", choices=["auto", "wrk", "client"], default="auto",
                        help="load generator: wrk (auto: when installed) or a small aiohttp client")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--drain", type=float, default=180.0, help="max seconds to wait for replies after a load")
    parser.add_argument("--profile", metavar="DIR", help="after the rounds, one more run of each bot under py-spy "
                        "(not counted; collapsed stacks in DIR/bot-*.txt; tables printed and, with --docs, written)")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (configs, logs, SQLite files)")
    parser.add_argument("--serve-bare", type=int, metavar="PORT", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse(argv)
    if args.serve_bare:
        return serve_bare(args.serve_bare)
    os.chdir(ROOT)
    when, before = datetime.now().astimezone(), load()
    rep = asyncio.run(bench(args))
    print_report(rep)
    if args.docs and rep.runs:
        write_docs(rep, argv, when, (before, load()))
        print("wrote docs/benchmarks.md")
    return 0 if rep.runs and all(r.complete for r in rep.runs) else 1


if __name__ == "__main__":
    sys.exit(main())
