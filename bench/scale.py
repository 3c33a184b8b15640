"""Per-event latency with the demo county's data against ten times as much (issue 9: ≤ 1.2×).

    .venv/bin/python -m bench.scale [--backend sqlite|postgres|both] [--residents N] [--docs]

For each backend and size, the real bot is started in-process by bench.run's TimedSim (the simulator API,
shipped config, frozen clock Monday 10:00), then a county's worth of data is written straight into its
database (`seed`, factor 1 = "demo", factor 10 = "10x"): per factor unit 25 volunteers (the config's 25,
then more in the same teams, each with a membership and a simulator identity), 30 open requests (a
resident with an identity, a route, two history entries, the group card in the message ledger, three sent
outbox rows, pending remind/escalate timers) and 150 finished ones (the same plus a claim, fired timers and
ten processed event ids each). Then at a fixed modest load — N residents, 2 at a time — each resident walks
the intake form and the on-duty volunteer presses 接单 on the new card. Measured client-side: every typed
message of the intake (POST /sim/api/send: the event handled and its reply delivered) and every 接单 press
(POST /sim/api/press: claimed and answered). Ratio = 10x / demo, per percentile.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import insert, select

from bench.run import (
    CASES,
    ROOT,
    Backend,
    BenchError,
    bot,
    load,
    machine,
    open_backend,
    pct,
    write_section,
)
from storage.db import Database
from storage.models import (
    Claim,
    GroupBinding,
    HelpRequest,
    Identity,
    LedgerEntry,
    OutboxMessage,
    Person,
    ProcessedEvent,
    RequestEvent,
    RequestRoute,
    TeamMember,
    Timer,
)

MARK = "<!-- bench.scale: everything below, up to the next bench marker, is written by " \
       "`python -m bench.scale --docs` -->"
COMMAND = ".venv/bin/python -m bench.scale"
UNIT = {"volunteers": 25, "open": 30, "finished": 150}
TARGET = 1.2


async def seed(database_url: str, factor: int, now: datetime) -> dict[str, int]:
    """Write `factor` units of a county's data (see the module docstring); how many rows of each kind."""
    db = Database(database_url)
    counts: dict[str, int] = {}
    try:
        async with db.transaction() as s:
            teams = [t for (t,) in (await s.execute(select(GroupBinding.team_id).where(
                GroupBinding.channel == "simulator"))).all()]
            groups = {t: c for t, c in (await s.execute(select(GroupBinding.team_id, GroupBinding.chat_id).where(
                GroupBinding.channel == "simulator"))).all()}
            vols = list((await s.execute(select(Person.id).where(Person.is_volunteer.is_(True)))).scalars())
            config_volunteers = len(vols)
            extra = UNIT["volunteers"] * factor - config_volunteers
            vols += [f"v-seed{i:05d}" for i in range(max(0, extra))]
            people, members, idents = [], [], []
            for i in range(max(0, extra)):
                pid = f"v-seed{i:05d}"
                people.append({"id": pid, "name": f"志愿者{i}", "is_volunteer": True, "trained": True,
                               "created_at": now})
                members.append({"team_id": teams[i % len(teams)], "person_id": pid})
                idents.append({"channel": "simulator", "external_id": pid, "person_id": pid, "chat_id": pid,
                               "display_name": f"志愿者{i}"})
            n_open, n_done = UNIT["open"] * factor, UNIT["finished"] * factor
            requests = []
            for i in range(n_open + n_done):
                rid = f"r-seed{i:06d}"
                people.append({"id": rid, "name": "居民", "is_resident": True, "created_at": now})
                idents.append({"channel": "simulator", "external_id": rid, "person_id": rid, "chat_id": rid,
                               "display_name": "居民"})
                done = i >= n_open
                team = teams[i % len(teams)]
                requests.append({
                    "number": f"S{i:07d}", "resident_id": rid, "channel": "simulator", "chat_id": rid,
                    "locale": "zh_CN", "category": "elderly", "service": "meal", "station_id": "s-xingfu",
                    "for_whom": "self", "when_kind": "asap", "when_at": now, "when_text": "尽快",
                    "address": "幸福路1号", "phone": "13800000000", "description": "需要帮助",
                    "urgent": False, "status": "closed" if done else "open", "team_id": team,
                    "escalation_level": 0, "volunteer_id": vols[i % len(vols)] if done else None,
                    "created_at": now - timedelta(days=1 + i % 30),
                    "closed_at": now - timedelta(days=i % 30) if done else None})
            await s.execute(insert(Person), people)
            await s.execute(insert(TeamMember), members) if members else None
            await s.execute(insert(Identity), idents)
            ids = (await s.execute(insert(HelpRequest).returning(HelpRequest.id, sort_by_parameter_order=True),
                                   requests)).scalars().all()
            routes, history, ledger, outbox, timers, claims, events = [], [], [], [], [], [], []
            for k, (rid, req) in enumerate(zip(ids, requests, strict=True)):
                done = req["status"] == "closed"
                routes.append({"request_id": rid, "team_id": req["team_id"], "reason": "dispatch", "at": now})
                history += [{"request_id": rid, "at": now, "actor_id": req["resident_id"], "action": a, "detail": {}}
                            for a in ("created", "finished" if done else "dispatched")]
                chat = groups.get(req["team_id"], "grp-none")
                ledger.append({"request_id": rid, "channel": "simulator", "chat_id": chat,
                               "message_id": f"seed-{k}", "kind": "group_card", "created_at": now})
                outbox += [{"created_at": now, "channel": "simulator", "chat_id": c, "kind": "message",
                            "payload": {"text": "历史消息"}, "status": "sent", "attempts": 0, "next_attempt_at": now,
                            "sent_at": now} for c in (req["chat_id"], chat, req["chat_id"])]
                timers += [{"due_at": now + timedelta(days=1), "kind": kind, "request_id": rid, "payload": {},
                            "fired_at": now if done else None, "cancelled": False} for kind in ("remind", "escalate")]
                if done and req["volunteer_id"]:
                    claims.append({"request_id": rid, "volunteer_id": req["volunteer_id"], "claimed_at": now,
                                   "via": "press"})
                if done:
                    events += [{"channel": "simulator", "event_id": uuid.uuid4().hex, "at": now} for _ in range(10)]
            for model, rows in ((RequestRoute, routes), (RequestEvent, history), (LedgerEntry, ledger),
                                (OutboxMessage, outbox), (Timer, timers), (Claim, claims), (ProcessedEvent, events)):
                if rows:
                    await s.execute(insert(model), rows)
                counts[model.__tablename__] = len(rows)
            counts["volunteers"] = config_volunteers + max(0, extra)
            counts["open requests"] = n_open
            counts["finished requests"] = n_done
    finally:
        await db.dispose()
    return counts


@dataclass
class Sample:
    """One backend and size."""

    backend: str
    size: str
    counts: dict[str, int]
    sends: list[float]  # seconds per typed intake message
    claims: list[float]  # seconds per 接单 press


async def measure(backend: Backend, factor: int, residents: int) -> Sample:
    async with bot(backend) as sim:
        counts = await seed(backend.database_url, factor, sim.clock.now())
        sim.calls.clear()
        gate = asyncio.Semaphore(2)
        claims: list[float] = []

        async def one(i: int) -> None:
            category, service, community, group, volunteer = CASES[i % len(CASES)]
            async with gate:
                number = await sim.ask_for_help(f"r-scale{i:03d}", category, service, community)
                message_id, data = await sim.find_button(group, "接单", contains=number)
                t0 = time.perf_counter()
                answer = await sim.press_data(group, volunteer, message_id, data)
                claims.append(time.perf_counter() - t0)
                if not answer or "接单成功" not in answer:
                    raise BenchError(f"{volunteer} pressed 接单 on {number}: {answer!r}")

        await asyncio.gather(*(one(i) for i in range(residents)))
        sends = [c.seconds for c in sim.calls if c.kind == "send"]
    return Sample(backend.name, "demo" if factor == 1 else f"{factor}x", counts, sends, claims)


def _ms(values: list[float], p: float) -> float:
    return pct(values, p) * 1000


def table(samples: list[Sample]) -> list[str]:
    out = ["| backend | event | demo p50 / p99 ms | bigger p50 / p99 ms | ratio p50 / p99 | target ≤ 1.2× |",
           "|---|---|---|---|---|---|"]
    by = {(s.backend, s.size): s for s in samples}
    for name in dict.fromkeys(s.backend for s in samples):
        small = by.get((name, "demo"))
        big = next((s for s in samples if s.backend == name and s.size != "demo"), None)
        if not small or not big:
            continue
        for label, attr in (("typed intake message → reply delivered", "sends"), ("接单 press → answer", "claims")):
            a, b = getattr(small, attr), getattr(big, attr)
            r50, r99 = _ms(b, 50) / _ms(a, 50), _ms(b, 99) / _ms(a, 99)
            ok = "met" if max(r50, r99) <= TARGET else "**NOT MET**"
            out.append(f"| {name} | {label} (n={len(a)}, {len(b)}) | {_ms(a, 50):.0f} / {_ms(a, 99):.0f} | "
                       f"{_ms(b, 50):.0f} / {_ms(b, 99):.0f} | **{r50:.2f}× / {r99:.2f}×** | {ok} |")
    return out


def sizes_table(samples: list[Sample]) -> list[str]:
    seen = {s.size: s.counts for s in samples}
    keys = list(next(iter(seen.values())))
    out = ["| rows seeded | " + " | ".join(seen) + " |", "|---" * (len(seen) + 1) + "|"]
    out += [f"| {k} | " + " | ".join(str(c.get(k, 0)) for c in seen.values()) + " |" for k in keys]
    return out


async def amain(args: argparse.Namespace) -> tuple[list[Sample], tuple[str, str] | None]:
    wanted = ["sqlite", "postgres"] if args.backend == "both" else [args.backend]
    samples: list[Sample] = []
    pg = None
    for name in wanted:
        backend, _, versions = await open_backend(name)
        if backend is None:
            continue
        pg = versions or pg
        try:
            for factor in (1, args.factor):
                print(f"[{name}] factor {factor}: {args.residents} residents, 2 at a time ...", flush=True)
                samples.append(await measure(backend, factor, args.residents))
        finally:
            await backend.close()
    return samples, pg


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.scale", description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--residents", type=int, default=16)
    parser.add_argument("--factor", type=int, default=10, help=argparse.SUPPRESS)
    parser.add_argument("--docs", action="store_true")
    argv = sys.argv[1:] if argv is None else argv
    args = parser.parse_args(argv)
    os.chdir(ROOT)
    when, before = datetime.now().astimezone(), load()
    try:
        samples, pg = asyncio.run(amain(args))
    except (BenchError, AssertionError) as exc:
        print(f"\nBENCHMARK ABORTED: {exc}", file=sys.stderr)
        return 1
    rows = table(samples)
    print("\n" + "\n".join(rows) + "\n\n" + "\n".join(sizes_table(samples)))
    if args.docs and samples:
        facts = dict(machine(pg))
        write_section(MARK, [
            "## Latency with ten times the data", "",
            f"Generated by `{' '.join([COMMAND, *argv])}` on {when:%Y-%m-%d %H:%M %Z}, code {facts['code']}; load "
            f"average before {before}, after {load()} (a shared 2-core machine). See the docstring of "
            "`bench/scale.py`: the bot in-process (simulator API, frozen clock), a county's data seeded straight "
            f"into the database at factor 1 (demo) and {args.factor}, then {args.residents} residents, 2 at a "
            "time, each walking the intake form, and the on-duty volunteer pressing 接单 on the new card. "
            "Percentiles are nearest-rank (p99 of fewer than 100 samples is near the maximum: noisy).", "",
            *rows, "", *sizes_table(samples)])
        print("wrote docs/benchmarks.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
