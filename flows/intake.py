"""点单: the resident's help-request form as a pure state machine (see intake.mmd)."""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

from flows import callbacks
from flows.catalog import Catalog
from flows.i18n import t, words
from flows.privacy import mask_phone
from flows.types import Button, Draft, Message, UserInput, rows
from flows.when import is_past, parse_when

STEPS = ("category", "service", "station", "for_whom", "when", "when_date", "address", "phone",
         "description", "summary")
EDITABLE = ("category", "service", "station", "for_whom", "when", "address", "phone", "description")
# draft field -> the step that asks for it, checked again before submitting
REQUIRED = {"category": "category", "service": "service", "station": "station", "for_whom": "for_whom",
            "when_kind": "when", "address": "address", "phone": "phone", "description": "description"}
WEEKDAY_KEYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True)
class Context:
    """What intake may know about the world: the catalog, the local time, the language."""

    catalog: Catalog
    now: datetime
    locale: str = "zh_CN"
    station_hint: str | None = None
    greeting_unit: str = ""


@dataclass
class Result:
    """One step's outcome: the new state (None when the form is over) and what to say."""

    state: dict[str, Any] | None
    messages: list[Message] = field(default_factory=list)
    submit: Draft | None = None
    cancelled: bool = False
    action: str | None = None  # "my_requests": the resident asked for their list instead


def start(ctx: Context) -> Result:
    """Greet and offer the category menu."""
    draft = asdict(Draft())
    if ctx.station_hint and ctx.catalog.station(ctx.station_hint):
        draft["station"] = ctx.station_hint
    state = {"step": "category", "draft": draft, "back": [], "editing": False}
    greeting = Message(t(ctx.locale, "intake.greeting", unit=ctx.greeting_unit))
    return Result(state, [greeting, _ask(state, ctx)])


def step(state: dict[str, Any], inp: UserInput, ctx: Context) -> Result:
    """Apply one input to the form."""
    text = (inp.text or "").strip()
    low = text.lower()
    if low in words("kw.cancel") or low.lstrip("/") == "cancel":
        return Result(None, [Message(t(ctx.locale, "intake.cancelled"))], cancelled=True)
    if low in words("kw.help") or low == "/help":
        return Result(state, [Message(t(ctx.locale, "intake.help")), _ask(state, ctx)])
    if low in words("kw.back") and state["back"]:
        state = {**state, "step": state["back"][-1], "back": state["back"][:-1]}
        return Result(state, [_ask(state, ctx)])
    handler = _HANDLERS[state["step"]]
    return handler(state, inp, text, ctx)


def ask_again(state: dict[str, Any], ctx: Context) -> Message:
    """The question the form is on, asked again (the form was set aside, e.g. for a crisis answer)."""
    return _ask(state, ctx, t(ctx.locale, "intake.resume"))


# ---- questions --------------------------------------------------------------------------------

def _options(state: dict[str, Any], ctx: Context) -> list[tuple[str, str]]:
    """(value, label) pairs offered at the current step, in button order."""
    loc, d, s = ctx.locale, state["draft"], state["step"]
    if s == "category":
        return [(c.id, c.name(loc)) for c in ctx.catalog.menu_categories()] + [
            ("mine", t(loc, "intake.my_requests"))]
    if s == "service":
        cat = ctx.catalog.category(d["category"])
        return [(x.id, x.name(loc)) for x in cat.services] if cat else []
    if s == "station":
        return [(st.id, st.community) for st in ctx.catalog.stations]
    if s == "for_whom":
        return [("self", t(loc, "intake.for_self")), ("family", t(loc, "intake.for_family"))]
    if s == "when":
        return [("asap", t(loc, "intake.when_asap")), ("today", t(loc, "intake.when_today")),
                ("pick", t(loc, "intake.when_pick"))]
    if s == "summary":
        return [("confirm", t(loc, "intake.confirm")), ("edit", t(loc, "intake.edit")),
                ("cancel", t(loc, "intake.cancel"))]
    if s == "edit":
        return [(f, t(loc, f"intake.field.{f}")) for f in EDITABLE]
    return []


def _ask(state: dict[str, Any], ctx: Context, prefix: str | None = None) -> Message:
    """The question for the current step, with its buttons."""
    s, loc = state["step"], ctx.locale
    opts = _options(state, ctx)
    buttons = [Button(label, callbacks.make("i", s.replace("_", ""), value)) for value, label in opts]
    per_row = 1 if s in ("summary",) else 3 if len(buttons) > 4 else 2
    text = _summary_text(state, ctx) if s == "summary" else t(loc, f"intake.ask.{s}")
    if prefix:
        text = f"{prefix}\n{text}"
    return Message(text, rows(buttons, per_row), _phone_button(s, ctx))


def _phone_button(step: str, ctx: Context) -> str:
    """At the phone step, a channel that can share the person's number offers a key labelled so."""
    return t(ctx.locale, "intake.share_phone") if step == "phone" else ""


def _choice(state: dict[str, Any], inp: UserInput, text: str, ctx: Context) -> str | None:
    """The option value chosen by a press, a typed number or the option's words."""
    opts = _options(state, ctx)
    cb = callbacks.parse(inp.data)
    if cb is not None:
        if cb.action == "i" and cb.target == state["step"].replace("_", ""):
            return cb.arg if any(v == cb.arg for v, _ in opts) else None
        return None
    if not text:
        return None
    if text.isdigit() and 1 <= int(text) <= len(opts):
        return opts[int(text) - 1][0]
    clean = re.sub(r"[\s【】\[\]（）()]", "", text).lower()
    exact = [v for v, label in opts if re.sub(r"[\s（）()]", "", label).lower() == clean]
    if exact:
        return exact[0]
    fuzzy = [v for v, label in opts if clean and (clean in label.lower() or label.lower() in clean)]
    return fuzzy[0] if len(fuzzy) == 1 else None


def _advance(state: dict[str, Any], ctx: Context, nxt: str, prefix: str | None = None) -> Result:
    """Go to `nxt` (or back to the summary when a field was being changed)."""
    if state.get("editing") and nxt != "when_date" and not (nxt == "service" and state["step"] == "category"):
        nxt = "summary"
    if nxt == "station" and state["draft"].get("station") and not state.get("editing"):
        nxt = "for_whom"  # preselected by the QR code the resident scanned
    new = {**state, "step": nxt, "back": [*state["back"], state["step"]]}
    if nxt == "summary":
        new["editing"] = False
    return Result(new, [_ask(new, ctx, prefix)])


def _again(state: dict[str, Any], ctx: Context, key: str, **params: Any) -> Result:
    """Explain what did not fit and ask the same question again."""
    return Result(state, [_ask(state, ctx, t(ctx.locale, key, **params))])


# ---- step handlers ----------------------------------------------------------------------------

def _on_category(state: dict[str, Any], inp: UserInput, text: str, ctx: Context) -> Result:
    value = _choice(state, inp, text, ctx)
    if value == "mine":
        return Result(None, [], action="my_requests")
    if value is None:
        return _again(state, ctx, "intake.pick_a_button")
    draft = {**state["draft"], "category": value, "service": None}
    return _advance({**state, "draft": draft}, ctx, "service")


def _on_service(state: dict[str, Any], inp: UserInput, text: str, ctx: Context) -> Result:
    value = _choice(state, inp, text, ctx)
    if value is None:
        return _again(state, ctx, "intake.pick_a_button")
    return _advance({**state, "draft": {**state["draft"], "service": value}}, ctx, "station")


def _on_station(state: dict[str, Any], inp: UserInput, text: str, ctx: Context) -> Result:
    value = _choice(state, inp, text, ctx)
    if value is None:
        return _again(state, ctx, "intake.unknown_station")
    return _advance({**state, "draft": {**state["draft"], "station": value}}, ctx, "for_whom")


def _on_for_whom(state: dict[str, Any], inp: UserInput, text: str, ctx: Context) -> Result:
    value = _choice(state, inp, text, ctx)
    if value is None:
        return _again(state, ctx, "intake.pick_a_button")
    return _advance({**state, "draft": {**state["draft"], "for_whom": value}}, ctx, "when")


def _on_when(state: dict[str, Any], inp: UserInput, text: str, ctx: Context) -> Result:
    value = _choice(state, inp, text, ctx)
    typed = parse_when(text, ctx.now) if text and not inp.data else None
    if value == "today" and typed is not None and (typed.has_time or typed.period):
        value = None  # 今天下午3点 is a time, not just the 今天 button
    d = dict(state["draft"])
    if value == "asap":
        d.update(when_kind="asap", when_at=ctx.now.isoformat(timespec="minutes"),
                 when_text=t(ctx.locale, "intake.when_asap"), urgent=True)
    elif value == "today":
        d.update(when_kind="today", when_at=ctx.now.isoformat(timespec="minutes"),
                 when_text=t(ctx.locale, "intake.when_today"), urgent=False)
    elif value == "pick":
        return Result({**state, "step": "when_date", "back": [*state["back"], "when"]},
                      [Message(t(ctx.locale, "intake.ask.when_date"))])
    elif typed is not None:
        return _on_when_date(state, inp, text, ctx)  # typed a date straight away
    else:
        return _again(state, ctx, "intake.pick_a_button")
    return _advance({**state, "draft": d}, ctx, "address")


def _on_when_date(state: dict[str, Any], inp: UserInput, text: str, ctx: Context) -> Result:
    when = parse_when(text, ctx.now) if text else None
    if when is None:
        return Result(state, [Message(t(ctx.locale, "intake.bad_date"))])
    if is_past(when, ctx.now):
        return Result(state, [Message(t(ctx.locale, "intake.past_date"))])
    if when.at > ctx.now + timedelta(days=90):
        return Result(state, [Message(t(ctx.locale, "intake.far_date"))])
    shown = format_when(when.at, when.has_time, when.period, ctx.locale)
    d = {**state["draft"], "when_kind": "at", "when_at": when.at.isoformat(timespec="minutes"),
         "when_text": shown, "urgent": False}
    back = state["back"][:-1] if state["step"] == "when_date" else state["back"]  # _advance pushes "when"
    state = {**state, "draft": d, "step": "when", "back": back}
    prefix = t(ctx.locale, "intake.when_ok", when=shown)
    return _advance(state, ctx, "address", prefix)


def _on_address(state: dict[str, Any], inp: UserInput, text: str, ctx: Context) -> Result:
    value = (inp.location or text).strip()
    if len(value) < 4 or inp.data:
        return Result(state, [Message(t(ctx.locale, "intake.bad_address"))])
    if len(value) > 200:
        return Result(state, [Message(t(ctx.locale, "intake.too_long", limit=200))])
    return _advance({**state, "draft": {**state["draft"], "address": value}}, ctx, "phone")


def _on_phone(state: dict[str, Any], inp: UserInput, text: str, ctx: Context) -> Result:
    raw = inp.contact_phone or text
    phone, problem = check_phone(raw)
    if phone is None:
        return Result(state, [Message(t(ctx.locale, f"intake.phone_{problem}"), (), _phone_button("phone", ctx))])
    return _advance({**state, "draft": {**state["draft"], "phone": phone}}, ctx, "description")


def _on_description(state: dict[str, Any], inp: UserInput, text: str, ctx: Context) -> Result:
    if len(text) < 2 or inp.data:
        return Result(state, [Message(t(ctx.locale, "intake.bad_description"))])
    if len(text) > 500:
        return Result(state, [Message(t(ctx.locale, "intake.too_long", limit=500))])
    return _advance({**state, "draft": {**state["draft"], "description": text}}, ctx, "summary")


def _on_summary(state: dict[str, Any], inp: UserInput, text: str, ctx: Context) -> Result:
    value = _choice(state, inp, text, ctx)
    if value == "confirm":
        missing = next((step for f, step in REQUIRED.items() if not state["draft"].get(f)), None)
        if missing is not None:  # e.g. the category was changed and its service never chosen
            new = {**state, "step": missing, "editing": True}
            return Result(new, [_ask(new, ctx)])
        return Result(None, [], submit=Draft(**state["draft"]))
    if value == "edit":
        new = {**state, "step": "edit", "back": [*state["back"], "summary"]}
        return Result(new, [_ask(new, ctx)])
    if value == "cancel":
        return Result(None, [Message(t(ctx.locale, "intake.cancelled"))], cancelled=True)
    return _again(state, ctx, "intake.pick_a_button")


def _on_edit(state: dict[str, Any], inp: UserInput, text: str, ctx: Context) -> Result:
    value = _choice(state, inp, text, ctx)
    if value is None:
        return _again(state, ctx, "intake.pick_a_button")
    new = {**state, "step": value, "editing": True, "back": [*state["back"], "edit"]}
    return Result(new, [_ask(new, ctx)])


_HANDLERS = {
    "category": _on_category, "service": _on_service, "station": _on_station, "for_whom": _on_for_whom,
    "when": _on_when, "when_date": _on_when_date, "address": _on_address, "phone": _on_phone,
    "description": _on_description, "summary": _on_summary, "edit": _on_edit,
}


# ---- formatting helpers -----------------------------------------------------------------------

def check_phone(raw: str) -> tuple[str | None, str]:
    """A normalised phone number, or None and why not ('short', 'long', 'bad')."""
    digits = re.sub(r"[\s\-()（）]", "", raw or "").removeprefix("+86").removeprefix("0086")
    if re.fullmatch(r"1[3-9]\d{9}", digits) or re.fullmatch(r"0\d{9,11}", digits):
        return digits, ""
    if not digits.isdigit():
        return None, "bad"
    if digits.startswith("1"):
        return None, "short" if len(digits) < 11 else "long" if len(digits) > 11 else "bad"
    return None, "bad"


def format_when(at: datetime, has_time: bool, period: str | None, locale: str) -> str:
    """11月24日（周二）08:30, or 11月24日（周二）上午 without a clock time."""
    wd = t(locale, f"weekday.{WEEKDAY_KEYS[at.weekday()]}")
    day = t(locale, "intake.date_fmt", month=at.month, day=at.day, weekday=wd)
    if has_time:
        sep = " " if day[-1:].isascii() else ""  # 11月24日（周二）08:30, but Tue 11/24 08:30
        return f"{day}{sep}{at:%H:%M}"
    return f"{day} {t(locale, 'period.' + period)}" if period else day


def _summary_text(state: dict[str, Any], ctx: Context) -> str:
    d, loc = state["draft"], ctx.locale
    cat = ctx.catalog.category(d["category"])
    svc = cat.service(d["service"]) if cat and d["service"] else None
    st = ctx.catalog.station(d["station"])
    return t(loc, "intake.summary",
             category=cat.name(loc) if cat else "", service=svc.name(loc) if svc else "",
             community=st.community if st else "",
             for_whom=t(loc, "intake.for_self" if d["for_whom"] == "self" else "intake.for_family"),
             when=d["when_text"] or "", address=d["address"] or "", phone=mask_phone(d["phone"] or ""),
             description=d["description"] or "")
