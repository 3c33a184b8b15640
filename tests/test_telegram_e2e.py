"""The whole five-order loop on Telegram end to end (fake Bot API), by long polling and by webhook."""
from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests import test_e2e_loop as loop
from tests.conftest import Backend
from tests.fakes.telegram_sim import TgSim


@pytest.fixture(params=["polling", "webhook"])
async def tg(backend: Backend, request: pytest.FixtureRequest) -> AsyncIterator[TgSim]:
    """A bot on Telegram in this transport mode, with c-zhao linked."""
    sim = await TgSim.create(backend, request.param)
    try:
        await sim.bootstrap("c-zhao")
        yield sim
    finally:
        await sim.close()


@pytest.mark.parametrize("case", sorted(loop.CASES))
async def test_whole_loop_on_telegram(tg: TgSim, case: str) -> None:
    _, _, _, group, volunteer = loop.CASES[case]
    team = {"grp-xingfu-elderly": "t-xingfu-elderly", "grp-xingfu-children": "t-xingfu-children",
            "grp-guangming-hardship": "t-guangming-hardship"}[group]
    await tg.link(volunteer)
    await tg.bind(group, team)
    await loop.test_whole_loop(tg, case)  # the simulator's scenario, unchanged, on Telegram
