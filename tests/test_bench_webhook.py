"""bench.webhook in miniature: the PTB anchor and the bare handler under 0.3 s of load from the small aiohttp
client (no wrk needed), and the benchmark scripts' sections of docs/benchmarks.md kept apart."""
from __future__ import annotations

from pathlib import Path

from bench import channels, webhook
from bench.run import write_section


async def test_anchor_and_bare_under_a_short_load() -> None:
    args = webhook.parse(["--targets", "anchor,bare", "--seconds", "0.3", "--rounds", "1", "--load", "client",
                          "--connections", "4", "--drain", "60"])
    rep = await webhook.bench(args)
    anchor, bare = rep.of("anchor")[0], rep.of("bare")[0]
    assert anchor.expected == 1  # the privacy notice with its buttons: what wuwei sends a new resident too
    assert anchor.load.ok > 0 and anchor.load.non2xx == 0 and anchor.load.errors == 0
    assert anchor.accepted is not None and anchor.accepted >= anchor.load.ok
    assert anchor.complete and anchor.exact == anchor.accepted and anchor.extra == 0
    assert bare.load.ok > 0 and bare.load.non2xx == 0 and bare.accepted is None
    assert "PTB ConversationHandler" in "\n".join(rep.summary_table())


def test_each_script_replaces_only_its_own_section(tmp_path: Path) -> None:
    docs = tmp_path / "benchmarks.md"
    docs.write_text("# Benchmarks\n\nbench.run's page\n", encoding="utf-8")
    write_section(channels.MARK, ["## Channels", "", "channels v1"], docs)
    write_section(webhook.MARK, ["## Telegram webhook throughput", "", "webhook v1"], docs)
    write_section(channels.MARK, ["## Channels", "", "channels v2"], docs)
    text = docs.read_text(encoding="utf-8")
    assert "bench.run's page" in text and "channels v2" in text and "webhook v1" in text
    assert "channels v1" not in text and text.count(channels.MARK) == 1
    write_section(webhook.MARK, ["## Telegram webhook throughput", "", "webhook v2"], docs)
    text = docs.read_text(encoding="utf-8")
    assert text.index("bench.run's page") < text.index("channels v2") < text.index("webhook v2")
    assert "webhook v1" not in text and text.count(webhook.MARK) == 1
