"""A tiny run of bench.chaos: its own PostgreSQL cluster and Redis, two worker processes, 2 residents, 2 kills
2 s apart, 2-second Redis and PostgreSQL outages (about 45 s on a 2-core machine)."""
from __future__ import annotations

import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from bench.chaos import PG_BIN, REDIS_SERVER

ROOT = Path(__file__).resolve().parent.parent


def _missing() -> str | None:
    if not (PG_BIN / "initdb").exists():
        return f"no PostgreSQL binaries in {PG_BIN} (set WUWEI_PG_BIN to the folder with initdb and pg_ctl)"
    if shutil.which(REDIS_SERVER) is None:
        return "no redis-server on PATH"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root but there is no 'postgres' user to run initdb as"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_bench_chaos_tiny_run(tmp_path: Path) -> None:
    missing = _missing()
    if missing:
        if os.environ.get("CI", "").lower() in ("true", "1"):
            pytest.fail(f"bench.chaos needs PostgreSQL and Redis binaries: {missing}")
        pytest.skip(f"bench.chaos smoke test: {missing}")
    out = tmp_path / "chaos.json"
    cmd = [sys.executable, "-m", "bench.chaos", "--kills", "2", "--every", "2", "--residents", "2",
           "--outage", "2", "--warmup", "2", "--after", "3", "--pg-port", str(_free_port()),
           "--redis-port", str(_free_port()), "--json", str(out)]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        output, _ = proc.communicate(timeout=240)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGTERM)  # the bench stops its workers and servers on SIGTERM
        output, _ = proc.communicate(timeout=90)
        pytest.fail(f"bench.chaos took more than 240 s:\n{output[-3000:]}")
    assert proc.returncode == 0, output[-3000:]
    results = {m["scenario"]: m for m in json.loads(out.read_text(encoding="utf-8"))}
    assert sorted(results) == ["kill", "postgres", "redis"]
    assert results["kill"]["kills"] == 2
    assert results["postgres"]["outage_seconds"] >= 2 and results["redis"]["outage_seconds"] >= 2
    for name, m in results.items():
        # what the bot promises whatever the fault: every confirmed request stored, one claimer each
        assert m["loops_done"] > 0, (name, m["failed_loops"])
        assert m["lost"] == [], (name, m["lost"])
        assert m["confirmed"] == m["stored"] - m["unconfirmed_stored"], name
        assert m["dup_claims"] == 0, (name, m["dup_claim_rows"], m["multi_won"], m["double_details"])
        assert m["history_dups"] == [], (name, m["history_dups"])
        assert m["unexpected_exits"] == [], (name, m["unexpected_exits"])
    assert results["postgres"]["retried_not_recorded"] == []
