"""Load and validate config.yaml; a bad file gives a message naming the key, never a traceback."""
from __future__ import annotations

import re
from datetime import time
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from bot.config_channels import ChannelsConfig, Strict, apply_env
from flows.catalog import Catalog, Category, Service, Station

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
ID_RE = r"^[a-z0-9][a-z0-9_-]{0,40}$"
LOCALES = ("zh_CN", "en")


def is_loopback(host: str) -> bool:
    """Whether only this machine can reach a server listening on `host`."""
    import ipaddress

    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name other than localhost may resolve to anything
        return False


class ConfigError(Exception):
    """A configuration problem, already phrased for the person running the bot."""


class Names(Strict):
    """A name in each language; zh_CN is required."""

    zh_CN: str = Field(min_length=1)
    en: str | None = None

    def as_dict(self) -> dict[str, str]:
        """Locale -> name."""
        return {k: v for k, v in (("zh_CN", self.zh_CN), ("en", self.en)) if v}


class HttpConfig(Strict):
    """Where the bot's web server listens."""

    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)


class StorageConfig(Strict):
    """Database and (optional) Redis."""

    database_url: str = "sqlite+aiosqlite:///data/wuwei.db"
    redis_url: str | None = None
    # while Redis is unreachable each worker sends within 1/N of every platform limit on its own
    redis_fallback_workers: int = Field(default=2, ge=1, le=64)

    @field_validator("database_url")
    @classmethod
    def _known_driver(cls, v: str) -> str:
        if not (v.startswith("sqlite+aiosqlite://") or v.startswith("postgresql+asyncpg://")):
            raise ValueError("must start with sqlite+aiosqlite:// or postgresql+asyncpg://")
        return v


class SimulatorConfig(Strict):
    """The built-in simulator channel (must be off in production)."""

    enabled: bool = True
    # needed by every page and API call when set; required when http.host is not a loopback address
    token: str | None = Field(default=None, min_length=16)


class StationConfig(Strict):
    """A 站 (village/community station)."""

    id: str = Field(pattern=ID_RE)
    name: str = Field(min_length=1)
    community: str = Field(min_length=1)


class InstituteConfig(Strict):
    """A 所 (township/street institute) and its stations."""

    id: str = Field(pattern=ID_RE)
    name: str = Field(min_length=1)
    stations: list[StationConfig] = Field(min_length=1)


class CenterConfig(Strict):
    """The county 中心."""

    id: str = Field(pattern=ID_RE)
    name: str = Field(min_length=1)


class OrgConfig(Strict):
    """The three-level tree: center → institutes → stations."""

    center: CenterConfig
    institutes: list[InstituteConfig] = Field(min_length=1)


class ServiceConfig(Strict):
    """A service in the catalog."""

    id: str = Field(pattern=ID_RE)
    name: Names


class CategoryConfig(Strict):
    """A 五为 category."""

    id: str = Field(pattern=ID_RE)
    name: Names
    sensitive: bool = False
    resident_menu: bool = True
    # new requests as a card in the team's groups (True) or 1:1 to the team's on-duty counsellors only
    # (False); default: False for sensitive categories, True otherwise
    broadcast: bool | None = None
    services: list[ServiceConfig] = Field(min_length=1)

    @property
    def broadcasts(self) -> bool:
        """Whether new requests of this category are posted as cards in the teams' groups."""
        return self.broadcast if self.broadcast is not None else not self.sensitive


class RosterSlot(Strict):
    """Who is on duty on which weekdays between two times."""

    days: list[Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]] = Field(min_length=1)
    start: time = Field(alias="from")
    end: time = Field(alias="to")
    volunteers: list[str] = Field(min_length=1)

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @field_validator("start", "end", mode="before")
    @classmethod
    def _quoted(cls, v: object) -> object:
        # YAML reads an unquoted 9:00 as the number 540 (sexagesimal): insist on "HH:MM" strings
        if not isinstance(v, str | time):
            raise ValueError('write the time as "HH:MM" in quotes, e.g. "09:00" (unquoted 9:00 is read as a number)')
        return v

    @model_validator(mode="after")
    def _order(self) -> RosterSlot:
        if self.end <= self.start:
            raise ValueError("'to' must be later than 'from'")
        return self


class TeamConfig(Strict):
    """A volunteer team at one level of the tree, with its group chats and roster."""

    id: str = Field(pattern=ID_RE)
    name: str = Field(min_length=1)
    unit: str
    categories: list[str] = Field(min_length=1)
    services: list[str] = []
    groups: dict[str, str] = {}
    members: list[str] = []
    roster: list[RosterSlot] = []


class RouteRule(Strict):
    """An explicit routing rule: (station or unit, category[, service]) → team."""

    unit: str
    category: str
    service: str | None = None
    team: str


class VolunteerConfig(Strict):
    """A volunteer seeded from config (registration comes later)."""

    id: str = Field(pattern=ID_RE)
    name: str = Field(min_length=1)
    phone: str | None = None
    trained: bool = True
    wecom_userid: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.@-]{1,64}$")
    # vetted qualifications: `counsellor` = may receive crisis cases and psychological requests
    qualifications: list[Literal["counsellor"]] = []


class CoordinatorConfig(Strict):
    """A coordinator (专管员) of one org unit."""

    id: str = Field(pattern=ID_RE)
    name: str = Field(min_length=1)
    unit: str
    phone: str | None = None
    wecom_userid: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.@-]{1,64}$")


class PeopleConfig(Strict):
    """People seeded for the demo."""

    volunteers: list[VolunteerConfig] = []
    coordinators: list[CoordinatorConfig] = []


class TimingsConfig(Strict):
    """When the bot reminds, escalates and asks for ratings (minutes)."""

    remind_after_minutes: int = Field(default=30, ge=1)
    escalate_after_minutes: int = Field(default=60, ge=1)
    rating_after_minutes: int = Field(default=0, ge=0)
    hours_max: float = Field(default=12, gt=0, le=24)
    tick_seconds: float = Field(default=5, gt=0, le=300)
    # an unacknowledged crisis case climbs to the next people in its chain after this long
    crisis_escalate_after_minutes: int = Field(default=5, ge=1, le=120)

    @model_validator(mode="after")
    def _order(self) -> TimingsConfig:
        if self.escalate_after_minutes <= self.remind_after_minutes:
            raise ValueError("escalate_after_minutes must be larger than remind_after_minutes")
        return self


class RetentionConfig(Strict):
    """How long personal data is kept (days); a purge removes what is older, at start and every 6 hours."""

    drafts_days: int = Field(default=3, ge=1, le=365)  # unfinished forms and other open conversation steps
    requests_days: int = Field(default=180, ge=1, le=3650)  # personal fields of finished/cancelled requests
    cases_days: int = Field(default=90, ge=1, le=3650)  # the texts of closed crisis cases
    outbox_days: int = Field(default=7, ge=1, le=365)  # delivered messages and the simulator's chat log


class PrivacyConfig(Strict):
    """Personal data: how long it is kept."""

    retention: RetentionConfig = RetentionConfig()


class RecognitionConfig(Strict):
    """Star levels and points."""

    star_thresholds: list[float] = [100, 300, 600, 1000, 1500]
    points_per_hour: float = Field(default=10, ge=0)

    @field_validator("star_thresholds")
    @classmethod
    def _ascending(cls, v: list[float]) -> list[float]:
        if not v or any(b <= a for a, b in zip(v, v[1:], strict=False)) or v[0] <= 0:
            raise ValueError("must be positive and strictly increasing, e.g. [100, 300, 600, 1000, 1500]")
        return v


class Config(Strict):
    """The whole config.yaml."""

    locale: Literal["zh_CN", "en"] = "zh_CN"
    timezone: str = "Asia/Shanghai"
    http: HttpConfig = HttpConfig()
    storage: StorageConfig = StorageConfig()
    simulator: SimulatorConfig = SimulatorConfig()
    channels: ChannelsConfig = ChannelsConfig()
    org: OrgConfig
    categories: list[CategoryConfig] = Field(min_length=1)
    teams: list[TeamConfig] = Field(min_length=1)
    routing: list[RouteRule] = []
    people: PeopleConfig = PeopleConfig()
    timings: TimingsConfig = TimingsConfig()
    recognition: RecognitionConfig = RecognitionConfig()
    privacy: PrivacyConfig = PrivacyConfig()

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {v!r} (use e.g. Asia/Shanghai)") from exc
        return v

    @model_validator(mode="after")
    def _cross_check(self) -> Config:
        from bot.config_checks import check_config

        check_config(self)
        if self.simulator.enabled and not self.simulator.token and not is_loopback(self.http.host):
            raise ValueError(
                f"simulator.token: required while the simulator is on and http.host is {self.http.host!r}, "
                "which other machines can reach: the simulator shows every chat, crisis alerts included. "
                "Set simulator.token (16+ characters, or WUWEI_SIMULATOR_TOKEN), turn the simulator off "
                "(simulator.enabled: false), or listen on 127.0.0.1")
        return self

    # ---- derived views -------------------------------------------------------------------
    def enabled_channels(self) -> set[str]:
        """Names of the channels this config runs (bot/channels/registry.py builds exactly these)."""
        names = {"simulator"} if self.simulator.enabled else set()
        wecom = self.channels.wecom
        if wecom.enabled:
            names |= {"wecom", "wecom_kf"} if wecom.kf.enabled else {"wecom"}
        if wecom.aibot.enabled:
            names.add("wecom_bot")
        if self.channels.telegram.enabled:
            names.add("telegram")
        return names

    def stations(self) -> list[StationConfig]:
        """All stations of all institutes."""
        return [s for i in self.org.institutes for s in i.stations]

    def unit_ids(self) -> set[str]:
        """Ids of every org unit (center, institutes, stations)."""
        return {self.org.center.id} | {i.id for i in self.org.institutes} | {s.id for s in self.stations()}

    def parent_unit(self, unit_id: str) -> str | None:
        """The unit one level up (station → institute → center → None)."""
        for inst in self.org.institutes:
            if unit_id == inst.id:
                return self.org.center.id
            if any(s.id == unit_id for s in inst.stations):
                return inst.id
        return None

    def unit_level(self, unit_id: str) -> str:
        """'center', 'institute' or 'station'."""
        if unit_id == self.org.center.id:
            return "center"
        return "institute" if any(i.id == unit_id for i in self.org.institutes) else "station"

    def unit_name(self, unit_id: str) -> str:
        """The Chinese name of a unit."""
        if unit_id == self.org.center.id:
            return self.org.center.name
        for inst in self.org.institutes:
            if inst.id == unit_id:
                return inst.name
            for s in inst.stations:
                if s.id == unit_id:
                    return s.name
        return unit_id

    def team(self, team_id: str) -> TeamConfig | None:
        """The team with this id."""
        return next((t for t in self.teams if t.id == team_id), None)

    def route(self, unit_id: str, category: str, service: str | None) -> TeamConfig | None:
        """The team serving (unit, category, service): explicit rules first, then the unit's teams,
        then up the tree."""
        unit: str | None = unit_id
        while unit is not None:
            team = self._route_here(unit, category, service)
            if team is not None:
                return team
            unit = self.parent_unit(unit)
        return None

    def _route_here(self, unit: str, category: str, service: str | None) -> TeamConfig | None:
        rules = [r for r in self.routing if r.unit == unit and r.category == category]
        for rule in sorted(rules, key=lambda r: r.service is None):  # service-specific rules first
            if rule.service in (None, service):
                return self.team(rule.team)
        teams = [t for t in self.teams if t.unit == unit and category in t.categories]
        for t in sorted(teams, key=lambda t: not t.services):  # specialised teams first
            if not t.services or service in t.services:
                return t
        return None

    def catalog(self) -> Catalog:
        """The plain-data catalog the flows use."""
        cats = tuple(
            Category(
                id=c.id,
                names=c.name.as_dict(),
                services=tuple(Service(id=s.id, names=s.name.as_dict()) for s in c.services),
                sensitive=c.sensitive,
                resident_menu=c.resident_menu,
                broadcast=c.broadcasts,
            )
            for c in self.categories
        )
        stations = tuple(Station(id=s.id, name=s.name, community=s.community) for s in self.stations())
        return Catalog(categories=cats, stations=stations)

    def volunteer_ids(self) -> set[str]:
        """Ids of the volunteers in config."""
        return {v.id for v in self.people.volunteers}

    def counsellor_ids(self) -> set[str]:
        """Volunteers holding the `counsellor` qualification (vetted for crisis cases and psychological requests)."""
        return {v.id for v in self.people.volunteers if "counsellor" in v.qualifications}

    def unit_chain(self, unit_id: str | None) -> list[str]:
        """A unit and its ancestors, nearest first (station → institute → center)."""
        chain: list[str] = []
        unit = unit_id
        while unit is not None and unit not in chain:
            chain.append(unit)
            unit = self.parent_unit(unit)
        return chain


def _fmt_loc(loc: tuple[Any, ...], data: Any) -> str:
    """Turn pydantic's location into a readable key path, naming list items by their id."""
    path = ""
    node = data
    for item in loc:
        if isinstance(item, int):
            elem = node[item] if isinstance(node, list) and 0 <= item < len(node) else None
            ident = elem.get("id") if isinstance(elem, dict) else None
            # An id is what staff search the file for; fall back to the index for items without one.
            path += f"[{ident if isinstance(ident, str | int) and ident != '' else item}]"
            node = elem
        else:
            path += f".{item}" if path else str(item)
            node = node.get(item) if isinstance(node, dict) else None
    return path


def format_errors(exc: ValidationError, data: Any) -> str:
    """One line per problem: `key.path: what is wrong`."""
    import difflib
    from typing import get_args

    def allowed_keys(loc: tuple[Any, ...]) -> list[str]:
        # Walk the schema along `loc` to the model that rejected the key, to suggest the right one.
        tp: Any = Config
        for item in loc:
            if isinstance(item, int):
                continue
            fields = tp.model_fields if isinstance(tp, type) and issubclass(tp, BaseModel) else {}
            field = next((f for n, f in fields.items() if item in (n, f.alias)), None)
            if field is None:
                return []
            todo, tp = [field.annotation], None
            while todo and tp is None:
                cur = todo.pop()
                if isinstance(cur, type) and issubclass(cur, BaseModel):
                    tp = cur
                else:
                    todo.extend(get_args(cur))
        if not (isinstance(tp, type) and issubclass(tp, BaseModel)):
            return []
        return [f.alias or n for n, f in tp.model_fields.items()]

    lines: list[str] = []
    for err in exc.errors():
        loc_t = tuple(err["loc"])
        msg = str(err["msg"]).removeprefix("Value error, ")
        if not loc_t and err["type"] == "value_error":
            # Whole-file cross-checks (bot/config_checks.py) already start each line with the key path.
            lines.extend(line for line in msg.splitlines() if line.strip())
            continue
        loc = _fmt_loc(loc_t, data)
        if err["type"] == "extra_forbidden":
            keys = allowed_keys(loc_t[:-1])
            close = difflib.get_close_matches(str(loc_t[-1]), keys, n=1) if keys else []
            hint = f"did you mean {close[0]!r}?" if close else f"allowed: {', '.join(keys)}" if keys else ""
            msg = f"unknown key ({hint})" if hint else "unknown key (check the spelling)"
        elif err["type"] == "missing":
            msg = "required key is missing"
        elif err["type"] == "string_pattern_mismatch" and (err.get("ctx") or {}).get("pattern") == ID_RE:
            msg = f"{err['input']!r} is not a valid id (up to 41 lowercase letters, digits, '-' or '_')"
        lines.extend(f"{loc or '(top level)'}: {line}" for line in msg.splitlines() or [""])
    return "\n".join(lines)


def parse_config(data: Any, env: dict[str, str] | None = None) -> Config:
    """Validate already-parsed YAML data (secrets from `env`, default the process environment)."""
    import os

    if not isinstance(data, dict):
        raise ConfigError("config: the file must be a YAML mapping of keys to values")
    apply_env(data, dict(os.environ) if env is None else env)
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_errors(exc, data)) from None


def load_config(path: str | Path) -> Config:
    """Read and validate a config file."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{p}: no such config file (use --config PATH)")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"{p}: not valid YAML{where}: {getattr(exc, 'problem', exc)}") from None
    return parse_config(data)


def redact_url(url: str) -> str:
    """A URL with any password replaced, safe to log."""
    return re.sub(r"//([^:/@]+):[^@]*@", r"//\1:***@", url)
