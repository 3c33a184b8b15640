"""The resident's rights (PIPL): the privacy notice before the first form, 我的数据, 导出我的数据, 更正电话 /
更正地址, 删除我的数据. Every look at or change of a person's data is recorded in the audit trail."""
from __future__ import annotations

import logging

from flows import callbacks, privacy
from flows import requests as rq
from flows.i18n import t, words
from flows.intake import check_phone
from flows.types import Message
from handlers import audit, ops
from handlers.context import Ctx
from handlers.events import NO_TRAITS, InboundEvent
from handlers.views import view_of
from storage import privacy_repo, repo
from storage.models import Person
from storage.retention import Transcript

log = logging.getLogger(__name__)
KEYWORDS = {"privacy": "kw.privacy", "mine": "kw.my_data", "export": "kw.export", "phone": "kw.fix_phone",
            "address": "kw.fix_address", "erase": "kw.erase"}
READ_ONLY = ("privacy", "mine", "export")  # answered in the middle of a form too (the form is kept)
UNDER_WAY = (rq.OPEN, rq.CLAIMED, rq.STARTED)  # requests whose phone and address a correction changes


def command(text: str) -> str | None:
    """Which right a typed text asks for (privacy, mine, export, phone, address, erase), if any."""
    low = text.strip().lower()
    return next((name for name, key in KEYWORDS.items() if low in words(key)), None)


async def _reply(ctx: Ctx, ev: InboundEvent, msg: Message | str) -> None:
    await ctx.say(ev.channel, ev.chat_id, msg if isinstance(msg, Message) else Message(msg))


# ---- the privacy notice -----------------------------------------------------------------------------------

def _transcripts(ctx: Ctx) -> dict[str, Transcript]:
    """Where each channel keeps copies of its chats (its traits say; none are named here)."""
    return {name: tr.transcript for name, tr in ctx.traits.items() if tr.transcript is not None}


def _days(ctx: Ctx) -> tuple[int, int]:
    """How long drafts and ended requests are kept (privacy.retention), as the notice says."""
    keep = ctx.cfg.privacy.retention
    return keep.drafts_days, keep.requests_days


async def gate(ctx: Ctx, ev: InboundEvent, person: Person, station_hint: str | None) -> bool:
    """Before the first form: show the notice and wait for the person to accept it (True: the form waits).
    Nothing of a form is stored until then; only where the person came from (a station's QR code)."""
    if person.privacy_accepted_at is not None:
        return False
    await _reply(ctx, ev, privacy.notice(ctx.locale_of(person), True, *_days(ctx)))
    await ctx.set_state("privacy", {"station_hint": station_hint} if station_hint else {})
    return True


async def _answer_notice(ctx: Ctx, ev: InboundEvent, person: Person, choice: str | None) -> str | None:
    from handlers import resident  # the form lives there (and it asks us first)

    loc = ctx.locale_of(person)
    data = dict(ctx.state.data) if ctx.state is not None and ctx.state.flow == "privacy" else {}
    if choice == "yes":
        if person.privacy_accepted_at is None:
            person.privacy_accepted_at = ctx.now
        await ctx.clear_state()
        await _reply(ctx, ev, t(loc, "privacy.thanks"))
        await resident.start_intake(ctx, ev, person, str(data.get("station_hint") or "") or None)
        return t(loc, "privacy.accepted_short")
    if choice == "no":
        await ctx.clear_state()
        await _reply(ctx, ev, t(loc, "privacy.declined"))
        return t(loc, "privacy.declined_short")
    await _reply(ctx, ev, privacy.notice(loc, True, *_days(ctx)))  # anything else: the notice again
    return None


# ---- entry points from the conversation ----------------------------------------------------------------

async def on_press(ctx: Ctx, ev: InboundEvent, person: Person, cb: callbacks.Callback) -> str:
    """A press on a privacy button: accept / decline the notice, confirm / keep on 删除我的数据."""
    loc = ctx.locale_of(person)
    if cb.target in ("accept", "decline"):
        if ctx.state is not None and ctx.state.flow != "privacy":  # an old notice: never lose what is going on
            return t(loc, "privacy.accepted_short" if person.privacy_accepted_at else "press.stale")
        return await _answer_notice(ctx, ev, person, "yes" if cb.target == "accept" else "no") or ""
    if cb.target in ("erase", "keep"):
        waiting = ctx.state is not None and ctx.state.flow == "rights" and ctx.state.data.get("step") == "erase"
        if not waiting:
            return t(loc, "press.stale")
        if cb.target == "keep":
            await ctx.clear_state()
            await _reply(ctx, ev, t(loc, "rights.erase_kept"))
            return t(loc, "rights.erase_kept_short")
        await erase(ctx, ev, person)
        return t(loc, "rights.erased_short")
    return t(loc, "press.stale")


async def on_state(ctx: Ctx, ev: InboundEvent, person: Person, text: str) -> bool:
    """A typed answer in a privacy or rights conversation; False when it is not one (handled elsewhere)."""
    state = ctx.state
    if state is None:
        return False
    loc = ctx.locale_of(person)
    if state.flow == "privacy":
        choice = privacy.chosen(ev.data, text, "privacy.accept", "privacy.decline", "accept", "decline",
                                "kw.agree", "kw.disagree")
        await _answer_notice(ctx, ev, person, choice)
        return True
    if state.flow != "rights":
        return False
    step = str(state.data.get("step"))
    if text.lower() in words("kw.cancel") or text.lower() == "/cancel":
        await ctx.clear_state()
        await _reply(ctx, ev, t(loc, "rights.erase_kept" if step == "erase" else "rights.fix_cancelled"))
        return True
    if step == "erase":
        choice = privacy.chosen(ev.data, text, "rights.erase_yes", "rights.erase_no", "erase", "keep")
        if choice == "yes":
            await erase(ctx, ev, person)
        elif choice == "no":
            await ctx.clear_state()
            await _reply(ctx, ev, t(loc, "rights.erase_kept"))
        else:
            await _reply(ctx, ev, privacy.erase_confirm(loc, int(str(state.data.get("open", 0)))))
        return True
    if step == "phone":
        await _fix_phone(ctx, ev, person, ev.contact_phone or text)
        return True
    if step == "address":
        await _fix_address(ctx, ev, person, (ev.location or text).strip())
        return True
    await ctx.clear_state()
    return False


async def on_command(ctx: Ctx, ev: InboundEvent, person: Person, name: str, in_form: bool) -> None:
    """A right asked for by its words (隐私, 我的数据, 导出我的数据, 更正电话, 更正地址, 删除我的数据)."""
    loc = ctx.locale_of(person)
    if name == "privacy":
        await _reply(ctx, ev, privacy.notice(loc, person.privacy_accepted_at is None, *_days(ctx)))
        if person.privacy_accepted_at is None and ctx.state is None:
            await ctx.set_state("privacy", {})  # typing 同意 now accepts it, as at the first form
        return
    if name == "mine":
        data = await collect(ctx, person)
        await _reply(ctx, ev, privacy.summary(data, loc))
        await audit.record(ctx, person.id, "data_view", None, person.id, "resident_request")
        return
    if name == "export":
        data = await collect(ctx, person)
        doc = privacy.export(data, ctx.local().isoformat(timespec="minutes"))
        if ctx.traits.get(ev.channel, NO_TRAITS).no_files:  # this channel cannot send files (yet): all as text
            await _reply(ctx, ev, privacy.summary(data, loc) + "\n" + t(loc, "rights.export_no_files"))
        else:
            await _reply(ctx, ev, Message(t(loc, "rights.export_caption", filename=doc.filename), document=doc))
        await audit.record(ctx, person.id, "data_export", None, person.id, "resident_request")
        return
    if in_form:
        await _reply(ctx, ev, t(loc, "rights.finish_form_first"))
        return
    if name == "erase":
        under_way = [r for r in await privacy_repo.all_requests_of(ctx.s, person.id) if r.status in UNDER_WAY]
        await ctx.set_state("rights", {"step": "erase", "open": len(under_way)})
        await _reply(ctx, ev, privacy.erase_confirm(loc, len(under_way)))
        return
    await ctx.set_state("rights", {"step": name})
    await _reply(ctx, ev, t(loc, f"rights.ask_{name}"))


# ---- what is kept ----------------------------------------------------------------------------------------

async def collect(ctx: Ctx, person: Person) -> privacy.PersonData:
    """Everything stored about a person, readable (names in their language)."""
    loc = ctx.locale_of(person)
    reqs = await privacy_repo.all_requests_of(ctx.s, person.id)
    ratings = await privacy_repo.ratings_of(ctx.s, [r.id for r in reqs])
    items = []
    for req in reqs:
        v = await view_of(ctx.s, ctx.cfg, req, loc)
        rating = ratings.get(req.id)
        items.append(privacy.RequestData(
            number=req.number, category=v.category, service=v.service, community=v.community,
            status=t(loc, f"status.{req.status}", name=v.volunteer_name or ""),
            created=f"{ctx.local(req.created_at):%Y-%m-%d %H:%M}", when=req.when_text,
            for_whom=t(loc, "intake.for_self" if req.for_whom == "self" else "intake.for_family"),
            address=req.address, phone=req.phone, description=req.description,
            rating=rating.stars if rating else None, comment=rating.comment if rating else None))
    accounts = await privacy_repo.all_identities_of(ctx.s, person.id)
    station = ctx.catalog.station(person.station_id) if person.station_id else None
    state = ctx.state
    draft = dict(state.data.get("draft") or {}) if state is not None and state.flow == "intake" else {}
    return privacy.PersonData(
        person_id=person.id, name=person.name, phone=person.phone or "",
        community=station.community if station else "", language=ctx.locale_of(person),
        created=f"{ctx.local(person.created_at):%Y-%m-%d %H:%M}",
        privacy_accepted=f"{ctx.local(person.privacy_accepted_at):%Y-%m-%d %H:%M}"
        if person.privacy_accepted_at else "",
        accounts=tuple(sorted({a.channel for a in accounts})), requests=tuple(items),
        chat_messages=await privacy_repo.transcript_count(ctx.s, accounts, _transcripts(ctx)),
        draft={k: v for k, v in draft.items() if v not in (None, "", {}, False)})


# ---- corrections ---------------------------------------------------------------------------------------

async def _fix_phone(ctx: Ctx, ev: InboundEvent, person: Person, raw: str) -> None:
    loc = ctx.locale_of(person)
    phone, problem = check_phone(raw)
    if phone is None:
        await _reply(ctx, ev, t(loc, f"intake.phone_{problem}") + "\n" + t(loc, "rights.fix_hint"))
        return
    person.phone = phone
    changed = await _update_under_way(ctx, person, phone=phone)
    await ctx.clear_state()
    await audit.record(ctx, person.id, "data_correct", None, person.id, "phone")
    await _reply(ctx, ev, t(loc, "rights.phone_fixed", phone=privacy.mask_phone(phone), count=changed))


async def _fix_address(ctx: Ctx, ev: InboundEvent, person: Person, address: str) -> None:
    loc = ctx.locale_of(person)
    if len(address) < 4 or ev.data:
        await _reply(ctx, ev, t(loc, "intake.bad_address") + "\n" + t(loc, "rights.fix_hint"))
        return
    if len(address) > 200:
        await _reply(ctx, ev, t(loc, "intake.too_long", limit=200))
        return
    changed = await _update_under_way(ctx, person, address=address)
    await ctx.clear_state()
    await audit.record(ctx, person.id, "data_correct", None, person.id, "address")
    key = "rights.address_fixed" if changed else "rights.address_nothing"
    await _reply(ctx, ev, t(loc, key, count=changed))


async def _update_under_way(ctx: Ctx, person: Person, **values: str) -> int:
    """Correct the requests still under way (the claimer's details are re-rendered); how many."""
    count = 0
    for req in await privacy_repo.all_requests_of(ctx.s, person.id):
        if req.status in UNDER_WAY:
            await repo.update_request(ctx.s, req.id, **values)
            await ctx.refresh(req.id)
            count += 1
    return count


# ---- erasure ---------------------------------------------------------------------------------------------

async def erase(ctx: Ctx, ev: InboundEvent, person: Person) -> None:
    """删除我的数据 (confirmed): requests under way are cancelled (their claimers told), then the person's
    personal fields, descriptions, comments, drafts and chat transcripts are erased for good; requests,
    stars and hours stay as anonymous rows. Recorded in the audit trail."""
    loc = ctx.locale_of(person)
    reqs = await privacy_repo.all_requests_of(ctx.s, person.id)
    cancelled = 0
    for req in reqs:
        if req.status in UNDER_WAY and await ops.cancel(ctx, req, person, erased=True):
            cancelled += 1
    accounts = await privacy_repo.all_identities_of(ctx.s, person.id)
    staff = person.is_volunteer or person.is_coordinator
    await ctx.clear_state()
    await privacy_repo.erase_person(ctx.s, person, accounts, keep_accounts=staff, now=ctx.now,
                            transcripts=_transcripts(ctx))
    for req in reqs:
        if req.status != rq.CANCELLED or req.closed_at != ctx.now:  # (cancelled just now: refreshed already)
            await ctx.refresh(req.id)  # every copy of the details shows the erased fields no more
    await audit.record(ctx, person.id, "data_erase", None, person.id, "resident_request")
    await _reply(ctx, ev, t(loc, "rights.erased", requests=len(reqs), cancelled=cancelled))
    log.info("a person's data was erased on request (%d requests, %d cancelled)", len(reqs), cancelled)
