"""Transcripts of the request's life as pure steps (flows/lifecycle.py): each step's effects, in order."""
from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from flows import lifecycle as lc
from flows import requests as rq

NOW = datetime(2026, 11, 23, 2, 0)
FACTS = lc.Facts(id=7, number="20261123-0001", status=rq.OPEN, team_id="t-a", station_id="s-a",
                 resident_id="r-1", service="陪同就医", community="幸福社区")
CLAIMED = lc.Facts(**{**FACTS.__dict__, "status": rq.CLAIMED, "volunteer_id": "v-1",
                      "claimed_at": NOW - timedelta(minutes=80)})


def test_claim_by_press() -> None:
    assert lc.claim(FACTS, "v-1", "李明", "press", "v-1", NOW) == (
        lc.Transition("claim", {"volunteer_id": "v-1", "claimed_at": NOW}),
        lc.AddClaim("v-1", "press"),
        lc.History("v-1", "claimed", {"volunteer": "v-1"}),
        lc.CancelTimers(("remind", "escalate")),
        lc.Refresh(),
        lc.PostDetail("v-1"),
        lc.TellResident("resident.claimed", {"number": "20261123-0001", "name": "李明"}),
    )


def test_assign_by_a_coordinator_is_the_assign_transition() -> None:
    step = lc.claim(FACTS, "v-1", "李明", "assign", "c-zhao", NOW)
    assert step[0] == lc.Transition("assign", {"volunteer_id": "v-1", "claimed_at": NOW})
    assert lc.History("c-zhao", "assigned", {"volunteer": "v-1"}) in step


def test_release_reopens_and_nudges_the_others() -> None:
    assert lc.release(CLAIMED, "v-1") == (
        lc.Transition("release", {"volunteer_id": None, "claimed_at": None, "started_at": None}),
        lc.ReleaseClaims(),
        lc.History("v-1", "released"),
        lc.Refresh(),
        lc.TellResident("resident.released", {"number": "20261123-0001"}),
        lc.Nudge("t-a", except_id="v-1"),
    )


def test_start() -> None:
    assert lc.start(CLAIMED, "v-1", "李明", NOW) == (
        lc.Transition("start", {"started_at": NOW}),
        lc.History("v-1", "started"),
        lc.Refresh(),
        lc.TellResident("resident.started", {"number": "20261123-0001", "name": "李明"}),
    )


@pytest.mark.parametrize(("rating_after", "ask"), [(0, lc.AskRating()), (30, lc.AddTimer("rate", 30))])
def test_finish_records_hours_and_asks_for_a_rating(rating_after: int, ask: lc.Effect) -> None:
    step = lc.finish(CLAIMED, "v-1", NOW, lc.Settings(rating_after_minutes=rating_after, points_per_hour=10))
    assert step == (
        lc.Transition("finish", {"finished_at": NOW, "hours": 1.5}),  # 80 minutes: 1.5 h, halves up
        lc.RecordHours("v-1", 1.5, 15.0),
        lc.History("v-1", "finished", {"hours": 1.5}),
        lc.Refresh(),
        lc.AskHours("v-1", 1.5),
        ask,
    )


@pytest.mark.parametrize(("minutes", "hours"), [(0, 0.5), (14, 0.5), (45, 1.0), (75, 1.5), (60 * 30, 12.0)])
def test_default_hours_are_half_hours_within_bounds(minutes: int, hours: float) -> None:
    facts = lc.Facts(**{**CLAIMED.__dict__, "claimed_at": NOW - timedelta(minutes=minutes)})
    assert lc.default_hours(facts, NOW, 12) == hours


def test_cancel_tells_whoever_has_it_as_written() -> None:
    assert lc.cancel(CLAIMED, "r-1", NOW) == (
        lc.Transition("cancel", {"closed_at": NOW}),
        lc.History("r-1", "cancelled"),
        lc.CancelTimers(("remind", "escalate", "rate")),
        lc.Refresh(),
        lc.TellClaimer("detail.cancelled_by_resident", {"number": "20261123-0001"}),
    )


def test_escalate_to_the_parent_team() -> None:
    step = lc.escalate(FACTS, "timeout", "t-a", "幸福社区为老服务队", ("t-parent", "城东为老服务队"))
    assert step == (
        lc.Transition("escalate", {"team_id": "t-parent", "escalation_level": 1}),
        lc.AlertCoordinators("coord.escalated_timeout", {"number": "20261123-0001", "service": "陪同就医",
                                                         "community": "幸福社区", "team": "城东为老服务队",
                                                         "from_team": "幸福社区为老服务队"}),
        lc.Refresh(),
        lc.Dispatch("t-parent", "escalate"),
    )


def test_escalate_at_the_top_asks_the_coordinators() -> None:
    assert lc.escalate(FACTS, "nobody_on_duty", "t-a", "队", None) == (
        lc.Transition("escalate"),
        lc.History(None, "stuck", {"why": "nobody_on_duty"}),
        lc.AlertCoordinators("coord.stuck_nobody_on_duty", {"number": "20261123-0001", "service": "陪同就医",
                                                            "community": "幸福社区"}),
    )


def test_remind_only_while_open() -> None:
    assert lc.remind(FACTS, "t-a") == (lc.History(None, "reminded", {"team": "t-a"}), lc.Remind("t-a"))
    assert lc.remind(CLAIMED, "t-a") == ()


FINISHED = lc.Facts(**{**CLAIMED.__dict__, "status": rq.FINISHED})


@pytest.mark.parametrize(("stars", "alert"), [(5, False), (3, False), (2, True), (1, True)])
def test_rating_once_and_low_ones_alert(stars: int, alert: bool) -> None:
    step = lc.rate(FINISHED, stars, "r-1", "李明")
    assert step[:2] == (lc.AddRating(stars), lc.History("r-1", "rated", {"stars": stars}))
    alerts = [e for e in step if isinstance(e, lc.AlertCoordinators)]
    assert alerts == ([lc.AlertCoordinators("coord.low_rating", {"number": "20261123-0001", "stars": stars,
                                                                  "volunteer": "李明"})] if alert else [])


def test_no_rating_before_the_service_is_done_or_out_of_range() -> None:
    assert lc.rate(CLAIMED, 5, "r-1", "李明") == ()
    assert lc.rate(FINISHED, 6, "r-1", "李明") == ()


@pytest.mark.parametrize(("facts", "kind", "rated", "step"), [
    (FACTS, "remind", False, "remind"), (FACTS, "escalate", False, "escalate"), (CLAIMED, "remind", False, None),
    (CLAIMED, "escalate", False, None), (FINISHED, "rate", False, "rate"), (FINISHED, "rate", True, None),
    (FACTS, "rate", False, None),
])
def test_which_step_a_due_timer_leads_to(facts: lc.Facts, kind: str, rated: bool, step: str | None) -> None:
    assert lc.timer_step(facts, kind, rated) == step


@pytest.mark.parametrize(("volunteer", "in_team", "trained", "why"), [
    (False, False, False, "claim.not_volunteer"), (True, False, True, "claim.not_in_team"),
    (True, True, False, "claim.not_trained"), (True, True, True, None),
])
def test_who_may_claim(volunteer: bool, in_team: bool, trained: bool, why: str | None) -> None:
    assert lc.claim_refusal(volunteer, in_team, trained) == why


def test_every_gate_leads_its_step() -> None:
    """The interpreter stops at a lost gate; that is only safe when the gate comes first."""
    steps = [lc.claim(FACTS, "v", "n", "press", "v", NOW), lc.release(CLAIMED, "v"), lc.start(CLAIMED, "v", "n", NOW),
             lc.finish(CLAIMED, "v", NOW, lc.Settings()), lc.cancel(CLAIMED, "r", NOW),
             lc.escalate(FACTS, "timeout", "t", "n", None), lc.escalate(FACTS, "timeout", "t", "n", ("p", "P")),
             lc.rate(FINISHED, 4, "r", "n")]
    for step in steps:
        assert isinstance(step[0], lc.GATES)
        assert not any(isinstance(e, lc.GATES) for e in step[1:])
        if isinstance(step[0], lc.Transition):
            assert step[0].action in rq.TRANSITIONS


SETTINGS = lc.Settings(hours_max=8, points_per_hour=10)


@pytest.mark.parametrize(("who", "facts", "hours", "step"), [
    ("v-1", "finished", 2.5, (lc.RecordHours("v-1", 2.5, 25.0), lc.History("v-1", "hours", {"hours": 2.5}))),
    ("v-1", "finished", 8, (lc.RecordHours("v-1", 8, 80.0), lc.History("v-1", "hours", {"hours": 8}))),
    ("v-1", "finished", 8.5, ()),  # over hours_max
    ("v-1", "finished", 0, ()),  # under half an hour
    ("v-2", "finished", 2, ()),  # not the claimer
    ("v-1", "claimed", 2, ()),  # not finished yet
])
def test_correct_hours(who: str, facts: str, hours: float, step: lc.Step) -> None:
    f = lc.Facts(**{**CLAIMED.__dict__, "status": rq.FINISHED if facts == "finished" else rq.CLAIMED})
    assert lc.correct_hours(f, who, hours, SETTINGS) == step


def test_a_comment_is_kept_and_after_a_low_rating_goes_to_the_coordinators_masked() -> None:
    f = lc.Facts(**{**CLAIMED.__dict__, "status": rq.FINISHED})
    text = "来得太晚了，打我电话 138 1234 5678"
    assert lc.comment(f, "r-1", text, 5) == (lc.AddComment(text),)
    low = lc.comment(f, "r-1", text, 2)
    assert low[0] == lc.AddComment(text) and isinstance(low[1], lc.AlertCoordinators)
    assert low[1].key == "coord.low_rating_comment" and "5678" in low[1].params["comment"]
    assert "1234" not in low[1].params["comment"]  # masked for the coordinators
    assert lc.comment(f, "r-2", text, 2) == ()  # not the resident of the request
    assert lc.comment(f, "r-1", text, None) == ()  # not rated
    assert lc.comment(f, "r-1", "   ", 2) == ()
    assert lc.comment(f, "r-1", "好" * 600, 5) == (lc.AddComment("好" * 500),)
