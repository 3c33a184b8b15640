"""Measure the crisis detector (flows.safety.detect) on the labelled set tests/data/crisis_eval.jsonl.

    .venv/bin/python -m bench.crisis [--docs] [--rounds N]

For each split (tune: the rules were adjusted and the models trained on it; test: a blind set, held out) prints
the self-harm recall, the false-alarm rate (share of the messages that are not self-harm which are flagged
self-harm), the same two for medical, the confusion counts, the test-split misses counted per kind (never their
text: reading the held-out misses invites tuning on them), and the time per message (mean over N rounds of the
whole set, and the slowest single call).

With --docs, writes the "Crisis detection" section of docs/benchmarks.md below its own marker. The page is
shared: bench.run rewrites everything above the first `<!-- bench.` marker and keeps the rest, bench.channels
keeps everything above its own marker; this script replaces only the text from its marker to the next one.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from bench.run import _git, write_section
from flows import safety

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data" / "crisis_eval.jsonl"
DOCS = ROOT / "docs" / "benchmarks.md"
MARK = "<!-- bench.crisis: everything from here to the next bench marker is written by `python -m bench.crisis` -->"
LABELS = ("self_harm", "medical", "none")


@dataclass
class SplitResult:
    """Counts of one split: confusion[(label, predicted)], predicted being 'none' for None."""

    name: str
    confusion: Counter[tuple[str, str]] = field(default_factory=Counter)
    misses: Counter[tuple[str, str, str]] = field(default_factory=Counter)  # label, predicted, kind

    def total(self, label: str) -> int:
        return sum(n for (lab, _), n in self.confusion.items() if lab == label)

    def recall(self, label: str) -> tuple[int, int]:
        return self.confusion[(label, label)], self.total(label)

    def false_alarms(self, label: str) -> tuple[int, int]:
        others = [lab for lab in LABELS if lab != label]
        return sum(self.confusion[(lab, label)] for lab in others), sum(self.total(lab) for lab in others)


TARGET = (0.95, 0.10)  # self-harm recall, false alarms on the test split (the issue "Care and privacy")


def met(r: SplitResult) -> bool:
    (hit, n), (fa, m) = r.recall("self_harm"), r.false_alarms("self_harm")
    return hit >= TARGET[0] * n and fa <= TARGET[1] * m


def load(path: Path = DATA) -> list[dict[str, str]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def evaluate(rows: list[dict[str, str]]) -> dict[str, SplitResult]:
    out = {name: SplitResult(name) for name in ("tune", "test")}
    for row in rows:
        got = safety.detect(row["text"]) or "none"
        res = out[row["split"]]
        res.confusion[(row["label"], got)] += 1
        if got != row["label"]:
            res.misses[(row["label"], got, row["kind"])] += 1
    return out


@dataclass
class Timing:
    """Milliseconds per detect() call."""

    mean: float  # over every call of every round
    slowest: float  # the slowest message, taking each message's median over the rounds
    worst: float  # the slowest single call (on a shared machine: mostly the scheduler, not the detector)
    long: float  # one long message of LONG_CHARS characters (the set's texts run together), best of the rounds
    chatter: float  # LONG_CHARS characters of everyday chatter no rule settles (every cue, both models run)
    rounds: int


LONG_CHARS = 2000  # the issue: < 5 ms a message, even a long one


def timing(rows: list[dict[str, str]], rounds: int) -> Timing:
    texts = [r["text"] for r in rows]
    calls: dict[str, list[float]] = {text: [] for text in texts}
    for _ in range(rounds):
        for text in texts:
            t0 = time.perf_counter()
            safety.detect(text)
            calls[text].append(time.perf_counter() - t0)
    every = [c for cs in calls.values() for c in cs]
    def best_of(text: str) -> float:
        text = (text * (LONG_CHARS // len(text) + 1))[:LONG_CHARS]
        best = math.inf
        for _ in range(max(rounds, 20)):
            t0 = time.process_time()  # this process's CPU: what the detector costs, not other jobs' turns
            safety.detect(text)
            best = min(best, time.process_time() - t0)
        return best

    return Timing(1000 * statistics.fmean(every), 1000 * max(statistics.median(cs) for cs in calls.values()),
                  1000 * max(every), 1000 * best_of("，".join(texts)), 1000 * best_of(CHATTER), rounds)


CHATTER = "今天天气不错，上午去菜市场买了点青菜和豆腐，下午在家看电视，孙子放学回来写作业。隔壁王阿姨送来饺子。"


def timing_text(ms: Timing) -> str:
    return (f"mean {ms.mean:.3f} ms, slowest message {ms.slowest:.3f} ms (its median over {ms.rounds} rounds), "
            f"slowest single call {ms.worst:.2f} ms (the first call loads the models); one message of {LONG_CHARS} "
            f"characters: the set's texts run together {ms.long:.2f} ms, everyday chatter that no rule settles "
            f"{ms.chatter:.2f} ms (CPU time, best of the rounds)")


def _pct(pair: tuple[int, int]) -> str:
    n, d = pair
    return f"{100 * n / d:.1f} % ({n}/{d})" if d else "-"


def table(results: dict[str, SplitResult]) -> list[str]:
    rows = ["| split | self-harm recall | self-harm false alarms | medical recall | medical false alarms |",
            "|---|---|---|---|---|"]
    for r in results.values():
        rows.append(f"| {r.name} | {_pct(r.recall('self_harm'))} | {_pct(r.false_alarms('self_harm'))} | "
                    f"{_pct(r.recall('medical'))} | {_pct(r.false_alarms('medical'))} |")
    return rows


def confusion(r: SplitResult) -> list[str]:
    rows = [f"| {r.name}: label ↓ / detected → | self_harm | medical | none |", "|---|---|---|---|"]
    for lab in LABELS:
        rows.append(f"| {lab} | " + " | ".join(str(r.confusion[(lab, got)]) for got in LABELS) + " |")
    return rows


def section(rows: list[dict[str, str]], results: dict[str, SplitResult], ms: Timing, argv: list[str]) -> list[str]:
    when = datetime.now().astimezone()
    sizes = Counter((r["label"], r["split"]) for r in rows)
    size_text = ", ".join(f"{lab} {sizes[(lab, 'tune')]} + {sizes[(lab, 'test')]}" for lab in LABELS)
    test = results["test"]
    misses = [f"* {lab} → {got} ({kind}): {n}" for (lab, got, kind), n in sorted(test.misses.items())] or ["* none"]
    return [
        "## Crisis detection", "",
        f"Generated by `{' '.join(['.venv/bin/python -m bench.crisis', *argv])}` on {when:%Y-%m-%d %H:%M %Z} "
        f"(git {_git()}, Python {platform.python_version()}, load average "
        f"{', '.join(f'{x:.2f}' for x in os.getloadavg())}).", "",
        f"`flows.safety.detect` on `tests/data/crisis_eval.jsonl`: {len(rows)} messages, tune + test per label: "
        f"{size_text}. Tune: every row the rules were written against and the two models (self-harm: "
        "flows/crisis_model.json, medical: flows/medical_model.json; bench/train_crisis.py) trained on, their "
        "thresholds chosen by cross-validation there. Test: a blind set "
        "written by someone who never saw the rules, the model or any tune row (from CARE.md and CONVERSATION.md "
        "only), never used for tuning — the closest this project has to messages nobody on the team wrote. A "
        "false alarm is a message of another label flagged as this one.",
        "", *table(results), "",
        f"Target on the test split: self-harm recall ≥ {TARGET[0]:.0%} with false alarms ≤ {TARGET[1]:.0%} — "
        f"{'met' if met(test) else '**not met**'}.", "",
        *confusion(results["tune"]), "", *confusion(test), "",
        f"Time per `detect()` call ({ms.rounds} rounds of the whole set, one process, this shared 2-core machine): "
        f"{timing_text(ms)}. The time grows linearly with the length of the message; the slowest single call is "
        "mostly the scheduler of this loaded machine (the same message's median is far lower).", "",
        "Misses and false alarms on the test split, counted per kind (their texts are not shown, so that "
        "nobody tunes on them):", "", *misses,
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.crisis", description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs", action="store_true", help=f"write the section of {DOCS.relative_to(ROOT)}")
    parser.add_argument("--rounds", type=int, default=20, help="passes over the set for the timing")
    argv = sys.argv[1:] if argv is None else argv
    args = parser.parse_args(argv)
    rows = load()
    results = evaluate(rows)
    ms = timing(rows, args.rounds)
    print(f"{len(rows)} messages from {DATA.relative_to(ROOT)}\n")
    print("\n".join(table(results)), "\n")
    for r in results.values():
        print("\n".join(confusion(r)), "\n")
    print(f"time per message: {timing_text(ms)}\n")
    print(f"target on the test split (recall >= {TARGET[0]:.0%}, false alarms <= {TARGET[1]:.0%}): "
          f"{'met' if met(results['test']) else 'NOT MET'}\n")
    print("test-split misses per kind (texts not shown):")
    for (lab, got, kind), n in sorted(results["test"].misses.items()):
        print(f"  {lab} → {got} ({kind}): {n}")
    if args.docs:
        write_section(MARK, section(rows, results, ms, argv), DOCS)
        print(f"\nwrote {DOCS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
