"""bench.scale in miniature: the county's data seeded at two sizes, every claim won, the samples counted (not timed)."""
from __future__ import annotations

from bench import scale
from bench.run import SqliteBackend


async def test_two_sizes_seeded_and_measured() -> None:
    backend = SqliteBackend()
    try:
        small = await scale.measure(backend, 1, 2)
        big = await scale.measure(backend, 3, 2)
    finally:
        await backend.close()
    assert small.counts["volunteers"] == 25 and big.counts["volunteers"] == 75
    assert (small.counts["open requests"], big.counts["open requests"]) == (30, 90)
    assert big.counts["claims"] == 3 * small.counts["claims"] == 450
    assert len(small.claims) == len(big.claims) == 2  # each resident's request claimed (measure checks 接单成功)
    assert len(small.sends) == len(big.sends) == 2 * 5  # 你好, date, address, phone, description per resident
    assert big.size == "3x" and "bigger" in scale.table([small, big])[0]
