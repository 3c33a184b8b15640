"""Build the flows' RequestView from stored rows and config, and render request-bound messages."""
from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncSession

from flows import requests as rq
from flows.i18n import t
from flows.types import Message
from storage import repo
from storage.models import HelpRequest

if TYPE_CHECKING:
    from bot.config import Config


async def view_of(s: AsyncSession, cfg: Config, req: HelpRequest, locale: str) -> rq.RequestView:
    """Everything the texts need about a request, names resolved in `locale`."""
    catalog = cfg.catalog()
    cat = catalog.category(req.category)
    svc = cat.service(req.service) if cat else None
    station = catalog.station(req.station_id)
    volunteer = await repo.get_person(s, req.volunteer_id) if req.volunteer_id else None
    resident = await repo.get_person(s, req.resident_id)
    team = cfg.team(req.team_id)
    rating = await repo.get_rating(s, req.id) if req.status == rq.FINISHED else None
    return rq.RequestView(
        id=req.id, number=req.number, status=req.status,
        category=cat.name(locale) if cat else req.category,
        service=svc.name(locale) if svc else req.service,
        community=station.community if station else req.station_id,
        when_text=req.when_text, urgent=req.urgent, sensitive=bool(cat and cat.sensitive),
        broadcast=cat is None or cat.broadcast,
        volunteer_name=volunteer.name if volunteer else None,
        team_name=team.name if team else req.team_id, escalated=req.escalation_level > 0,
        address=req.address, phone=req.phone, description=req.description, for_whom=req.for_whom,
        resident_name=resident.name if resident else "", hours=req.hours, rated=rating is not None,
    )


async def render(s: AsyncSession, cfg: Config, req: HelpRequest, kind: str, channel: str, chat_id: str,
                 locale: str) -> Message:
    """The current text of one request-bound message: a group card, a nudge or a claimer's details."""
    view = await view_of(s, cfg, req, locale)
    if kind == "group_card":
        return rq.group_card(view, locale)
    if kind == "nudge":
        return rq.nudge(view, locale)
    if kind == "reminder":
        return rq.reminder(view, locale) if view.status == rq.OPEN else rq.nudge(view, locale)
    if kind == "detail":
        owners = await repo.identities_of(s, [req.volunteer_id] if req.volunteer_id else [])
        if any(i.channel == channel and (i.chat_id or i.external_id) == chat_id for i in owners):
            return rq.details(view, locale)
        return Message(t(locale, "detail.not_yours", number=req.number))
    raise ValueError(f"unknown request message kind {kind!r}")
