"""Faults under load: kill -9 of worker processes, a Redis outage and a PostgreSQL outage.

    .venv/bin/python -m bench.chaos [--kills 30] [--every 5] [--residents 20] [--outage 10]
                                    [--scenarios kill,redis,postgres] [--docs] [--json FILE]

Everything runs on servers of its own, never on the shared ones: a PostgreSQL 15 cluster made with
`initdb` in a temporary directory (port --pg-port, default 5433, 127.0.0.1 only, trust auth) and a
`redis-server` (port --redis-port, default 6380, no persistence). Each scenario gets a fresh database
and two real worker processes (`.venv/bin/wuwei run --config <tmp config>`, each on its own HTTP port,
simulator on), configured from the repository's config.yaml with every team member on duty around the
clock (one roster slot 00:00–23:59:59 every day) and `tick_seconds: 1`, on the real clock.

N simulated residents (--residents) run the whole loop again and again, concurrently, through the
simulator's JSON API: intake as `tests.simclient.Sim.ask_for_help` walks it, two members of the team
press 接单 on the group card at once (each through its own worker), the winner presses 出发 and 完成服务,
the resident presses ⭐⭐⭐⭐⭐ and 不用了. Every call goes to a live worker (a health check every 0.25 s,
as a load balancer would); on a connection error, a timeout or a 5xx the client sends the SAME call
with the SAME event_id again on the other worker after a short pause (0.2 s, 0.4 s, … at most 1 s;
given up after 90 s). After each call the client reads the chats until the answer it expects is there
(at most 60 s); "waited" is from the first attempt of the call to the moment the answer was seen.

1. kill     every --every seconds a random worker gets SIGKILL and is started again at once, --kills
            times (a kill waits until the other worker answers /healthz, so one worker always serves:
            with both down the numbers would measure start-up time, not failover).
2. redis    no kills; Redis is stopped for --outage seconds under the same load, then started again.
3. postgres no kills; `pg_ctl stop -m fast`, --outage seconds, `pg_ctl start`, under the same load.

Afterwards the database is read directly: requests confirmed to the clients vs stored, claim rows per
request, bot messages per chat vs what the outbox and the message ledger say was sent, outbox delays,
dedupe rows for every retried event, failure counters, and the workers' logs.
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import yaml

from bench.run import _cpu_model, _git, load, pct, write_section
from bot import outbox
from bot.config import parse_config

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs" / "benchmarks.md"
MARK = "<!-- bench.chaos: everything below is written by python -m bench.chaos -->"
COMMAND = ".venv/bin/python -m bench.chaos"
PG_BIN = Path(os.environ.get("WUWEI_PG_BIN", "/usr/lib/postgresql/15/bin"))
REDIS_SERVER = shutil.which("redis-server") or "redis-server"

CALL_DEADLINE = 90.0  # a call is retried on the other worker for at most this long
ANSWER_DEADLINE = 60.0  # after the call succeeded, the expected answer must show within this
HTTP_TIMEOUT = 45.0  # one attempt (the simulator answers after delivering, flush waits up to 30 s)
HEALTH_EVERY = 0.25
FROZEN_TARGET = 10.0
DUP_MESSAGES_TARGET = 3
MAX_TRIES = 5  # bot.dispatcher.MAX_TRIES: an event failing this often is given up with an apology
DAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WON, YOURS, TAKEN = "接单成功", "这单已经是您的了", "已经有人接了"
ACCEPT = "同意并继续"  # the privacy notice's button, before a new resident's first form
SORRY = "抱歉，系统出了点问题"
SCENARIOS = ("kill", "kill-jitter", "redis", "postgres")
STALE_BUTTONS = {"接单", "出发", "完成服务", "无法前往，退回"}  # none of these may remain on a finished request

# (category button, category id, service buttons, community button, station id)
CATEGORIES = [("为老服务", "elderly", ["送餐助餐", "打扫卫生", "代买物品", "聊天陪伴"]),
              ("为小服务", "children", ["课业辅导", "看护陪伴"]),
              ("困难帮扶", "hardship", ["生活帮扶", "政策咨询"])]
COMMUNITIES = [("幸福社区", "s-xingfu"), ("光明社区", "s-guangming"), ("和平村", "s-heping"), ("团结村", "s-tuanjie")]


class BenchError(RuntimeError):
    """The set-up failed (servers, workers): nothing worth reporting was measured."""


def now() -> float:
    return time.monotonic()


def wall_utc() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_busy(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


# ---- private servers ---------------------------------------------------------------------------------

class Servers:
    """A PostgreSQL cluster and a Redis server of our own, in a temporary directory."""

    def __init__(self, base: Path, pg_port: int, redis_port: int) -> None:
        self.base, self.pg_port, self.redis_port = base, pg_port, redis_port
        self.pg_dir = base / "pg"
        self.data = self.pg_dir / "data"
        self.pg_log = self.pg_dir / "postgres.log"
        self.redis_pid = base / "redis.pid"
        self.root = os.geteuid() == 0

    def _as_pg(self, cmd: list[str]) -> list[str]:
        return ["runuser", "-u", "postgres", "--", *cmd] if self.root else cmd

    def _run(self, cmd: list[str], timeout: float = 60.0) -> None:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        if out.returncode != 0:
            raise BenchError(f"{' '.join(cmd[:6])} … failed ({out.returncode}): {out.stderr.strip()[-500:]}")

    @property
    def dsn_base(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.pg_port}"

    def url(self, db: str) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.pg_port}/{db}"

    @property
    def redis_url(self) -> str:
        return f"redis://127.0.0.1:{self.redis_port}/0"

    def init(self) -> None:
        for port, what in ((self.pg_port, "--pg-port"), (self.redis_port, "--redis-port")):
            if port_busy(port):
                raise BenchError(f"port {port} is in use (someone else's server?): choose another with {what}")
        os.chmod(self.base, 0o755)
        self.pg_dir.mkdir()
        if self.root:
            shutil.chown(self.pg_dir, "postgres", "postgres")
        self._run(self._as_pg([str(PG_BIN / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust",
                               "-E", "UTF8", "--no-locale", "--no-sync"]), timeout=120)
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write(f"\n# bench.chaos\nport = {self.pg_port}\nlisten_addresses = '127.0.0.1'\n"
                       f"unix_socket_directories = '{self.pg_dir}'\nmax_connections = 200\n"
                       # evidence: every lock wait longer than deadlock_timeout (1 s) is logged with its query
                       "log_lock_waits = on\nlog_line_prefix = '%m [%p] '\n")

    def start_pg(self) -> None:
        self._run(self._as_pg([str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.pg_log), "-w",
                               "-t", "60", "start"]), timeout=90)

    def stop_pg(self, mode: str = "fast") -> None:
        self._run(self._as_pg([str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "-t", "60",
                               "stop"]), timeout=90)

    def pg_running(self) -> bool:
        return (self.data / "postmaster.pid").exists()

    def start_redis(self) -> None:
        self._run([REDIS_SERVER, "--port", str(self.redis_port), "--bind", "127.0.0.1", "--save", "",
                   "--appendonly", "no", "--daemonize", "yes", "--pidfile", str(self.redis_pid),
                   "--dir", str(self.base), "--logfile", str(self.base / "redis.log")])
        deadline = now() + 10
        while not port_busy(self.redis_port):
            if now() > deadline:
                raise BenchError("redis-server did not start listening within 10 s")
            time.sleep(0.05)

    def stop_redis(self) -> None:
        pid = self._redis_pid()
        if pid is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = now() + 10
        while _alive(pid) and now() < deadline:
            time.sleep(0.05)
        if _alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(FileNotFoundError):
            self.redis_pid.unlink()

    def _redis_pid(self) -> int | None:
        deadline = now() + 2
        while now() < deadline:  # a daemonized redis writes its pidfile a moment after it listens
            with contextlib.suppress(FileNotFoundError, ValueError):
                return int(self.redis_pid.read_text().strip())
            time.sleep(0.05)
        return None

    def cleanup(self) -> None:
        """Stop both servers whatever state they are in (called from finally)."""
        with contextlib.suppress(Exception):
            self.stop_redis()
        if self.pg_running():
            try:
                self.stop_pg("immediate")
            except Exception:
                with contextlib.suppress(Exception):
                    pid = int((self.data / "postmaster.pid").read_text().split()[0])
                    os.kill(pid, signal.SIGKILL)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie (exited, not yet reaped by its parent) counts as gone
    with contextlib.suppress(OSError):
        if Path(f"/proc/{pid}/stat").read_text().split(") ")[-1].startswith("Z"):
            return False
    return True


# ---- config ------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Case:
    """What one resident asks for, and where it goes."""

    category: str
    services: list[str]
    community: str
    group: str
    members: list[str]  # trained members of the team (the racers are drawn from them)


def worker_config(database_url: str, redis_url: str, port: int) -> dict[str, Any]:
    """The repository's config.yaml, pointed at our servers, every team member on duty 24/7."""
    data: dict[str, Any] = yaml.safe_load((ROOT / "config.yaml").read_text(encoding="utf-8"))
    data["storage"] = {"database_url": database_url, "redis_url": redis_url, "redis_fallback_workers": 2}
    data["http"] = {"host": "127.0.0.1", "port": port}
    data["simulator"] = {"enabled": True}
    data["timings"]["tick_seconds"] = 1
    for team in data["teams"]:  # "24:00" is not a time: 23:59:59 leaves one second a day uncovered
        team["roster"] = [{"days": DAYS, "from": "00:00", "to": "23:59:59", "volunteers": list(team["members"])}]
    parse_config(data)  # refuse to start workers on a config the bot would refuse
    return data


def cases(data: dict[str, Any]) -> list[Case]:
    trained = {v["id"] for v in data["people"]["volunteers"] if v.get("trained", True)}
    out = []
    for community, station in COMMUNITIES:
        for label, cat_id, services in CATEGORIES:
            team = next(t for t in data["teams"] if t["unit"] == station and cat_id in t["categories"])
            out.append(Case(label, services, community, team["groups"]["simulator"],
                            [m for m in team["members"] if m in trained]))
    return out


# ---- workers -----------------------------------------------------------------------------------------

@dataclass
class Worker:
    """One `wuwei run` process; it keeps its HTTP port across restarts."""

    name: str
    port: int
    config: Path
    log: Path
    proc: asyncio.subprocess.Process | None = None
    up: bool = False
    started_at: float = 0.0
    starts: int = 0
    killing: bool = False
    ready_times: list[float] = field(default_factory=list)  # spawn → first healthy /healthz, seconds

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        exe = Path(sys.executable).parent / "wuwei"
        cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "bot"]
        self.starts += 1
        with self.log.open("a", encoding="utf-8") as f:
            f.write(f"===== bench.chaos: start #{self.starts} at {wall_utc():%H:%M:%S.%f} UTC\n")
            f.flush()
            self.proc = await asyncio.create_subprocess_exec(
                *cmd, "run", "--config", str(self.config), cwd=str(ROOT), stdin=subprocess.DEVNULL,
                stdout=f, stderr=subprocess.STDOUT, start_new_session=True,
                env={**os.environ, "PYTHONUNBUFFERED": "1"})
        self.started_at, self.up, self.killing = now(), False, False

    def alive(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    def kill9(self) -> None:
        self.up, self.killing = False, True
        if self.alive():
            assert self.proc is not None
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGKILL)

    async def reap(self, timeout: float = 10.0) -> None:
        if self.proc is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.proc.wait(), timeout)


@dataclass
class Exit:
    """A worker process that ended without being killed by the bench."""

    worker: str
    at: float
    code: int | None
    log_tail: list[str]


# ---- records -----------------------------------------------------------------------------------------

@dataclass
class Attempt:
    worker: str
    start: float
    end: float
    outcome: str  # ok | 503 | 500 | conn:<ExceptionName> | timeout | 4xx


@dataclass
class Call:
    """One event the client sends (a message or a press), with all its attempts."""

    path: str
    event_id: str
    start: float
    attempts: list[Attempt] = field(default_factory=list)
    answer: str | None = None
    duplicate: bool = False
    ok: bool = False

    @property
    def retried(self) -> bool:
        return len(self.attempts) > 1


@dataclass
class Wait:
    """One step of a loop: from its first call's first attempt until the expected answer was seen."""

    step: str
    resident: str
    chats: list[str]
    start: float
    end: float | None = None
    calls: list[Call] = field(default_factory=list)

    @property
    def seconds(self) -> float:
        return (self.end if self.end is not None else now()) - self.start


@dataclass
class Loop:
    resident: str
    start: float
    end: float = 0.0
    number: str | None = None
    ok: bool = False
    failed_step: str | None = None
    why: str | None = None


@dataclass
class Kill:
    worker: str
    at: float
    at_utc: datetime
    was_serving: bool
    ready_after: float | None = None  # seconds from the kill until it served again


@dataclass
class Run:
    """What the clients saw in one scenario."""

    name: str
    waits: list[Wait] = field(default_factory=list)
    loops: list[Loop] = field(default_factory=list)
    kills: list[Kill] = field(default_factory=list)
    exits: list[Exit] = field(default_factory=list)
    confirmed: dict[str, str] = field(default_factory=dict)  # request number → resident
    won: dict[str, list[str]] = field(default_factory=dict)  # request number → volunteers told 接单成功
    double_details: list[str] = field(default_factory=list)  # numbers whose details two racers got
    read_retries: int = 0
    long_xacts: dict[str, float] = field(default_factory=dict)  # "state wait query" → longest age seen, s
    max_connections: int = 0
    outage: tuple[float, float] | None = None
    outage_utc: tuple[datetime, datetime] | None = None
    started: float = 0.0
    ended: float = 0.0

    def calls(self) -> list[Call]:
        return [c for w in self.waits for c in w.calls]


class CallFailed(Exception):
    """A call or an expected answer did not come within its bound (or got a 4xx)."""


# ---- the client --------------------------------------------------------------------------------------

@dataclass
class Expect:
    """A message the client waits for in one of `chats`."""

    chats: list[str]
    text: str = ""
    button: str = ""  # one label, or several separated by "|" (any of them)
    after: int = 0  # only messages with a larger id (the chat's last id the client had seen)

    def match(self, msgs: list[dict[str, Any]]) -> dict[str, Any] | None:
        for m in reversed(msgs):
            if m["sender"] != "bot" or int(m["message_id"]) <= self.after:
                continue
            if self.text and self.text not in m["text"]:
                continue
            if self.button and all(button(m, b) is None for b in self.button.split("|")):
                continue
            return m
        return None


def button(msg: dict[str, Any], label: str) -> str | None:
    for row in msg["buttons"]:
        for b in row:
            if b["text"] == label:
                return str(b["data"])
    return None


class Client:
    """Residents and volunteers talking to whichever worker is live."""

    def __init__(self, workers: list[Worker], run: Run, http: aiohttp.ClientSession) -> None:
        self.workers, self.run, self.http = workers, run, http

    def pick(self, avoid: Worker | None = None) -> Worker | None:
        live = [w for w in self.workers if w.up]
        others = [w for w in live if w is not avoid]
        return random.choice(others or live) if live else None

    async def post(self, wait: Wait, path: str, body: dict[str, Any]) -> Call:
        call = Call(path, uuid.uuid4().hex, now())
        wait.calls.append(call)
        body = {**body, "event_id": call.event_id}
        last: Worker | None = None
        while True:
            worker = self.pick(avoid=last)
            if worker is None:
                if now() - call.start > CALL_DEADLINE:
                    raise CallFailed(f"{path}: no live worker for {CALL_DEADLINE:.0f} s")
                await asyncio.sleep(0.1)
                continue
            t0 = now()
            try:
                async with self.http.post(worker.url + path, json=body,
                                          timeout=aiohttp.ClientTimeout(total=HTTP_TIMEOUT)) as r:
                    status, raw = r.status, await r.text()
                outcome = "ok" if status == 200 else str(status)
            except TimeoutError:
                status, raw, outcome = 0, "", "timeout"
            except (aiohttp.ClientError, OSError) as exc:
                status, raw, outcome = 0, "", f"conn:{type(exc).__name__}"
            call.attempts.append(Attempt(worker.name, t0, now(), outcome))
            if status == 200:
                data = json.loads(raw)
                call.answer, call.duplicate, call.ok = data.get("answer"), bool(data.get("duplicate")), True
                return call
            if 400 <= status < 500:
                raise CallFailed(f"{path} answered {status}: {raw[:200]}")
            if now() - call.start > CALL_DEADLINE:
                raise CallFailed(f"{path}: still failing after {len(call.attempts)} attempts ({outcome})")
            last = worker
            await asyncio.sleep(min(0.2 * len(call.attempts), 1.0))

    async def messages(self, chat: str) -> list[dict[str, Any]]:
        last: Worker | None = None
        start = now()
        while True:
            worker = self.pick(avoid=last)
            if worker is not None:
                try:
                    async with self.http.get(f"{worker.url}/sim/api/chats/{chat}/messages",
                                             timeout=aiohttp.ClientTimeout(total=HTTP_TIMEOUT)) as r:
                        if r.status == 200:
                            return list(await r.json())
                except (TimeoutError, aiohttp.ClientError, OSError):
                    pass
                self.run.read_retries += 1
                last = worker
            if now() - start > CALL_DEADLINE:
                raise CallFailed(f"reading chat {chat} failed for {CALL_DEADLINE:.0f} s")
            await asyncio.sleep(0.2)

    async def expect(self, wait: Wait, expects: list[Expect]) -> list[tuple[str, dict[str, Any], int]]:
        """Read the chats until every expectation is met; (chat, message, chat's last id) for each."""
        found: dict[int, tuple[str, dict[str, Any], int]] = {}
        deadline = now() + ANSWER_DEADLINE
        while True:
            for i, e in enumerate(expects):
                if i in found:
                    continue
                for chat in e.chats:
                    msgs = await self.messages(chat)
                    m = e.match(msgs)
                    if m is not None:
                        found[i] = (chat, m, max(int(x["message_id"]) for x in msgs))
                        break
            if len(found) == len(expects):
                wait.end = now()
                return [found[i] for i in range(len(expects))]
            if now() > deadline:
                missing = [f"{e.chats}:{e.text or e.button}" for i, e in enumerate(expects) if i not in found]
                raise CallFailed(f"no answer within {ANSWER_DEADLINE:.0f} s: {missing}")
            await asyncio.sleep(0.3)


# ---- one resident ------------------------------------------------------------------------------------

class Resident:
    """Runs the whole loop again and again until told to stop."""

    def __init__(self, client: Client, run: Run, index: int, case: Case, scenario: str) -> None:
        self.client, self.run, self.case = client, run, case
        self.index, self.scenario, self.generation = index, scenario, 0
        self.id = ""
        self.last_seen = 0
        self._new_identity()

    def _new_identity(self) -> None:
        self.generation += 1
        self.id = f"r-{self.scenario}-{self.index:02d}-{self.generation}"
        self.last_seen = 0

    async def forever(self, stop: asyncio.Event) -> None:
        n = 0
        while not stop.is_set():
            loop = Loop(self.id, now())
            self.run.loops.append(loop)
            try:
                await self.loop(loop, n)
                loop.ok = True
            except CallFailed as exc:
                loop.why = str(exc)
                self._new_identity()  # whatever state that chat is in, the next loop starts clean
            except Exception as exc:  # a surprise in the client itself: recorded, never silent
                loop.why = f"{type(exc).__name__}: {exc}"
                self._new_identity()
            finally:
                loop.end = now()
            n += 1

    async def step(self, loop: Loop, name: str, calls: list[tuple[str, dict[str, Any]]],
                   expects: list[Expect]) -> tuple[list[Call], list[tuple[str, dict[str, Any], int]]]:
        wait = Wait(name, self.id, sorted({c for e in expects for c in e.chats}), now())
        self.run.waits.append(wait)
        loop.failed_step = name
        done = await asyncio.gather(*(self.client.post(wait, path, body) for path, body in calls))
        found = await self.client.expect(wait, expects)
        for chat, _, last in found:
            if chat == self.id:
                self.last_seen = max(self.last_seen, last)
        loop.failed_step = None
        return list(done), found

    def _send(self, text: str) -> tuple[str, dict[str, Any]]:
        return "/sim/api/send", {"chat_id": self.id, "user_id": self.id, "text": text,
                                 "user_name": f"居民{self.index:02d}"}

    @staticmethod
    def _press(chat: str, user: str, msg: dict[str, Any], label: str) -> tuple[str, dict[str, Any]]:
        data = button(msg, label)
        if data is None:
            raise CallFailed(f"no button {label!r} on message {msg['message_id']} in {chat}")
        return "/sim/api/press", {"chat_id": chat, "user_id": user, "message_id": msg["message_id"], "data": data}

    def mine(self, text: str = "", button: str = "") -> Expect:
        return Expect([self.id], text=text, button=button, after=self.last_seen)

    async def loop(self, loop: Loop, n: int) -> None:
        c, r = self.case, self.id
        service = c.services[(self.index + n) % len(c.services)]
        # a new resident first accepts the privacy notice; one who did before goes straight to the menu
        _, [(_, m, _)] = await self.step(loop, "你好", [self._send("你好")],
                                         [self.mine(button=f"{c.category}|{ACCEPT}")])
        if button(m, ACCEPT) is not None:
            _, [(_, m, _)] = await self.step(loop, ACCEPT, [self._press(r, r, m, ACCEPT)],
                                             [self.mine(button=c.category)])
        _, [(_, m, _)] = await self.step(loop, c.category, [self._press(r, r, m, c.category)],
                                         [self.mine(button=service)])
        # a resident who asked before has their community remembered: the form skips that question
        _, [(_, m, _)] = await self.step(loop, service, [self._press(r, r, m, service)],
                                         [self.mine(button=f"{c.community}|家里人")])
        if button(m, c.community) is not None:
            _, [(_, m, _)] = await self.step(loop, c.community, [self._press(r, r, m, c.community)],
                                             [self.mine(button="家里人")])
        _, [(_, m, _)] = await self.step(loop, "家里人", [self._press(r, r, m, "家里人")], [self.mine(button="选日期")])
        await self.step(loop, "选日期", [self._press(r, r, m, "选日期")], [self.mine(text="请输入日期和时间")])
        await self.step(loop, "date", [self._send("明天上午9点")], [self.mine(text="上门地址")])
        await self.step(loop, "address", [self._send(f"幸福路{self.index + 1}号3单元401")],
                        [self.mine(text="联系电话")])
        await self.step(loop, "phone", [self._send(f"138{self.index:04d}{n % 10000:04d}")],
                        [self.mine(text="请简单说说情况")])
        _, [(_, m, _)] = await self.step(loop, "description", [self._send("老人腿脚不便，需要陪同去医院复查")],
                                         [self.mine(button="确认提交")])
        _, [(_, m, _)] = await self.step(loop, "确认提交", [self._press(r, r, m, "确认提交")],
                                         [self.mine(text="已提交，编号")])
        number = m["text"].split("编号 ")[1].split("。")[0]
        loop.number = number
        self.run.confirmed[number] = r
        # 派单: the card in the team's group (its wait is the group's)
        _, [(_, card, _)] = await self.step(loop, "group card", [], [Expect([c.group], f"编号 {number}", "接单")])
        # 接单: two members press at once, each through its own pick of worker
        racers = random.sample(c.members, 2)
        presses, [(winner, detail, _), _] = await self.step(
            loop, "接单", [self._press(c.group, v, card, "接单") for v in racers],
            [Expect(racers, f"编号 {number}", "出发"), self.mine(text=f"（编号 {number}）已由志愿者")])
        told_won = [v for v, call in zip(racers, presses, strict=True) if call.answer and WON in call.answer]
        self.run.won.setdefault(number, []).extend(told_won)
        other = next(v for v in racers if v != winner)
        if Expect([other], f"编号 {number}", "出发").match(await self.client.messages(other)) is not None:
            self.run.double_details.append(number)
        await self.step(loop, "出发", [self._press(winner, winner, detail, "出发")],
                        [self.mine(text=f"已出发（编号 {number}）")])
        _, [(_, rate, _), _] = await self.step(
            loop, "完成服务", [self._press(winner, winner, detail, "完成服务")],
            [self.mine(text=f"（编号 {number}）。请为这次服务打分", button="⭐⭐⭐⭐⭐"),
             Expect([winner], f"编号 {number} 已完成。本次服务时长")])
        _, [(_, thanks, _)] = await self.step(loop, "⭐⭐⭐⭐⭐", [self._press(r, r, rate, "⭐⭐⭐⭐⭐")],
                                              [self.mine(text="谢谢您的评价", button="不用了")])
        await self.step(loop, "不用了", [self._press(r, r, thanks, "不用了")], [self.mine(text="收到，谢谢您")])


# ---- a scenario --------------------------------------------------------------------------------------

class Scenario:
    """Two workers on a fresh database, the residents, and one kind of fault."""

    def __init__(self, name: str, servers: Servers, base: Path, args: argparse.Namespace) -> None:
        self.name, self.servers, self.args = name, servers, args
        self.db = f"chaos_{name.replace('-', '_')}"
        self.dir = base / name
        self.dir.mkdir()
        self.run = Run(name)
        self.workers: list[Worker] = []
        self.data: dict[str, Any] = {}
        self.pg_log_from = 0

    async def setup(self) -> None:
        self.pg_log_from = self.servers.pg_log.stat().st_size if self.servers.pg_log.exists() else 0
        conn = await asyncpg.connect(self.servers.dsn_base + "/postgres", timeout=10)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{self.db}"')
            await conn.execute(f'CREATE DATABASE "{self.db}"')
        finally:
            await conn.close()
        url = self.servers.url(self.db)
        ports: set[int] = set()
        while len(ports) < 2:
            ports.add(free_port())
        for i, port in enumerate(sorted(ports)):
            data = worker_config(url, self.servers.redis_url, port)
            path = self.dir / f"worker{i}.yaml"
            path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
            self.workers.append(Worker(f"w{i}", data["http"]["port"], path, self.dir / f"worker{i}.log"))
            self.data = data
        # migrate once, before the workers start (not part of what is measured)
        exe = Path(sys.executable).parent / "wuwei"
        cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "bot"]
        out = await asyncio.to_thread(subprocess.run, [*cmd, "db", "upgrade", "--config", str(self.workers[0].config)],
                                      cwd=str(ROOT), capture_output=True, text=True, timeout=180)
        if out.returncode != 0:
            raise BenchError(f"wuwei db upgrade failed: {out.stderr[-800:]}")
        # one after the other, so each start-up is timed on its own
        async with aiohttp.ClientSession() as http:
            for w in self.workers:
                await w.start()
                deadline = now() + 90
                while not w.up:
                    if not w.alive():
                        raise BenchError(f"worker {w.name} exited at start:\n" + "\n".join(_tail(w.log, 30)))
                    await self._check(http, w)
                    if now() > deadline:
                        raise BenchError(f"worker {w.name} did not answer /healthz within 90 s")
                    await asyncio.sleep(0.2)

    async def _check(self, http: aiohttp.ClientSession, w: Worker) -> None:
        if w.killing or not w.alive():
            w.up = False
            return
        try:
            async with http.get(w.url + "/healthz", timeout=aiohttp.ClientTimeout(total=1.0)) as r:
                ok = r.status == 200
        except (TimeoutError, aiohttp.ClientError, OSError):
            ok = False
        if ok and not w.up:
            w.ready_times.append(now() - w.started_at)
        w.up = ok and not w.killing

    async def monitor(self, http: aiohttp.ClientSession, stop: asyncio.Event) -> None:
        """Health checks; a worker that ends without being killed by us is recorded and started again."""
        while not stop.is_set():
            for w in self.workers:
                if not w.killing and w.proc is not None and w.proc.returncode is not None:
                    self.run.exits.append(Exit(w.name, now(), w.proc.returncode, _tail(w.log, 25)))
                    await w.start()
                await self._check(http, w)
            await asyncio.sleep(HEALTH_EVERY)

    async def sampler(self, stop: asyncio.Event) -> None:
        """Once a second: the workers' transactions open for more than 2 s, and what they wait on (evidence for
        stalls). Grouped by statement, state and wait; the longest age seen is kept."""
        conn: asyncpg.Connection | None = None
        while not stop.is_set():
            try:
                if conn is None or conn.is_closed():
                    conn = await asyncpg.connect(self.servers.dsn_base + f"/{self.db}", timeout=2)
                rows = await conn.fetch(
                    "SELECT state, coalesce(wait_event_type || ':' || wait_event, '') AS waiting, "
                    "EXTRACT(EPOCH FROM now() - xact_start) AS age, left(regexp_replace(query, '\\s+', ' ', 'g'), 110) "
                    "AS query FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid() "
                    "AND xact_start IS NOT NULL AND now() - xact_start > interval '2 seconds'", self.db)
                total = await conn.fetchval("SELECT count(*) FROM pg_stat_activity WHERE datname = $1", self.db)
                self.run.max_connections = max(self.run.max_connections, int(total) - 1)
                for r in rows:
                    key = f"{r['state']} {r['waiting'] or '-'} {r['query']}"
                    self.run.long_xacts[key] = max(self.run.long_xacts.get(key, 0.0), float(r["age"]))
            except (OSError, asyncpg.PostgresError, TimeoutError):
                conn = None  # PostgreSQL is down (scenario postgres): try again later
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)
        if conn is not None and not conn.is_closed():
            await conn.close()

    async def progress(self, stop: asyncio.Event, every: float = 15.0) -> None:
        """A line now and then, so a long run shows it is alive."""
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), every)
            run = self.run
            print(f"  +{now() - run.started:5.0f} s: loops done {sum(lp.ok for lp in run.loops)}, failed "
                  f"{sum(1 for lp in run.loops if lp.end and not lp.ok)}, calls retried "
                  f"{sum(c.retried for c in run.calls())}, kills {len(run.kills)}, unexpected exits "
                  f"{len(run.exits)}, load {load()}", flush=True)

    async def killer(self, stop_load: asyncio.Event) -> None:
        """Kill -9 a random worker every --every seconds and start it again at once, --kills times."""
        t_next = now() + self.args.every
        for _ in range(self.args.kills):
            await asyncio.sleep(max(0.0, t_next - now()))
            victim = random.choice(self.workers)
            other = next(w for w in self.workers if w is not victim)
            deadline = now() + 60
            while not other.up and now() < deadline:  # never both down at once
                await asyncio.sleep(0.05)
            kill = Kill(victim.name, now(), wall_utc(), victim.up)
            self.run.kills.append(kill)
            victim.kill9()
            await victim.reap()
            await victim.start()
            jitter = self.args.jitter if self.name == "kill-jitter" else 0.0
            t_next = kill.at + self.args.every + random.uniform(-jitter, jitter)
            asyncio.get_running_loop().create_task(self._ready(victim, kill))
        await asyncio.sleep(self.args.every)  # the last kill's effects, under load, before the load stops
        stop_load.set()

    async def _ready(self, w: Worker, kill: Kill) -> None:
        deadline = now() + 120
        while not w.up and now() < deadline and not w.killing:
            await asyncio.sleep(0.05)
        if w.up:
            kill.ready_after = now() - kill.at

    async def outage(self, what: str, stop_load: asyncio.Event) -> None:
        """Stop Redis or PostgreSQL for --outage seconds under load, then start it again."""
        await asyncio.sleep(self.args.warmup)
        down, down_utc = now(), wall_utc()
        if what == "redis":
            await asyncio.to_thread(self.servers.stop_redis)
        else:
            await asyncio.to_thread(self.servers.stop_pg, "fast")
        await asyncio.sleep(max(0.0, self.args.outage - (now() - down)))
        if what == "redis":
            await asyncio.to_thread(self.servers.start_redis)
        else:
            await asyncio.to_thread(self.servers.start_pg)
        self.run.outage, self.run.outage_utc = (down, now()), (down_utc, wall_utc())
        await asyncio.sleep(self.args.after)
        stop_load.set()

    async def execute(self) -> None:
        random.seed(f"{self.args.seed}-{self.name}")
        stop_load, stop_monitor = asyncio.Event(), asyncio.Event()
        all_cases = cases(self.data)
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=200)) as http:
            monitor = asyncio.create_task(self.monitor(http, stop_monitor))
            client = Client(self.workers, self.run, http)
            residents = [Resident(client, self.run, i, all_cases[i % len(all_cases)], self.name)
                         for i in range(self.args.residents)]
            self.run.started = now()
            tasks = [asyncio.create_task(r.forever(stop_load)) for r in residents]
            progress = asyncio.create_task(self.progress(stop_monitor))
            sampler = asyncio.create_task(self.sampler(stop_monitor))
            fault = (self.killer(stop_load) if self.name.startswith("kill") else self.outage(self.name, stop_load))
            try:
                await fault
                # the loops under way finish (each call and answer is bounded); a hard bound on top
                _, pending = await asyncio.wait(tasks, timeout=CALL_DEADLINE + 2 * ANSWER_DEADLINE)
                for t in pending:
                    t.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                for loop in self.run.loops:
                    if loop.end == 0.0:
                        loop.end, loop.why = now(), "cut off at the end of the scenario"
                self.run.ended = now()
                await self.drain()
            finally:
                stop_load.set()
                for t in tasks:
                    t.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                stop_monitor.set()
                await asyncio.gather(monitor, progress, sampler, return_exceptions=True)

    async def drain(self, bound: float = 40.0) -> None:
        """Let the outbox finish what is due (bounded) before counting."""
        deadline = now() + bound
        conn = await asyncpg.connect(self.servers.dsn_base + f"/{self.db}", timeout=10)
        try:
            while now() < deadline:
                left = await conn.fetchval("SELECT count(*) FROM outbox WHERE status = 'pending'")
                if not left:
                    return
                await asyncio.sleep(0.5)
        finally:
            await conn.close()

    async def stop_workers(self) -> None:
        for w in self.workers:
            w.kill9()
        for w in self.workers:
            await w.reap()


def _tail(path: Path, n: int) -> list[str]:
    try:
        return path.read_text(encoding="utf-8", errors="replace").splitlines()[-n:]
    except OSError:
        return []


# ---- what the database says --------------------------------------------------------------------------

def _label(text: str) -> str:
    """A short, data-free name for a bot message (its first line, numbers kept, at most 28 characters)."""
    first = text.split("\n")[0]
    return first[:28] + ("…" if len(first) > 28 else "")


async def analyse(sc: Scenario) -> dict[str, Any]:
    run = sc.run
    conn = await asyncpg.connect(sc.servers.dsn_base + f"/{sc.db}", timeout=10)
    try:
        stored = {r["number"]: r["status"] for r in await conn.fetch("SELECT number, status FROM requests")}
        claims = await conn.fetch("SELECT r.number, count(*) AS n FROM claims c JOIN requests r ON r.id = c.request_id "
                                  "GROUP BY r.number HAVING count(*) > 1")
        history = await conn.fetch(
            "SELECT r.number, h.action, count(*) AS n FROM request_history h JOIN requests r ON r.id = h.request_id "
            "WHERE h.action IN ('created', 'claimed', 'started', 'finished', 'rated') "
            "GROUP BY 1, 2 HAVING count(*) > 1")
        ratings = await conn.fetchval("SELECT count(*) FROM ratings")
        msgs = await conn.fetch("SELECT id, chat_id, sender, text, buttons::text AS buttons, created_at "
                                "FROM sim_messages ORDER BY chat_id, id")
        sent = {r["chat_id"]: r["n"] for r in await conn.fetch(
            "SELECT chat_id, count(*) AS n FROM outbox WHERE channel = 'simulator' AND kind = 'message' "
            "AND status = 'sent' GROUP BY chat_id")}
        ledger = {r["chat_id"]: r["n"] for r in await conn.fetch(
            "SELECT chat_id, count(*) AS n FROM message_ledger WHERE channel = 'simulator' GROUP BY chat_id")}
        outbox = {r["status"]: r["n"] for r in await conn.fetch("SELECT status, count(*) AS n FROM outbox GROUP BY 1")}
        attempts = {r["attempts"]: r["n"] for r in await conn.fetch(
            "SELECT attempts, count(*) AS n FROM outbox GROUP BY 1 ORDER BY 1")}
        errors = Counter(re.sub(r"\d+", "N", r["error"] or "")[:80] for r in await conn.fetch(
            "SELECT error FROM outbox WHERE error IS NOT NULL"))
        delays = await conn.fetch(
            "SELECT id, chat_id, kind, ledger_kind, "
            "EXTRACT(EPOCH FROM sent_at - GREATEST(created_at, next_attempt_at)) AS delay, created_at, sent_at "
            "FROM outbox WHERE status = 'sent' AND sent_at IS NOT NULL ORDER BY delay DESC LIMIT 5")
        late = {f"> {x} s": n for x in (2, 5, 10) if (n := await conn.fetchval(
            "SELECT count(*) FROM outbox WHERE status = 'sent' AND "
            f"sent_at - GREATEST(created_at, next_attempt_at) > interval '{x} seconds'"))}
        processed = {r["event_id"] for r in await conn.fetch(
            "SELECT event_id FROM processed_events WHERE channel = 'simulator'")}
        failures = await conn.fetch("SELECT event_id, attempts FROM event_failures ORDER BY attempts DESC")
    finally:
        await conn.close()

    confirmed = set(run.confirmed)
    lost = sorted(confirmed - set(stored))
    # messages: per chat, bot messages shown vs rows the outbox marked sent plus cards recorded in the ledger
    by_chat: dict[str, list[asyncpg.Record]] = {}
    for m in msgs:
        by_chat.setdefault(m["chat_id"], []).append(m)
    excess: dict[str, int] = {}
    missing: dict[str, int] = {}
    adjacent_bot, adjacent_user, killed_after_send = 0, 0, 0
    runs: Counter[int] = Counter()  # identical bot messages in a row: how many times each run length
    dup_evidence: list[str] = []
    stale: list[str] = []
    for chat, rows in by_chat.items():
        bot = [m for m in rows if m["sender"] == "bot"]
        diff = len(bot) - sent.get(chat, 0) - ledger.get(chat, 0)
        if diff > 0:
            excess[chat] = diff
        elif diff < 0:
            missing[chat] = -diff
        for a, b in zip(rows, rows[1:], strict=False):
            if a["sender"] != "bot" and (a["sender"], a["text"]) == (b["sender"], b["text"]):
                adjacent_user += 1
        for m in bot:  # a copy nobody updated: it still offers 接单 (or 出发 …) on a request that is done
            found = re.search(r"编号 (\d{8}-\d{4})", m["text"])
            labels = {b["text"] for row in json.loads(m["buttons"] or "[]") for b in row} & STALE_BUTTONS
            if found and labels and stored.get(found[1], "open") in ("finished", "cancelled"):
                stale.append(f"{_kind(chat)} chat: 「{_label(m['text'])}」 message {m['id']} still offers "
                             f"{'/'.join(sorted(labels))}, request {stored[found[1]]}"
                             f"{_nearest_kill(run, m['created_at']) or _in_outage(run, m['created_at'])}")
        run_len = 1
        for a, b in zip(bot, bot[1:], strict=False):
            if (a["text"], a["buttons"]) != (b["text"], b["buttons"]):
                if run_len > 1:
                    runs[run_len] += 1
                run_len = 1
                continue
            adjacent_bot += 1
            run_len += 1
            after = [(k.at_utc - a["created_at"]).total_seconds() for k in run.kills if k.at_utc >= a["created_at"]]
            if after and min(after) <= 0.5:
                killed_after_send += 1
            gap = (b["created_at"] - a["created_at"]).total_seconds()
            when = _nearest_kill(run, a["created_at"]) or _in_outage(run, a["created_at"])
            dup_evidence.append(f"{_kind(chat)} chat: 「{_label(b['text'])}」 messages {a['id']} and {b['id']}, "
                                f"{gap:.1f} s apart, the first{when}")
        if run_len > 1:
            runs[run_len] += 1
    retried = [c for c in run.calls() if c.retried and c.ok]
    prefix = {"/sim/api/send": "msg:", "/sim/api/press": "press:"}
    not_recorded = [c for c in retried
                    if prefix[c.path] + c.event_id not in processed and not (c.answer and (TAKEN in c.answer
                                                                                            or YOURS in c.answer))]
    gave_up = [f for f in failures if f["attempts"] >= MAX_TRIES]
    apologies = sum(1 for m in msgs if m["sender"] == "bot" and SORRY in m["text"])
    return {
        "stored": len(stored), "lost": lost, "unconfirmed_stored": len(set(stored) - confirmed),
        "status": dict(Counter(stored.values())), "ratings": ratings,
        "dup_claim_rows": [(r["number"], r["n"]) for r in claims],
        "multi_won": {n: v for n, v in run.won.items() if len(v) > 1},
        "double_details": list(run.double_details),
        "history_dups": [(r["number"], r["action"], r["n"]) for r in history],
        "excess_messages": excess, "missing_messages": missing, "adjacent_bot": adjacent_bot,
        "adjacent_user": adjacent_user, "killed_after_send": killed_after_send,
        "dup_runs": {str(k): v for k, v in sorted(runs.items())}, "dup_evidence": dup_evidence[:10],
        "stale_copies": stale[:10],
        "stale_count": len(stale),
        "outbox": outbox, "attempts": {str(k): v for k, v in attempts.items()}, "outbox_errors": dict(errors),
        "outbox_delay_max": float(delays[0]["delay"]) if delays else 0.0, "outbox_delayed": late,
        "outbox_delays": [f"{_kind(r['chat_id'])} {r['ledger_kind'] or r['kind']} row {r['id']}: "
                          f"{float(r['delay']):.1f} s{_kills_between(run, r['created_at'], r['sent_at'])}"
                          for r in delays],
        "retried_not_recorded": [c.event_id for c in not_recorded],
        "event_failures": [(f["event_id"][:40], f["attempts"]) for f in failures[:10]],
        "event_failure_rows": len(failures), "gave_up": len(gave_up), "apologies": apologies,
    }


def _kind(chat: str) -> str:
    if chat.startswith("request:"):
        return "every copy of a request:"
    return "group" if chat.startswith("grp-") else "volunteer" if chat.startswith("v-") else "resident"


def _nearest_kill(run: Run, at: datetime) -> str:
    """Where `at` lies from the nearest kill, e.g. " (0.1 s before w1 was killed)"."""
    if not run.kills:
        return ""
    k = min(run.kills, key=lambda k: abs((at - k.at_utc).total_seconds()))
    d = (at - k.at_utc).total_seconds()
    return f" ({abs(d):.1f} s {'before' if d < 0 else 'after'} {k.worker} was killed)"


def _in_outage(run: Run, at: datetime) -> str:
    """Where `at` lies from the start of the outage, e.g. " (+0.3 s from the start of the outage)"."""
    if run.outage_utc is None:
        return ""
    d = (at - run.outage_utc[0]).total_seconds()
    return f" ({d:+.1f} s from the start of the outage)"


def _kills_between(run: Run, start: datetime, end: datetime) -> str:
    """The kills while a row waited, as offsets from its creation."""
    ks = [f"{k.worker} +{(k.at_utc - start).total_seconds():.1f}" for k in run.kills if start <= k.at_utc <= end]
    return f"; kills meanwhile: {', '.join(ks)} s" if ks else ""


def pg_lock_waits(sc: Scenario) -> dict[str, Any]:
    """What postgres.log says about lock waits (log_lock_waits) during this scenario."""
    try:
        with sc.servers.pg_log.open("rb") as f:
            f.seek(sc.pg_log_from)
            text = f.read().decode("utf-8", errors="replace")
    except OSError:
        return {}
    waits = re.findall(r"still waiting for (\w+) on (.*?) after ([\d.]+) ms", text)
    statements = Counter(re.sub(r"\$\d+|\d+", "N", m)[:110] for m in re.findall(
        r"still waiting for .*?\n(?:.*DETAIL:.*\n)?.*STATEMENT:\s+(.*)", text))
    return {"count": len(waits), "kinds": dict(Counter(f"{w[0]} on {re.sub(r'[0-9]+', 'N', w[1])[:60]}"
                                                           for w in waits).most_common(5)),
            "statements": dict(statements.most_common(5)),
            "deadlocks": text.count("deadlock detected")}


def log_summary(sc: Scenario) -> dict[str, int]:
    """WARNING/ERROR lines of both workers' logs, by logger and message with numbers blanked."""
    out: Counter[str] = Counter()
    for w in sc.workers:
        for line in _tail(w.log, 10**6):
            m = re.match(r"\S+ \S+ (WARNING|ERROR|CRITICAL) (\S+): (.*)", line)
            if m:
                out[f"{m[1]} {m[2]}: {re.sub(r'[0-9]+', 'N', m[3])[:90]}"] += 1
            elif line.startswith(("Traceback", "asyncpg.exceptions", "sqlalchemy.exc", "ConnectionRefusedError")):
                out[line[:100]] += 1
    return dict(out.most_common(12))


# ---- measures ----------------------------------------------------------------------------------------

def measures(sc: Scenario, db: dict[str, Any]) -> dict[str, Any]:
    run = sc.run
    calls = [c for c in run.calls()]
    done = [w for w in run.waits if w.end is not None]
    longest = sorted(done, key=lambda w: w.seconds, reverse=True)[:5]
    outcomes = Counter(a.outcome for c in calls for a in c.attempts if a.outcome != "ok")
    failed_loops = [lp for lp in run.loops if not lp.ok]
    m: dict[str, Any] = {
        "scenario": run.name, "seconds": round(run.ended - run.started, 1),
        "loops_done": sum(lp.ok for lp in run.loops), "loops_failed": len(failed_loops),
        "failed_loops": [f"{lp.resident} at {lp.failed_step}: {lp.why}" for lp in failed_loops][:8],
        "calls": len(calls), "calls_retried": sum(c.retried for c in calls),
        "attempts_failed": dict(outcomes), "read_retries": run.read_retries,
        "confirmed": len(run.confirmed), **db,
        "dup_claims": len(db["dup_claim_rows"]) + len(db["multi_won"]) + len(db["double_details"]),
        "dup_messages": sum(db["excess_messages"].values()),
        "wait_max": round(longest[0].seconds, 2) if longest else 0.0,
        "waits_over_target": sum(w.seconds > FROZEN_TARGET for w in done),
        "wait_p50": round(pct([w.seconds for w in done], 50), 3) if done else 0.0,
        "wait_p99": round(pct([w.seconds for w in done], 99), 2) if done else 0.0,
        "longest_waits": [_describe(run, w) for w in longest],
        "unexpected_exits": [f"{e.worker} code {e.code} at +{e.at - run.started:.1f} s: " + " | ".join(e.log_tail[-4:])
                             for e in run.exits],
        "log": log_summary(sc),
        "pg_lock_waits": pg_lock_waits(sc),
        "long_transactions": {k: round(v, 1) for k, v in sorted(run.long_xacts.items(), key=lambda kv: -kv[1])[:6]},
        "max_connections": run.max_connections,
    }
    if run.kills:
        ready = [k.ready_after for k in run.kills if k.ready_after is not None]
        m["kills"] = len(run.kills)
        m["kills_while_starting"] = sum(not k.was_serving for k in run.kills)
        m["restart_p50"] = round(pct(ready, 50), 2) if ready else None
        m["restart_max"] = round(max(ready), 2) if ready else None
    if run.outage is not None:
        lo, hi = run.outage[0], run.outage[1] + 2.0  # the outage and 2 s of recovery
        m["outage_seconds"] = round(run.outage[1] - run.outage[0], 1)
        in_window = [a for c in calls for a in c.attempts if lo <= a.start <= hi]
        m["window_attempts"] = len(in_window)
        m["window_5xx"] = sum(a.outcome.startswith("5") for a in in_window)
        m["window_errors"] = dict(Counter(a.outcome for a in in_window if a.outcome != "ok"))
        m["window_calls_retried"] = sum(c.retried and any(lo <= a.start <= hi for a in c.attempts) for c in calls)
        m["window_loops_failed"] = sum(not lp.ok and lp.start <= hi and lp.end >= lo for lp in run.loops)
        m["window_wait_max"] = round(max((w.seconds for w in done if w.start <= hi and w.end and w.end >= lo),
                                         default=0.0), 2)
    return m


def _describe(run: Run, w: Wait) -> str:
    tries = [a for c in w.calls for a in c.attempts]
    bad = [f"{a.outcome}@{a.worker}" for a in tries if a.outcome != "ok"]
    kills = [f"{k.worker} {k.at - w.start:+.1f} s" for k in run.kills if w.start - 1 <= k.at <= (w.end or now())]
    out = f"{w.seconds:.1f} s: step {w.step} ({', '.join(_kind(c) for c in w.chats)} chat)"
    calls = sum(c.ok for c in w.calls)
    if w.calls:
        last_ok = max((a.end for c in w.calls for a in c.attempts if a.outcome == "ok"), default=w.start)
        out += f", {calls} call(s) answered after {last_ok - w.start:.1f} s"
    if bad:
        out += f", failed attempts {bad}"
    if kills:
        out += f", kills {kills}"
    return out


# ---- report ------------------------------------------------------------------------------------------

def verdict(ok: bool) -> str:
    return "met" if ok else "**NOT MET**"


def rows_for(m: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """(measure, result, target, met) rows of one scenario."""
    s = m["scenario"]
    kill = s.startswith("kill")
    lost = len(m["lost"])
    common = [
        ("loops completed / failed", f"{m['loops_done']} / {m['loops_failed']}", "", ""),
        ("requests confirmed to clients / stored / lost", f"{m['confirmed']} / {m['stored']} / {lost}", "0 lost",
         verdict(lost == 0)),
        ("duplicate claims (claim rows > 1, two 接单成功, details to both racers)",
         f"{m['dup_claims']} ({len(m['dup_claim_rows'])}, {len(m['multi_won'])}, {len(m['double_details'])})",
         "0", verdict(m["dup_claims"] == 0)),
        ("duplicate bot messages (shown − outbox sent − ledger; adjacent identical pairs)",
         f"{m['dup_messages']}; {m['adjacent_bot']}",
         f"≤ {DUP_MESSAGES_TARGET}" if kill else "0",
         verdict(m["dup_messages"] <= (DUP_MESSAGES_TARGET if kill else 0))),
        ("effects recorded twice (history: created/claimed/started/finished/rated)", str(len(m["history_dups"])), "0",
         verdict(not m["history_dups"])),
        ("client calls retried / all calls", f"{m['calls_retried']} / {m['calls']}", "", ""),
        ("failed attempts by kind", ", ".join(f"{k} {v}" for k, v in m["attempts_failed"].items()) or "none", "", ""),
        ("longest wait for an answer (p50 / p99 / max)", f"{m['wait_p50']:.2f} / {m['wait_p99']:.1f} / "
         f"{m['wait_max']:.1f} s; {m['waits_over_target']} waits over {FROZEN_TARGET:.0f} s",
         f"≤ {FROZEN_TARGET:.0f} s" if kill else "", verdict(m["wait_max"] <= FROZEN_TARGET) if kill else ""),
        ("longest outbox delay (sent_at − max(created_at, next_attempt_at)); rows later than 2 / 5 / 10 s",
         f"{m['outbox_delay_max']:.1f} s; " + " / ".join(str(m["outbox_delayed"].get(f"> {x} s", 0))
                                                          for x in (2, 5, 10)) + f" of {sum(m['outbox'].values())}",
         "", ""),
        ("events given up with an apology / failure counters", f"{m['gave_up']} ({m['apologies']} apologies) / "
         f"{m['event_failure_rows']}", "0", verdict(m["gave_up"] == 0 and m["apologies"] == 0)),
        ("worker exits not caused by the bench", str(len(m["unexpected_exits"])), "0",
         verdict(not m["unexpected_exits"])),
    ]
    if kill:
        common.insert(0, ("kills (of a worker still starting) / restart to healthy p50, max",
                          f"{m['kills']} ({m['kills_while_starting']}) / {m['restart_p50']} s, {m['restart_max']} s",
                          "", ""))
    else:
        window = [("outage", f"{m['outage_seconds']} s", "", ""),
                  ("5xx answers in the outage (+2 s)", f"{m['window_5xx']} of {m['window_attempts']} attempts",
                   "0" if s == "redis" else "", verdict(m["window_5xx"] == 0) if s == "redis" else ""),
                  ("loops failed around the outage", str(m["window_loops_failed"]), "0",
                   verdict(m["window_loops_failed"] == 0)),
                  ("events retried around the outage", str(m["window_calls_retried"]), "", ""),
                  ("longest wait around the outage", f"{m['window_wait_max']:.1f} s", "", "")]
        if s == "postgres":
            window.append(("retried events not recorded as handled", str(len(m["retried_not_recorded"])), "0",
                           verdict(not m["retried_not_recorded"])))
        common = window + common
    return common


def table(ms: list[dict[str, Any]]) -> list[str]:
    out = ["| scenario | measure | result | target | |", "|---|---|---|---|---|"]
    for m in ms:
        for measure, result, target, met in rows_for(m):
            out.append(f"| {m['scenario']} | {measure} | {result} | {target} | {met} |")
    return out


def evidence(ms: list[dict[str, Any]]) -> list[str]:
    out: list[str] = []
    for m in ms:
        s = m["scenario"]
        out.append(f"**{s}**")
        out.append("")
        out.append(f"* longest waits: {'; '.join(m['longest_waits'][:3]) or 'none'}")
        out.append(f"* longest outbox delays: {'; '.join(m['outbox_delays'][:3]) or 'none'}")
        if m["dup_evidence"]:
            runs = ", ".join(f"{v} × {k} copies" for k, v in m["dup_runs"].items())
            near = (f"; the first copy of {m['killed_after_send']} was shown at most 0.5 s before a worker was killed"
                    if s.startswith("kill") else "")
            out.append(f"* identical bot messages in a row: {m['adjacent_bot']} repeats ({runs}){near}. Examples: "
                       f"{'; '.join(m['dup_evidence'][:4])}")
        if m["excess_messages"] or m["missing_messages"]:
            out.append(f"* chats with more bot messages than rows sent: {m['excess_messages']}; with fewer: "
                       f"{m['missing_messages']}")
        if m["stale_copies"]:
            out.append(f"* copies never updated ({m['stale_count']}): {'; '.join(m['stale_copies'][:4])}")
        if m["adjacent_user"]:
            out.append(f"* a person's own message shown twice in a row (the simulator logs it before the worker "
                       f"died, and again on the retry): {m['adjacent_user']}")
        if m["failed_loops"]:
            out.append(f"* failed loops: {'; '.join(m['failed_loops'][:4])}")
        if m["history_dups"] or m["dup_claim_rows"] or m["multi_won"] or m["double_details"]:
            out.append(f"* duplicates: history {m['history_dups'][:5]}, claim rows {m['dup_claim_rows'][:5]}, "
                       f"two 接单成功 {m['multi_won']}, details twice {m['double_details'][:5]}")
        if m["lost"]:
            out.append(f"* lost requests: {m['lost'][:10]}")
        if m["unexpected_exits"]:
            out.append(f"* worker exits: {'; '.join(m['unexpected_exits'][:3])}")
        out.append(f"* outbox rows by status {m['outbox']}, by attempts {m['attempts']}"
                   + (f", errors {m['outbox_errors']}" if m["outbox_errors"] else ""))
        if m["long_transactions"]:
            top = "; ".join(f"{k} ({v:.0f} s)" for k, v in list(m["long_transactions"].items())[:4])
            out.append(f"* transactions open > 2 s (pg_stat_activity, sampled each second): {top}")
        if m["pg_lock_waits"].get("count"):
            lw = m["pg_lock_waits"]
            out.append(f"* PostgreSQL lock waits > 1 s: {lw['count']} ({lw['kinds']}); statements {lw['statements']}"
                       + (f"; deadlocks {lw['deadlocks']}" if lw["deadlocks"] else ""))
        if m["log"]:
            top = "; ".join(f"{k} ×{v}" for k, v in list(m["log"].items())[:6])
            out.append(f"* worker log warnings/errors: {top}")
        out.append("")
    return out


def write_docs(ms: list[dict[str, Any]], args: argparse.Namespace, when: datetime, loads: tuple[str, str],
               versions: str) -> None:
    cmd = " ".join([COMMAND, *args.argv])
    lease = getattr(outbox, "LEASE", None)
    mark_delay = getattr(outbox, "MARK_DELAY", None)
    lease_text = f"{lease.total_seconds():g} s" if lease is not None else "its lease"
    body = [
        MARK, "", "## Faults (kill -9, Redis and PostgreSQL outages)", "",
        f"Generated by `{cmd}` on {when:%Y-%m-%d %H:%M %Z} (git {_git()}; {len(os.sched_getaffinity(0))} CPUs, "
        f"{_cpu_model()}; {versions}; load average before {loads[0]}, after {loads[1]} — other people's jobs share "
        "this machine).", "",
        f"Two worker processes (`wuwei run`, each on its own port) share a private PostgreSQL cluster and a private "
        f"Redis made by the script. {args.residents} simulated residents run the whole loop concurrently through "
        "the simulator API (intake, two team members press 接单 at once, 出发, 完成服务, ⭐⭐⭐⭐⭐, 不用了) "
        "on the real clock with every team on duty around the clock; a call that meets a connection error, "
        "a timeout or a 5xx is sent again, same `event_id`, to the other worker. *kill*: every "
        f"{args.every:g} s a random worker gets SIGKILL and is started again at once ({args.kills} times; a kill "
        f"waits until the other worker is healthy); *kill-jitter*: the same with intervals of {args.every:g} ± "
        f"{args.jitter:g} s. *redis* / *postgres*: no kills, the server is stopped for {args.outage:g} s under the "
        "same load. See the module docstring of `bench/chaos.py` for every definition; \"wait\" is from a call's "
        "first attempt until the client saw the answer it expected.", "",
        *table(ms), "", "### What the numbers come from", "",
        f"* **A killed worker's messages wait for its lease.** The worker that handles an event writes the "
        f"event's outbox rows leased to itself and sends them from memory after the commit (`bot/outbox.py`, "
        f"`LEASE` = {lease_text}). When it is killed, those rows — and every later row of the same chats, which "
        "queue behind them to keep the order — wait until the lease runs out; only then does the other worker "
        "take them. So a chat whose answer was in flight at a kill waits about the lease, and longer when the "
        "worker that takes the rows over is killed in turn.",
        "* **A message sent but not yet marked is sent again.** A row is marked sent after the channel took it"
        + (f" (marks are written in batches, `MARK_DELAY` = {mark_delay * 1000:g} ms)" if mark_delay else "")
        + "; a worker killed between the two leaves the row unmarked, and it goes out a second time when its lease "
        "ends (at least once, by design). The evidence lists each repeat with how long before a kill its first "
        "copy was shown.",
        "* **A taken-over row can be hit by the next kill too.** The worker that re-sends a dead worker's rows "
        "when their lease ends may itself be killed right then, and the rows wait another lease: the waits of "
        "about 20 and 30 s in the evidence are such chains. Kills exactly --every s apart, with a lease that is a "
        "multiple of --every, make that coincidence likelier, so *kill-jitter* repeats the scenario with "
        "irregular intervals.",
        "* **Redis carries only the Telegram / WeCom rate limits.** The simulator channel sends without the "
        "limiter, so the *redis* scenario shows that nothing else in a worker depends on Redis; it does not "
        "exercise the limiter's fallback (the Telegram and WeCom tests do).",
        "* **While PostgreSQL is down most calls get 500, not 503.** The simulator reads and writes its chat log "
        "in the bot's database (`SimulatorChannel._chat_type`, `_send`, `_press`) before the dispatcher, whose "
        "failures are the 503s; both are retried here.",
        "", "### Evidence", "", *evidence(ms),
    ]
    write_section(MARK, body[1:])


# ---- main --------------------------------------------------------------------------------------------

async def amain(args: argparse.Namespace) -> int:
    if not (PG_BIN / "initdb").exists():
        print(f"no PostgreSQL binaries in {PG_BIN} (set WUWEI_PG_BIN)", file=sys.stderr)
        return 2
    wanted = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    when, load_before = datetime.now().astimezone(), load()
    base = Path(tempfile.mkdtemp(prefix="wuwei-chaos-"))
    servers = Servers(base, args.pg_port, args.redis_port)
    results: list[dict[str, Any]] = []
    current: Scenario | None = None
    try:
        await asyncio.to_thread(servers.init)
        await asyncio.to_thread(servers.start_pg)
        await asyncio.to_thread(servers.start_redis)
        conn = await asyncpg.connect(servers.dsn_base + "/postgres", timeout=10)
        pg_version = await conn.fetchval("SHOW server_version")
        await conn.close()
        versions = f"PostgreSQL {pg_version}, Redis {_redis_version()}"
        for name in wanted:
            current = Scenario(name, servers, base, args)
            print(f"[{name}] starting two workers on a fresh database ...", flush=True)
            await current.setup()
            print(f"[{name}] {args.residents} residents; " + (
                f"{args.kills} kills every {args.every:g} s" if name == "kill" else
                f"{args.kills} kills {args.every:g} ± {args.jitter:g} s apart" if name == "kill-jitter" else
                f"{name} stopped for {args.outage:g} s after {args.warmup:g} s") + " ...", flush=True)
            try:
                await current.execute()
            finally:
                await current.stop_workers()
            if not servers.pg_running():
                await asyncio.to_thread(servers.start_pg)
            m = measures(current, await analyse(current))
            results.append(m)
            print("\n".join(table([m])), flush=True)
            print("\n".join(evidence([m])), flush=True)
            current = None
    except BenchError as exc:
        print(f"\nBENCHMARK ABORTED: {exc}", file=sys.stderr)
        return 1
    finally:
        if current is not None:
            await current.stop_workers()
        await asyncio.to_thread(servers.cleanup)
        if args.keep:
            print(f"kept {base} (worker logs, postgres.log)")
        else:
            shutil.rmtree(base, ignore_errors=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, ensure_ascii=False, indent=1, default=str), encoding="utf-8")
    if args.docs:
        write_docs(results, args, when, (load_before, load()), versions)
        print(f"wrote {DOCS.relative_to(ROOT)}")
    return 0


def _redis_version() -> str:
    out = subprocess.run([REDIS_SERVER, "--version"], capture_output=True, text=True, timeout=10).stdout
    m = re.search(r"v=(\S+)", out)
    return m[1] if m else "?"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.chaos", description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=30, help="kill -9 this many times (scenario kill)")
    parser.add_argument("--every", type=float, default=5.0, help="seconds between kills")
    parser.add_argument("--residents", type=int, default=20, help="concurrent simulated residents")
    parser.add_argument("--jitter", type=float, default=2.0,
                        help="scenario kill-jitter: each interval is --every ± this many seconds (uniform)")
    parser.add_argument("--outage", type=float, default=10.0, help="seconds Redis / PostgreSQL stay down")
    parser.add_argument("--warmup", type=float, default=10.0, help="load before the outage, seconds")
    parser.add_argument("--after", type=float, default=20.0, help="load after the outage, seconds")
    parser.add_argument("--scenarios", default="kill,redis,postgres",
                        help="comma-separated, of: kill, kill-jitter (the kills --every ± --jitter s apart), redis, "
                             "postgres")
    parser.add_argument("--pg-port", type=int, default=5433, help="port of the private PostgreSQL cluster")
    parser.add_argument("--redis-port", type=int, default=6380, help="port of the private Redis")
    parser.add_argument("--seed", default="wuwei", help="random seed (kills, racers)")
    parser.add_argument("--docs", action="store_true", help=f"write the Faults section of {DOCS.relative_to(ROOT)}")
    parser.add_argument("--json", metavar="FILE", help="also write the measures as JSON")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (logs) for inspection")
    argv = sys.argv[1:] if argv is None else argv
    args = parser.parse_args(argv)
    args.argv = argv
    bad = [s for s in args.scenarios.split(",") if s.strip() and s.strip() not in SCENARIOS]
    if bad:
        parser.error(f"unknown scenarios {bad}: choose from {', '.join(SCENARIOS)}")
    if args.residents < 1 or args.kills < 0 or args.every <= 0 or args.outage < 0:
        parser.error("--residents must be at least 1, --kills and --outage not negative, --every positive")
    if "kill-jitter" in args.scenarios and not 0 <= args.jitter < args.every:
        parser.error("--jitter must be at least 0 and less than --every")
    os.chdir(ROOT)

    def terminate(signum: int, frame: object) -> None:
        raise KeyboardInterrupt  # so every finally runs and stops what we started

    signal.signal(signal.SIGTERM, terminate)
    return asyncio.run(amain(args))


if __name__ == "__main__":
    sys.exit(main())
