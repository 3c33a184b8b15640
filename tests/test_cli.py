"""The `wuwei` command as a person runs it: check-config, db upgrade, run — errors without tracebacks."""
from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from pathlib import Path

import aiohttp
import yaml

ROOT = Path(__file__).resolve().parent.parent


def wuwei(*args: str, cwd: Path = ROOT, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run `python -m bot` (what the `wuwei` script runs) and capture its output."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "bot", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)


def write_config(tmp_path: Path, change: dict[str, object] | None = None) -> Path:
    data = yaml.safe_load((ROOT / "config.yaml").read_text(encoding="utf-8"))
    data["storage"] = {"database_url": f"sqlite+aiosqlite:///{tmp_path}/db/wuwei.db", "redis_url": None}
    data.update(change or {})
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


def test_check_config_accepts_the_shipped_file() -> None:
    res = wuwei("check-config")
    assert res.returncode == 0, res.stderr
    assert "config.yaml: OK" in res.stdout


def test_bad_config_names_the_key_without_traceback(tmp_path: Path) -> None:
    path = write_config(tmp_path, {"colour": "red"})
    for command in (["check-config"], ["run"], ["db", "upgrade"]):
        res = wuwei("--config", str(path), *command)
        assert res.returncode == 2
        assert "colour: unknown key" in res.stderr and "Traceback" not in res.stderr
    res = wuwei("--config", str(tmp_path / "missing.yaml"), "check-config")
    assert res.returncode == 2 and "no such config file" in res.stderr


def test_db_upgrade_creates_the_database(tmp_path: Path) -> None:
    path = write_config(tmp_path)
    res = wuwei("--config", str(path), "db", "upgrade")
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "db" / "wuwei.db").is_file()
    assert wuwei("db", "upgrade", "--config", str(path)).returncode == 0  # idempotent; --config after too


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_run_serves_the_simulator_and_stops_cleanly(tmp_path: Path) -> None:
    port = _free_port()
    path = write_config(tmp_path, {"http": {"host": "127.0.0.1", "port": port}})
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "bot", "--config", str(path), "run",
                                                cwd=ROOT, env=env, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 60)
        assert f"http://127.0.0.1:{port}/" in line.decode()
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{port}/") as r:
                assert r.status == 200
            async with http.post(f"http://127.0.0.1:{port}/sim/api/send",
                                 json={"chat_id": "r-cli", "user_id": "r-cli", "text": "你好"}) as r:
                assert r.status == 200
            async with http.get(f"http://127.0.0.1:{port}/sim/api/chats/r-cli/messages") as r:
                texts = [m["text"] for m in await r.json()]
        assert any("隐私说明" in t for t in texts)  # a new resident's first answer: the privacy notice
    finally:
        proc.terminate()
        _, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, err.decode()
    assert "13812345678" not in err.decode()


async def test_simulator_can_be_switched_off(tmp_path: Path) -> None:
    port = _free_port()
    path = write_config(tmp_path, {"http": {"host": "127.0.0.1", "port": port}, "simulator": {"enabled": False}})
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "bot", "--config", str(path), "run",
                                                cwd=ROOT, env=env, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    try:
        assert proc.stdout is not None
        await asyncio.wait_for(proc.stdout.readline(), 60)
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{port}/") as r:
                assert r.status == 404
            async with http.get(f"http://127.0.0.1:{port}/healthz") as r:
                assert (await r.json())["channels"] == []
    finally:
        proc.terminate()
        await asyncio.wait_for(proc.communicate(), 30)


def test_linkcode_bootstraps_the_first_coordinator(tmp_path: Path) -> None:
    """Before anyone is linked on a real platform, the operator prints the first coordinator's code."""
    import re

    from sqlalchemy import create_engine, text

    path = write_config(tmp_path)
    res = wuwei("linkcode", "c-zhao", "--config", str(path))
    assert res.returncode == 0, res.stderr
    code = re.search(r"/link ([A-Z0-9]{8})", res.stdout)
    assert code, res.stdout
    engine = create_engine(f"sqlite:///{tmp_path}/db/wuwei.db")
    with engine.connect() as conn:
        row = conn.execute(text("SELECT person_id, used_at FROM link_codes WHERE code = :c"),
                           {"c": code.group(1)}).one()
    engine.dispose()
    assert row == ("c-zhao", None)
    res = wuwei("linkcode", "nobody", "--config", str(path))
    assert res.returncode == 2 and "no volunteer or coordinator 'nobody'" in res.stderr
    assert "Traceback" not in res.stderr
