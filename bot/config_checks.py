"""Cross-reference checks on a parsed config: ids, teams, rosters, routing and coverage.

Pydantic checks each key on its own; these checks need the whole file (does this team's unit exist,
can every station's request reach some team?). Every problem is one line that starts with the key
path, so `format_errors` can show it to the person editing config.yaml as-is.
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # bot.config imports this module lazily; avoid a cycle at import time
    from bot.config import Config, RosterSlot

_MAX_KNOWN = 12


def check_config(cfg: Config) -> None:
    """Raise ValueError listing every cross-reference problem in `cfg`, one `key.path: problem` per line."""
    problems = _check_ids(cfg) + _check_teams(cfg) + _check_routing(cfg) + _check_people(cfg)
    problems += _check_channels(cfg)
    # Coverage is only meaningful once references are sound; otherwise a typo in one team's unit
    # would also show up as "no team serves it" for every station, burying the real cause.
    if not problems:
        problems = _check_coverage(cfg)
    if problems:
        raise ValueError("\n".join(problems))


def config_warnings(cfg: Config) -> list[str]:
    """Things that work but are probably not meant: one line each, shown by check-config and at start."""
    warnings = []
    enabled = cfg.enabled_channels()
    real = sorted(enabled - {"simulator"})
    if "simulator" in enabled and real:
        warnings.append(
            f"simulator.enabled: the simulator is on while {', '.join(real)} is enabled: anyone who can open "
            f"http://{cfg.http.host}:{cfg.http.port}/ sees every chat, crisis alerts included. "
            "Set simulator.enabled: false in production")
    unused: dict[str, list[str]] = {}
    for team in cfg.teams:
        for channel in team.groups:
            if channel not in enabled:
                unused.setdefault(channel, []).append(team.id)
    for channel, teams in sorted(unused.items()):
        warnings.append(f"teams[].groups.{channel}: {channel} is off, so the {channel} groups of "
                        f"{len(teams)} team(s) ({_known(teams)}) are not used and get no cards")
    return warnings


def _known(ids: Iterable[str]) -> str:
    """A short, readable list of valid choices for an error message."""
    items = list(dict.fromkeys(ids))
    shown = ", ".join(items[:_MAX_KNOWN])
    return f"{shown}, … ({len(items)} in all)" if len(items) > _MAX_KNOWN else shown or "none"


def _duplicates(entries: list[tuple[str, str]], what: str) -> list[str]:
    """Problems for ids used twice; `entries` are (key path of the item, id) in file order."""
    first: dict[str, str] = {}
    problems = []
    for path, ident in entries:
        if ident in first:
            problems.append(f"{path}.id: duplicate {what} id {ident!r} (already used by {first[ident]})")
        else:
            first[ident] = path
    return problems


def _check_ids(cfg: Config) -> list[str]:
    """Ids must be unique within their kind; org units share one namespace (routing uses them all)."""
    units = [("org.center", cfg.org.center.id)]
    for i, inst in enumerate(cfg.org.institutes):
        units.append((f"org.institutes[{i}]", inst.id))
        units += [(f"org.institutes[{inst.id}].stations[{j}]", s.id) for j, s in enumerate(inst.stations)]
    problems = _duplicates(units, "org unit")
    problems += _duplicates([(f"categories[{i}]", c.id) for i, c in enumerate(cfg.categories)], "category")
    for cat in cfg.categories:
        problems += _duplicates(
            [(f"categories[{cat.id}].services[{i}]", s.id) for i, s in enumerate(cat.services)], "service"
        )
    problems += _duplicates([(f"teams[{i}]", t.id) for i, t in enumerate(cfg.teams)], "team")
    people = cfg.people
    problems += _duplicates(
        [(f"people.volunteers[{i}]", v.id) for i, v in enumerate(people.volunteers)], "volunteer"
    )
    problems += _duplicates(
        [(f"people.coordinators[{i}]", c.id) for i, c in enumerate(people.coordinators)], "coordinator"
    )
    # One person may be both coordinator and volunteer under one id; different names mean two
    # people were given the same id by mistake.
    volunteers = {v.id: v for v in people.volunteers}
    for c in people.coordinators:
        v = volunteers.get(c.id)
        if v is not None and v.name != c.name:
            problems.append(
                f"people.coordinators[{c.id}].name: {c.name!r} differs from people.volunteers[{c.id}] "
                f"named {v.name!r} (a shared id means the same person; use another id for another person)"
            )
    return problems


def _check_teams(cfg: Config) -> list[str]:
    """Each team must point at real units, categories, services and volunteers, and own its chats."""
    problems: list[str] = []
    units = cfg.unit_ids()
    categories = {c.id: c for c in cfg.categories}
    volunteers = cfg.volunteer_ids()
    chat_owner: dict[tuple[str, str], str] = {}
    for t in cfg.teams:
        key = f"teams[{t.id}]"
        if t.unit not in units:
            problems.append(f"{key}.unit: unknown org unit {t.unit!r} (known: {_known(_unit_order(cfg))})")
        for cat in t.categories:
            if cat not in categories:
                problems.append(f"{key}.categories: unknown category {cat!r} (known: {_known(categories)})")
        choices = [s.id for c in t.categories if c in categories for s in categories[c].services]
        for svc in t.services:
            if svc not in choices:
                problems.append(
                    f"{key}.services: {svc!r} is not a service of the team's categories "
                    f"({', '.join(t.categories)}; known: {_known(choices)})"
                )
        for channel, chat in t.groups.items():
            if not chat.strip():
                problems.append(f"{key}.groups.{channel}: empty chat id")
                continue
            owner = chat_owner.setdefault((channel, chat), t.id)
            if owner != t.id:
                problems.append(
                    f"{key}.groups.{channel}: chat {chat!r} is also the group of team {owner} "
                    f"(teams {owner} and {t.id} each need their own group chat)"
                )
        seen: set[str] = set()
        for m in t.members:
            if m not in volunteers:
                problems.append(f"{key}.members: unknown volunteer {m!r} (add it under people.volunteers)")
            elif m in seen:
                problems.append(f"{key}.members: {m!r} is listed twice")
            seen.add(m)
        for i, slot in enumerate(t.roster):
            problems += _check_slot(f"{key}.roster[{i}]", slot, volunteers, set(t.members), t.id)
        vetted = [c for c in t.categories if c in categories
                  and (categories[c].sensitive or not categories[c].broadcasts)]
        if vetted and not set(t.members) & cfg.counsellor_ids():
            problems.append(
                f"{key}.members: the team serves {', '.join(vetted)} (sensitive or not broadcast: only "
                "counsellors take its requests) but no member has `qualifications: [counsellor]` under "
                "people.volunteers"
            )
    return problems


def _check_slot(key: str, slot: RosterSlot, volunteers: set[str], members: set[str], team: str) -> list[str]:
    """Roster volunteers must exist and belong to the team."""
    problems = []
    for v in slot.volunteers:
        if v not in volunteers:
            problems.append(f"{key}.volunteers: unknown volunteer {v!r} (add it under people.volunteers)")
        elif v not in members:
            problems.append(f"{key}.volunteers: {v!r} is not a member of team {team} (add it to its members)")
    return problems


def _unit_order(cfg: Config) -> list[str]:
    """Org unit ids in file order (center, then each institute followed by its stations)."""
    ids = [cfg.org.center.id]
    for inst in cfg.org.institutes:
        ids += [inst.id, *(s.id for s in inst.stations)]
    return ids


def _check_routing(cfg: Config) -> list[str]:
    """Explicit rules must name real things, and the chosen team must actually serve the request."""
    problems: list[str] = []
    units = cfg.unit_ids()
    categories = {c.id: c for c in cfg.categories}
    seen: dict[tuple[str, str, str | None], int] = {}
    for i, r in enumerate(cfg.routing):
        key = f"routing[{i}]"
        if r.unit not in units:
            problems.append(f"{key}.unit: unknown org unit {r.unit!r} (known: {_known(_unit_order(cfg))})")
        cat = categories.get(r.category)
        if cat is None:
            problems.append(f"{key}.category: unknown category {r.category!r} (known: {_known(categories)})")
        elif r.service is not None and r.service not in {s.id for s in cat.services}:
            problems.append(
                f"{key}.service: {r.service!r} is not a service of category {cat.id} "
                f"(known: {_known(s.id for s in cat.services)})"
            )
        team = cfg.team(r.team)
        if team is None:
            problems.append(f"{key}.team: unknown team {r.team!r} (known: {_known(t.id for t in cfg.teams)})")
        elif r.category not in team.categories:
            problems.append(
                f"{key}.team: team {team.id} does not serve category {r.category!r} "
                f"(its categories: {', '.join(team.categories)})"
            )
        elif r.service is not None and team.services and r.service not in team.services:
            problems.append(
                f"{key}.team: team {team.id} does not offer service {r.service!r} "
                f"(its services: {', '.join(team.services)})"
            )
        # Config.route takes the first matching rule, so a second rule for the same request is dead.
        rule = (r.unit, r.category, r.service)
        if rule in seen:
            problems.append(f"{key}: same unit/category/service as routing[{seen[rule]}], which wins")
        else:
            seen[rule] = i
    return problems


def _check_people(cfg: Config) -> list[str]:
    """Coordinators must sit at a real unit, and someone must coordinate at all."""
    problems: list[str] = []
    units = cfg.unit_ids()
    for c in cfg.people.coordinators:
        if c.unit not in units:
            problems.append(
                f"people.coordinators[{c.id}].unit: unknown org unit {c.unit!r} "
                f"(known: {_known(_unit_order(cfg))})"
            )
    if not cfg.people.coordinators:
        problems.append(
            "people.coordinators: at least one coordinator (专管员) is needed to receive escalations"
        )
    return problems


def _check_coverage(cfg: Config) -> list[str]:
    """Every station must reach some team for every category, or its residents' requests go nowhere."""
    problems = []
    for cat in cfg.categories:
        for st in cfg.stations():
            # service=None is the hardest case: a request described in the resident's own words
            # needs a general team, not only teams for particular services.
            if cfg.route(st.id, cat.id, None) is None:
                problems.append(
                    f"categories[{cat.id}]: no team serves it for station {st.id} "
                    "(add a team at the station, its institute or the center)"
                )
    return problems


def _check_channels(cfg: Config) -> list[str]:
    """Channel settings that name teams or people must name real ones, each corp member once."""
    team_ids = [t.id for t in cfg.teams]
    problems = [f"channels.wecom.aibot.fallback_teams: unknown team {tid!r} (known: {_known(team_ids)})"
                for tid in cfg.channels.wecom.aibot.fallback_teams if tid not in team_ids]
    owner: dict[str, str] = {}
    people = [("volunteers", p.id, p.wecom_userid) for p in cfg.people.volunteers]
    people += [("coordinators", p.id, p.wecom_userid) for p in cfg.people.coordinators]
    for kind, pid, userid in people:
        if userid is None:
            continue
        if owner.setdefault(userid, pid) != pid:
            problems.append(f"people.{kind}[{pid}].wecom_userid: {userid!r} is already {owner[userid]}'s")
    return problems
