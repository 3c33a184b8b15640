"""The channel seam: the core asks about channels through their traits (bot/channels/registry.py), never by
name, so adding a channel touches only bot/channels/."""
from __future__ import annotations

import ast
from pathlib import Path

from bot.channels import registry
from handlers.events import NO_TRAITS, ChannelTraits
from tests.simclient import demo_config

ROOT = Path(__file__).resolve().parent.parent
PLATFORMS = {"telegram", "wecom", "wecom_kf", "wecom_bot", "simulator"}


def test_handlers_name_no_channel() -> None:
    named = []
    for path in sorted((ROOT / "handlers").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in PLATFORMS:
                named.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.value!r}")
    assert named == []


def test_storage_names_no_channel() -> None:
    """Repositories, retention and erasure learn a channel's tables from its traits (models.py declares them)."""
    named = []
    for path in sorted((ROOT / "storage").glob("*.py")):
        if path.name == "models.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in PLATFORMS:
                named.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.value!r}")
    assert named == []


def test_traits_by_channel() -> None:
    def robot(enabled: bool) -> object:
        return lambda d: d.update({"channels": {"wecom": {"aibot": {"enabled": enabled, "bot_id": "b", "secret": "s",
                                                                    "fallback_teams": ["t-xingfu-elderly"]}}}})

    on = registry.traits(demo_config("sqlite+aiosqlite:///:memory:", None, robot(True)))  # type: ignore[arg-type]
    assert on["wecom"] == ChannelTraits(fanout=True)  # files: media/upload, then a file message
    assert not on["wecom_kf"].no_files  # the same for residents in 微信客服
    assert on["wecom_bot"].no_files  # a team's group never gets a resident's export
    assert on["wecom_bot"].replaces_private == "wecom"
    assert on["wecom_bot"].keep_private_for == frozenset({"t-xingfu-elderly"})
    assert on.get("telegram", NO_TRAITS) == NO_TRAITS
    assert on["simulator"].transcript is not None and on["wecom_kf"].transcript is not None  # purged, erased
    off = registry.traits(demo_config("sqlite+aiosqlite:///:memory:", None, robot(False)))  # type: ignore[arg-type]
    assert off["wecom_bot"].replaces_private is None  # a robot that does not run replaces nothing
