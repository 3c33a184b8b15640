"""Hand a kf resident to a person (kf/service_state/trans to 3) and back to the bot.

A resident typing 人工 / 转人工 (catalog words kw.human) is handed to a coordinator in charge of their
station who has a WeCom account — one switched on duty first. While a person serves, the bot stays
silent and what it would say is held. The session ending (session_status_change) or the servicer
sending /handback in the app gives the resident back to the bot, and the held messages follow.
"""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from sqlalchemy import select

from bot.channels.base import RetryLater, WaitForInbound
from bot.channels.wecom import store
from bot.channels.wecom.api import WecomError
from bot.outbox import release_held
from flows.i18n import t
from flows.types import Message
from storage import channel_repo, repo
from storage.models import DutyOverride, Identity, Person

if TYPE_CHECKING:
    from bot.channels.wecom.kf import KfChannel

log = logging.getLogger(__name__)
HUMAN, BOT, ENDED = 3, 1, 4
SESSION_TAKEN, SESSION_MOVED, SESSION_ENDED = 1, 2, 3  # session_status_change change_type


class Handover:
    """Hand-over between the bot and people for one kf account."""

    def __init__(self, kf: KfChannel) -> None:
        self.kf = kf

    async def request(self, user: str, msgid: str) -> None:
        """The resident asked for a person."""
        kf = self.kf
        async with kf.db.transaction() as s:
            if not await repo.mark_processed(s, kf.name, msgid, kf.clock.now()):
                return
            person = await repo.person_for_identity(s, kf.name, user)
            hint = await channel_repo.get_channel_state(s, kf.name, f"station:{user}")
            station = (person.station_id if person else None) or hint
            servicer = await self._pick(s, station)
        loc = kf.cfg.locale
        if servicer is None:
            await kf.say(user, Message(t(loc, "wecom.kf_no_human")))
            return
        try:  # tell the resident first: once a person serves, the bot may not write
            await kf.send(user, Message(t(loc, "wecom.kf_to_human")))
        except (WaitForInbound, WecomError, RetryLater) as exc:
            log.info("kf: hand-over notice not sent (%s)", type(exc).__name__)
        try:
            await kf.api.call("kf/service_state/trans", {"open_kfid": kf.open_kfid, "external_userid": user,
                                                         "service_state": HUMAN, "servicer_userid": servicer})
        except WecomError as exc:  # e.g. the coordinator is not a servicer of this kf account
            log.warning("kf: hand-over refused by WeCom (%s)", exc.errcode)
            await kf.say(user, Message(t(loc, "wecom.kf_no_human")))
            return
        community = self._community(station)
        async with kf.db.transaction() as s:
            await store.kf_set_servicer(s, user, servicer, kf.clock.now())
        name = person.name if person and person.name else "-"
        await kf.say(servicer, Message(t(loc, "wecom.human_alert", name=name, community=community)), "wecom")
        log.info("kf: a resident was handed to a person")

    def _community(self, station: str | None) -> str:
        st = self.kf.cfg.catalog().station(station) if station else None
        return st.community if st else "-"

    async def _pick(self, s: object, station: str | None) -> str | None:
        """A coordinator with a WeCom account: in charge of the station first, switched on duty first."""
        cfg, now = self.kf.cfg, self.kf.clock.now()
        chain: set[str] = set()
        unit = station
        while unit is not None:
            chain.add(unit)
            unit = cfg.parent_unit(unit)
        q = (select(Person, Identity.external_id).join(Identity, Identity.person_id == Person.id)
             .where(Person.is_coordinator.is_(True), Identity.channel == "wecom").order_by(Person.id))
        rows = (await s.execute(q)).all()  # type: ignore[attr-defined]
        on = set((await s.execute(select(DutyOverride.person_id).where(  # type: ignore[attr-defined]
            DutyOverride.on_duty.is_(True), DutyOverride.until > now))).scalars())
        ranked = sorted(rows, key=lambda r: (r[0].unit not in chain, r[0].id not in on, r[0].id))
        return str(ranked[0][1]) if ranked else None

    async def status_changed(self, user: str, change: int, new_servicer: object) -> None:
        """A servicer took, passed on or ended the session in WeCom's own tools."""
        if change in (SESSION_TAKEN, SESSION_MOVED) and new_servicer:
            async with self.kf.db.transaction() as s:
                await store.kf_set_servicer(s, user, str(new_servicer), self.kf.clock.now())
        elif change == SESSION_ENDED:
            await self._back(user, trans=False)

    async def hand_back(self, servicer: str) -> int:
        """The servicer's /handback: every resident they serve goes back to the bot; how many."""
        async with self.kf.db.transaction() as s:
            users = await store.kf_served_by(s, servicer)
        for user in users:
            await self._back(user, trans=True)
        return len(users)

    async def _back(self, user: str, trans: bool) -> None:
        """Clear the servicer. With the session back in state 1 the held messages and a notice go out
        now; after an ended session (state 4) kf refuses sends until the resident writes again."""
        kf = self.kf
        state = ENDED
        if trans:
            body = {"open_kfid": kf.open_kfid, "external_userid": user, "service_state": BOT}
            try:
                await kf.api.call("kf/service_state/trans", body)
                state = BOT
            except WecomError:  # WeCom may refuse 3 → 1: ending the session also gives it back
                await kf.api.call("kf/service_state/trans", {**body, "service_state": ENDED})
        async with kf.db.transaction() as s:
            session = await store.kf_session(s, user)
            if session is None or session.servicer is None:
                return
            await store.kf_set_servicer(s, user, None, kf.clock.now())
            if state == ENDED:
                await store.kf_exhaust(s, user)
                return
            await release_held(s, kf.name, user, kf.clock.now())
        await kf.say(user, Message(t(kf.cfg.locale, "wecom.kf_back")))
