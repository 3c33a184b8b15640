"""config.yaml loads, routes requests up the org tree, and bad files give messages naming the key."""
from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.config import Config, ConfigError, load_config, parse_config

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "config.yaml"
STATIONS = ("s-xingfu", "s-guangming", "s-heping", "s-tuanjie")


@pytest.fixture(scope="module")
def shipped_data() -> dict[str, Any]:
    """The shipped config.yaml as plain YAML data (tests mutate copies)."""
    return yaml.safe_load(SHIPPED.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def shipped() -> Config:
    """The shipped config, validated."""
    return load_config(SHIPPED)


def error_of(data: dict[str, Any], mutate: Callable[[dict[str, Any]], object]) -> str:
    """The ConfigError text for a copy of `data` changed by `mutate`."""
    bad = copy.deepcopy(data)
    mutate(bad)
    with pytest.raises(ConfigError) as info:
        parse_config(bad)
    text = str(info.value)
    assert "Traceback" not in text and "pydantic" not in text.lower()
    return text


def team_by_id(data: dict[str, Any], team_id: str) -> dict[str, Any]:
    """The raw dict of a team in YAML data."""
    return next(t for t in data["teams"] if t["id"] == team_id)


# ---- the shipped file ------------------------------------------------------------------------


def test_shipped_config_loads(shipped: Config) -> None:
    assert shipped.locale == "zh_CN"
    assert shipped.timezone == "Asia/Shanghai"
    assert shipped.simulator.enabled
    assert shipped.storage.database_url == "sqlite+aiosqlite:///data/wuwei.db"
    assert shipped.storage.redis_url is None
    assert shipped.org.center.id == "c-county"
    assert {i.id for i in shipped.org.institutes} == {"i-xingfu", "i-heping"}
    assert {s.id for s in shipped.stations()} == set(STATIONS)
    assert [c.id for c in shipped.categories] == ["elderly", "children", "hardship", "psych", "public"]
    cats = {c.id: c for c in shipped.categories}
    assert cats["psych"].sensitive and not cats["public"].resident_menu
    assert all(len(cats[c].services) >= 5 for c in ("elderly", "children", "hardship"))
    assert all(len(s.name.zh_CN) <= 6 for c in shipped.categories for s in c.services)


def test_shipped_people_and_teams(shipped: Config) -> None:
    team = shipped.team("t-xingfu-elderly")
    assert team is not None and team.unit == "s-xingfu" and "v-liming" in team.members
    assert any(c.id == "c-zhao" for c in shipped.people.coordinators)
    assert [v.id for v in shipped.people.volunteers if not v.trained] == ["v-songjia"]
    for st in STATIONS:
        station_teams = [t for t in shipped.teams if t.unit == st]
        assert len(station_teams) >= 3
        assert all(len(t.members) >= 3 for t in station_teams)
    chats = [chat for t in shipped.teams for chat in t.groups.values()]
    assert len(chats) == len(set(chats)) == len(shipped.teams)


def test_shipped_routes_to_station_teams_then_up(shipped: Config) -> None:
    for st in STATIONS:
        short = st.removeprefix("s-")
        for cat in ("elderly", "children", "hardship"):
            team = shipped.route(st, cat, None)
            assert team is not None and team.id == f"t-{short}-{cat}"
        psych = shipped.route(st, "psych", "talk")
        assert psych is not None and psych.id == "t-county-psych"
        public = shipped.route(st, "public", None)
        assert public is not None and public.unit == shipped.parent_unit(st)


def test_explicit_rule_wins(shipped: Config) -> None:
    legal = shipped.route("s-xingfu", "hardship", "legal")
    assert legal is not None and legal.id == "t-county-legal"
    # Only the service named in the rule is redirected; other hardship requests stay local.
    daily = shipped.route("s-xingfu", "hardship", "daily")
    assert daily is not None and daily.id == "t-xingfu-hardship"
    # No rule for 光明社区: its station team handles legal aid itself.
    other = shipped.route("s-guangming", "hardship", "legal")
    assert other is not None and other.id == "t-guangming-hardship"


# ---- routing on a small hand-built tree -------------------------------------------------------


def small_config(teams: list[dict[str, Any]], routing: list[dict[str, Any]] | None = None) -> Config:
    """A minimal valid config: center → one institute → two stations, two categories."""
    return parse_config(
        {
            "org": {
                "center": {"id": "c", "name": "中心"},
                "institutes": [
                    {
                        "id": "i",
                        "name": "所",
                        "stations": [
                            {"id": "s1", "name": "一站", "community": "一村"},
                            {"id": "s2", "name": "二站", "community": "二村"},
                        ],
                    }
                ],
            },
            "categories": [
                {
                    "id": "elderly",
                    "name": {"zh_CN": "为老"},
                    "services": [{"id": "meal", "name": {"zh_CN": "送餐"}}],
                },
                {
                    "id": "hardship",
                    "name": {"zh_CN": "帮困"},
                    "services": [
                        {"id": "daily", "name": {"zh_CN": "生活帮扶"}},
                        {"id": "legal", "name": {"zh_CN": "法律援助"}},
                    ],
                },
            ],
            "teams": teams,
            "routing": routing or [],
            "people": {"coordinators": [{"id": "c-a", "name": "甲", "unit": "c"}]},
        }
    )


def test_route_falls_back_up_the_tree() -> None:
    cfg = small_config(
        [
            {"id": "t-s1-elderly", "name": "一站为老", "unit": "s1", "categories": ["elderly"]},
            {"id": "t-i-all", "name": "所便民", "unit": "i", "categories": ["elderly"]},
            {"id": "t-c-hardship", "name": "中心帮困", "unit": "c", "categories": ["hardship"]},
            {"id": "t-c-legal", "name": "法律", "unit": "c", "categories": ["hardship"],
             "services": ["legal"]},
        ]
    )
    assert cfg.route("s1", "elderly", "meal").id == "t-s1-elderly"  # type: ignore[union-attr]
    assert cfg.route("s2", "elderly", "meal").id == "t-i-all"  # type: ignore[union-attr]
    assert cfg.route("s2", "hardship", None).id == "t-c-hardship"  # type: ignore[union-attr]
    # At the same level a team for exactly that service beats the general one.
    assert cfg.route("s1", "hardship", "legal").id == "t-c-legal"  # type: ignore[union-attr]


def test_small_config_rule_beats_station_team() -> None:
    teams = [
        {"id": "t-s1", "name": "一站", "unit": "s1", "categories": ["elderly", "hardship"]},
        {"id": "t-s2", "name": "二站", "unit": "s2", "categories": ["elderly", "hardship"]},
        {"id": "t-c", "name": "中心", "unit": "c", "categories": ["hardship"]},
    ]
    cfg = small_config(teams, routing=[{"unit": "s1", "category": "hardship", "team": "t-c"}])
    assert cfg.route("s1", "hardship", "daily").id == "t-c"  # type: ignore[union-attr]
    assert cfg.route("s1", "elderly", None).id == "t-s1"  # type: ignore[union-attr]
    assert cfg.route("s2", "hardship", "daily").id == "t-s2"  # type: ignore[union-attr]


def test_small_config_without_coverage_names_category_and_station() -> None:
    with pytest.raises(ConfigError) as info:
        small_config([{"id": "t-s1", "name": "一站", "unit": "s1", "categories": ["elderly", "hardship"]}])
    text = str(info.value)
    assert "categories[elderly]: no team serves it for station s2" in text
    assert "categories[hardship]: no team serves it for station s2" in text
    assert "station s1" not in text


# ---- bad files ----------------------------------------------------------------------------------


def test_unknown_top_level_key(shipped_data: dict[str, Any]) -> None:
    text = error_of(shipped_data, lambda d: d.update(timings_=1))
    assert text.startswith("timings_: unknown key")
    assert "timings" in text  # suggests the right spelling


def test_unknown_nested_key(shipped_data: dict[str, Any]) -> None:
    text = error_of(shipped_data, lambda d: d["timings"].update(escalate_after_minute=90))
    assert text == "timings.escalate_after_minute: unknown key (did you mean 'escalate_after_minutes'?)"


def test_unknown_key_in_list_item_is_named_by_id(shipped_data: dict[str, Any]) -> None:
    text = error_of(shipped_data, lambda d: team_by_id(d, "t-xingfu-elderly").update(member=[]))
    assert text.startswith("teams[t-xingfu-elderly].member: unknown key")
    assert "'members'" in text


def test_missing_required_key(shipped_data: dict[str, Any]) -> None:
    text = error_of(shipped_data, lambda d: team_by_id(d, "t-xingfu-children").pop("unit"))
    assert text == "teams[t-xingfu-children].unit: required key is missing"
    assert error_of(shipped_data, lambda d: d.pop("org")) == "org: required key is missing"


def test_duplicate_team_id(shipped_data: dict[str, Any]) -> None:
    def dup(d: dict[str, Any]) -> None:
        clone = copy.deepcopy(team_by_id(d, "t-xingfu-elderly"))
        clone["groups"] = {"simulator": "grp-other"}
        d["teams"].append(clone)

    text = error_of(shipped_data, dup)
    n = len(shipped_data["teams"])
    assert f"teams[{n}].id: duplicate team id 't-xingfu-elderly' (already used by teams[0])" in text


def test_team_with_unknown_unit(shipped_data: dict[str, Any]) -> None:
    text = error_of(shipped_data, lambda d: team_by_id(d, "t-xingfu-elderly").update(unit="st-x"))
    assert text.startswith("teams[t-xingfu-elderly].unit: unknown org unit 'st-x' (known: ")
    assert "s-xingfu" in text


def test_team_with_unknown_category(shipped_data: dict[str, Any]) -> None:
    text = error_of(shipped_data, lambda d: team_by_id(d, "t-xingfu-elderly").update(categories=["kids"]))
    assert "teams[t-xingfu-elderly].categories: unknown category 'kids'" in text


def test_missing_team_for_a_category(shipped_data: dict[str, Any]) -> None:
    def drop_psych(d: dict[str, Any]) -> None:
        d["teams"] = [t for t in d["teams"] if "psych" not in t["categories"]]

    lines = error_of(shipped_data, drop_psych).splitlines()
    assert lines == [
        f"categories[psych]: no team serves it for station {st} "
        "(add a team at the station, its institute or the center)"
        for st in STATIONS
    ]


def test_group_used_by_two_teams(shipped_data: dict[str, Any]) -> None:
    def share(d: dict[str, Any]) -> None:
        team_by_id(d, "t-xingfu-children")["groups"]["simulator"] = "grp-xingfu-elderly"

    text = error_of(shipped_data, share)
    assert text.startswith("teams[t-xingfu-children].groups.simulator: chat 'grp-xingfu-elderly'")
    assert "t-xingfu-elderly" in text and "t-xingfu-children" in text


def test_roster_with_unknown_volunteer(shipped_data: dict[str, Any]) -> None:
    def add(d: dict[str, Any]) -> None:
        team_by_id(d, "t-xingfu-elderly")["roster"][0]["volunteers"].append("v-nobody")

    text = error_of(shipped_data, add)
    assert text == (
        "teams[t-xingfu-elderly].roster[0].volunteers: unknown volunteer 'v-nobody' "
        "(add it under people.volunteers)"
    )


def test_roster_volunteer_must_be_member(shipped_data: dict[str, Any]) -> None:
    def add(d: dict[str, Any]) -> None:
        team_by_id(d, "t-xingfu-elderly")["roster"][0]["volunteers"].append("v-sunli")

    text = error_of(shipped_data, add)
    assert "teams[t-xingfu-elderly].roster[0].volunteers: 'v-sunli' is not a member of team" in text


def test_roster_to_before_from(shipped_data: dict[str, Any]) -> None:
    def swap(d: dict[str, Any]) -> None:
        team_by_id(d, "t-xingfu-elderly")["roster"][1].update({"from": "18:00", "to": "12:00"})

    text = error_of(shipped_data, swap)
    assert text == "teams[t-xingfu-elderly].roster[1]: 'to' must be later than 'from'"


def test_roster_unquoted_times_are_caught(shipped_data: dict[str, Any]) -> None:
    # What yaml.safe_load makes of an unquoted `from: 9:00` (a base-60 integer, not a time).
    assert yaml.safe_load("from: 9:00\nto: 12:00") == {"from": 540, "to": 720}

    def unquoted(d: dict[str, Any]) -> None:
        team_by_id(d, "t-xingfu-elderly")["roster"][0].update({"from": 540, "to": 720})

    lines = error_of(shipped_data, unquoted).splitlines()
    assert [line.split(":")[0] for line in lines] == [
        "teams[t-xingfu-elderly].roster[0].from",
        "teams[t-xingfu-elderly].roster[0].to",
    ]
    assert all('write the time as "HH:MM" in quotes' in line for line in lines)


def test_roster_one_unquoted_time_is_caught(shipped_data: dict[str, Any]) -> None:
    def unquoted(d: dict[str, Any]) -> None:
        team_by_id(d, "t-xingfu-elderly")["roster"][0]["from"] = 540  # `from: 9:00`, `to: "12:00"`

    text = error_of(shipped_data, unquoted)
    assert "teams[t-xingfu-elderly].roster[0].from" in text and "quote" in text


def test_escalate_not_after_remind(shipped_data: dict[str, Any]) -> None:
    text = error_of(shipped_data, lambda d: d["timings"].update(escalate_after_minutes=30))
    assert text == "timings: escalate_after_minutes must be larger than remind_after_minutes"


def test_bad_routing_rule(shipped_data: dict[str, Any]) -> None:
    rule = {"unit": "s-guangming", "category": "psych", "team": "t-xingfu-elderly"}
    text = error_of(shipped_data, lambda d: d["routing"].append(rule))
    assert text == (
        "routing[1].team: team t-xingfu-elderly does not serve category 'psych' (its categories: elderly)"
    )
    text = error_of(shipped_data, lambda d: d["routing"].append({**rule, "unit": "s-x", "team": "t-nope"}))
    assert "routing[1].unit: unknown org unit 's-x'" in text
    assert "routing[1].team: unknown team 't-nope'" in text


def test_coordinator_and_volunteer_may_share_an_id_only_with_one_name(shipped_data: dict[str, Any]) -> None:
    same = {"id": "v-liming", "name": "李明", "unit": "s-xingfu"}
    bad = copy.deepcopy(shipped_data)
    bad["people"]["coordinators"].append(same)
    parse_config(bad)  # one person, two roles
    text = error_of(shipped_data, lambda d: d["people"]["coordinators"].append({**same, "name": "李四"}))
    assert text.startswith(
        "people.coordinators[v-liming].name: '李四' differs from people.volunteers[v-liming] named '李明'"
    )


def test_coordinator_required(shipped_data: dict[str, Any]) -> None:
    text = error_of(shipped_data, lambda d: d["people"].update(coordinators=[]))
    assert text.startswith("people.coordinators: at least one coordinator")


def test_several_problems_one_line_each(shipped_data: dict[str, Any]) -> None:
    def two(d: dict[str, Any]) -> None:
        team_by_id(d, "t-xingfu-elderly")["unit"] = "st-x"
        team_by_id(d, "t-heping-elderly")["members"].append("v-ghost")

    lines = error_of(shipped_data, two).splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("teams[t-xingfu-elderly].unit: ")
    assert lines[1].startswith("teams[t-heping-elderly].members: unknown volunteer 'v-ghost'")


def test_bad_yaml_syntax(tmp_path: Path) -> None:
    p = tmp_path / "config.yaml"
    p.write_text("locale: zh_CN\nteams: [\n  - id: x\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(p)
    text = str(info.value)
    assert text.startswith(f"{p}: not valid YAML at line ")
    assert "\n" not in text


def test_non_mapping_file(tmp_path: Path) -> None:
    p = tmp_path / "config.yaml"
    p.write_text("- just\n- a list\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="must be a YAML mapping"):
        load_config(p)
    with pytest.raises(ConfigError, match="must be a YAML mapping"):
        parse_config(None)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such config file"):
        load_config(tmp_path / "nope.yaml")


def test_counsellors_crisis_timing_and_broadcast(shipped: Config) -> None:
    assert shipped.counsellor_ids() == {"v-sunli", "v-tangyu"}
    assert shipped.timings.crisis_escalate_after_minutes == 5
    cats = {c.id: c for c in shipped.catalog().categories}
    assert cats["psych"].broadcast is False and cats["elderly"].broadcast is True  # default by sensitivity


def test_unknown_qualification(shipped_data: dict[str, Any]) -> None:
    def bad(d: dict[str, Any]) -> None:
        next(v for v in d["people"]["volunteers"] if v["id"] == "v-liming")["qualifications"] = ["doctor"]

    assert "people.volunteers[v-liming].qualifications[0]" in error_of(shipped_data, bad)


def test_counsellor_team_needs_a_counsellor(shipped_data: dict[str, Any]) -> None:
    def bad(d: dict[str, Any]) -> None:
        for v in d["people"]["volunteers"]:
            v.pop("qualifications", None)

    assert "teams[t-county-psych].members: the team serves psych" in error_of(shipped_data, bad)


def test_crisis_escalation_must_be_a_positive_number_of_minutes(shipped_data: dict[str, Any]) -> None:
    assert "timings.crisis_escalate_after_minutes" in error_of(
        shipped_data, lambda d: d["timings"].__setitem__("crisis_escalate_after_minutes", 0))
    assert "timings.crisis_escalat" in error_of(
        shipped_data, lambda d: d["timings"].__setitem__("crisis_escalat", 5))  # unknown key
