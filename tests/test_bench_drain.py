"""bench.drain in miniature: a small backlog drained under the real limits, the script's own accounting checked
(every message once, each chat in order), not its timings."""
from __future__ import annotations

from bench import drain
from bench.tg_stub import StubBotApi
from tests.conftest import Backend


async def test_a_small_backlog_is_sent_exactly_once_in_order(backend: Backend) -> None:
    stub = await StubBotApi().start()
    try:
        sizes = drain.Sizes(private=35, groups=1, group_messages=6)
        r = await drain.drain(backend.name, backend.database_url, backend.redis_url, backend.redis_prefix, sizes,
                              stub)
    finally:
        await stub.close()
    assert r.total == 41 and r.sent == 41
    assert (r.duplicates, r.missing, r.out_of_order, r.pending, r.failed) == (0, 0, 0, 0, 0) and r.exact
    assert [lim.messages for lim in r.limits] == [35, 6]  # the global limit's span, then the group's
    assert r.allowed == 41 and r.refused > 0  # the limits held some back: the drain was rate limited


def test_the_accounting_sees_a_repeat_a_gap_and_a_swap() -> None:
    expected = [(5, 0), (5, 1), (-7, 0)]
    log = [(0.0, 5, drain.text_of(5, 1)), (0.1, 5, drain.text_of(5, 0)), (0.2, 5, drain.text_of(5, 0)),
           (0.3, 9, "你好")]
    assert drain.account(log, expected) == (3, 1, 1, 1)  # sends, repeated, missing, chats out of order


def test_the_shortest_drain_follows_the_windows() -> None:
    assert drain.earliest(30, [(30, 1.0)]) == 0.0 and drain.earliest(31, [(30, 1.0)]) == 1.0
    assert drain.earliest(40, drain.group_rules(drain.GROUP_BASE)) == 76.0  # 4 per 4 s, then 20 per minute
