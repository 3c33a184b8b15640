"""The crisis detector (flows.safety) against the labelled set tests/data/crisis_eval.jsonl, plus focused cases.

Splits. `tune`: every row the rules and the model were written or trained against (the team's own rows, written
from the kinds of CARE.md in several rounds; the earlier held-out rows were folded in here once they had been
evaluated). `test` (rows with "source": "blind"): 642 messages written by a writer who never saw the rules, the
model or any other row, from CARE.md and CONVERSATION.md only, and never used for tuning. On it the detector does
NOT reach the target of 95 % self-harm recall (first run: 180/230 = 77.8 %, false alarms 3.4 %; medical recall
39/83 = 47 %. Round 4 — both models trained on every tune row, 454 of them new, the medical model added —
measured once: self-harm 212/230 = 92.2 % at 30/412 = 7.3 % false alarms; medical 79/83 = 95.2 % at 6/559 =
1.1 %): the floors below are what it honestly meets, and the target is kept as a strict xfail so that it shows
up when the detector gets there. Do not move rows between splits, print test rows, or tune on them.
"""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from flows import safety

DATA = Path(__file__).parent / "data" / "crisis_eval.jsonl"
ROWS: list[dict[str, str]] = [json.loads(line) for line in DATA.read_text(encoding="utf-8").splitlines()
                              if line.strip()]
LABELS = ("self_harm", "medical", "none")

# What the rules and the model meet on the held-out test split, with a little room; and the target of the issue.
TEST_FLOOR = {"self_harm_recall": 0.90, "self_harm_false_alarms": 0.08, "medical_recall": 0.93,
              "medical_false_alarms": 0.02}
TARGET_RECALL = 0.95


def rates(split: str) -> dict[str, float]:
    rows = [r for r in ROWS if r["split"] == split]
    got = [(r["label"], safety.detect(r["text"]) or "none") for r in rows]

    def recall(label: str) -> float:
        hits = [g == label for lab, g in got if lab == label]
        return sum(hits) / len(hits)

    def false_alarms(label: str) -> float:
        flagged = [g == label for lab, g in got if lab != label]
        return sum(flagged) / len(flagged)

    return {"self_harm_recall": recall("self_harm"), "self_harm_false_alarms": false_alarms("self_harm"),
            "medical_recall": recall("medical"), "medical_false_alarms": false_alarms("medical")}


# ---- the data set -----------------------------------------------------------------------------------------

def test_set_size_and_balance() -> None:
    labels = Counter(r["label"] for r in ROWS)
    assert len(ROWS) >= 360
    assert labels["self_harm"] >= 110 and labels["medical"] >= 40
    assert labels["none"] >= len(ROWS) / 2
    assert set(labels) == set(LABELS)
    assert {r["split"] for r in ROWS} == {"tune", "test"}
    test = [r for r in ROWS if r["split"] == "test"]
    assert len(test) >= 300 and all(r.get("source") == "blind" for r in test)
    assert sum(r["label"] == "none" for r in test) >= len(test) / 2  # at least half not crises
    for label in LABELS:
        assert any(r["label"] == label for r in test), label


def test_texts_are_unique_and_not_empty() -> None:
    texts = [r["text"] for r in ROWS]
    assert len(texts) == len(set(texts))
    assert all(r["text"].strip() for r in ROWS)


# ---- the numbers ------------------------------------------------------------------------------------------

def test_floors_on_the_held_out_test_split() -> None:
    got = rates("test")
    assert got["self_harm_recall"] >= TEST_FLOOR["self_harm_recall"], got
    assert got["self_harm_false_alarms"] <= TEST_FLOOR["self_harm_false_alarms"], got
    assert got["medical_recall"] >= TEST_FLOOR["medical_recall"], got
    assert got["medical_false_alarms"] <= TEST_FLOOR["medical_false_alarms"], got


@pytest.mark.xfail(strict=True, reason="target of the issue not met yet: blind test-split self-harm recall is 92.2 %")
def test_target_recall_on_the_held_out_test_split() -> None:
    assert rates("test")["self_harm_recall"] >= TARGET_RECALL


def test_tune_split_stays_where_the_rules_were_adjusted() -> None:
    got = rates("tune")  # the models are trained on it: 99.6 % / 1.7 %, medical 95.8 % / 0.5 %
    assert got["self_harm_recall"] >= 0.97 and got["self_harm_false_alarms"] <= 0.04, got
    assert got["medical_recall"] >= 0.93 and got["medical_false_alarms"] <= 0.02, got


# Speed (< 5 ms a message, a 2,000-character one too) is measured by `python -m bench.crisis`, not asserted
# here: a timing assertion on this shared machine fails when other jobs run, and proves nothing when they do not.


def test_the_cue_prefilters_never_hide_a_match() -> None:
    """A cue is skipped on a text that holds none of the characters it `needs` (derived from its pattern): every
    match of every cue on the tune rows holds one of them, and a cue with nothing to check is rare."""
    from flows.safety_rules import MEDICAL, SELF_HARM

    cues = [*SELF_HARM, *MEDICAL, safety.HYPERBOLE, safety.INSIST]
    texts = [safety.blanked(r["text"]) for r in ROWS if r["split"] == "tune"]
    for cue in cues:
        for text in texts:
            for m in cue.pattern.finditer(text):
                assert cue.may_match(set(m.group())), (cue.name, m.group())
    assert sum(cue.needs is None for cue in cues) <= len(cues) // 10


# ---- focused cases (none of them is a row of the data set) ------------------------------------------------

@pytest.mark.parametrize("text", ["这两天冻死了，暖气什么时候来", "哈哈哈笑死我了，孙女太可爱", "好想你们，想死你们了",
                                  "搬了一天家，累得要死", "急死人了，钥匙找不到", "饿死我了"])
def test_idioms_built_on_death_are_not_crises(text: str) -> None:
    assert safety.detect(text) is None


@pytest.mark.parametrize("text", ["我可不会想不开的，放心", "我从没想过自杀，就是想有人说说话",
                                  "我才不想死呢，还要带孙子"])
def test_negation_before_the_words(text: str) -> None:
    assert safety.detect(text) is None


def test_distance_fiction_and_news_but_not_when_the_writer_joins_in() -> None:
    assert safety.detect("电视剧里有人跳楼了，吓我一跳") is None
    assert safety.detect("新闻说有人喝农药被救了") is None
    assert safety.detect("看了新闻我也想跳楼") == "self_harm"


@pytest.mark.parametrize("text", ["前年中风过，现在说话有点慢，想请人陪同复查", "我爸中风后行动不便，需要人陪同复查"])
def test_a_past_stroke_is_not_an_emergency(text: str) -> None:
    assert safety.detect(text) is None


@pytest.mark.parametrize("text", ["去年做过心脏搭桥，现在胸口疼得厉害，喘不上气",
                                  "我妈以前中风过，现在又嘴歪了说不出话",
                                  "之前摔过一次，这次摔倒起不来了", "上个月出院的，今天又晕倒了"])
def test_an_emergency_now_after_a_clause_about_the_past(text: str) -> None:
    assert safety.detect(text) == "medical"  # the past is judged clause by clause, not for the whole message


@pytest.mark.parametrize("text", ["如果老人晕倒了应该怎么办", "万一他又晕倒了怎么办，想学学急救",
                                  "假如半夜喘不上气，要先打120还是先叫邻居"])
def test_a_hypothetical_is_not_made_an_emergency_by_its_question(text: str) -> None:
    assert safety.detect(text) is None


def test_a_stroke_now_is_medical_even_after_an_old_one() -> None:
    assert safety.detect("我爸突然嘴歪了说话不清楚") == "medical"
    assert safety.detect("去年中风过，刚才突然又说不出话，半边身子动不了") == "medical"


@pytest.mark.parametrize("text", ["孙子把安眠药当糖吃了", "小孩把奶奶的降压药当糖果吃了好几颗，现在怎么办",
                                  "我爸误喝了农药，现在在吐", "我不小心吃多了安眠药", "外孙喝了半瓶敌敌畏，快来人啊"])
def test_something_swallowed_by_mistake_is_a_poisoning_not_self_harm(text: str) -> None:
    assert safety.detect(text) == "medical"  # 120 first, the unit's coordinators — not the counsellors


@pytest.mark.parametrize("text", ["我想把安眠药当糖吃，吃完就不用醒了", "干脆把农药当水喝了算了",
                                  "活着没意思，我偷偷把药都吃了", "我吃了一整瓶安眠药",
                                  "孙子把安眠药当糖吃了，都怪我，我也不想活了"])
def test_taking_it_on_purpose_stays_self_harm(text: str) -> None:
    assert safety.detect(text) == "self_harm"


def test_a_poisoning_long_ago_is_not_an_emergency() -> None:
    assert safety.detect("孙子去年误喝过农药，现在还好") is None


@pytest.mark.parametrize("text", ["我想结束这个请求，不需要了", "帮我把单子撤了", "不用派人了，结束吧"])
def test_ending_or_cancelling_a_request(text: str) -> None:
    assert safety.detect(text) is None


@pytest.mark.parametrize("text", [None, "", "   ", "\n"])
def test_no_text(text: str | None) -> None:
    assert safety.detect(text) is None
    assert safety.assess(text).cues == []


def test_traditional_characters_and_emoji() -> None:
    assert safety.detect("活著沒意思，不想活了") == "self_harm"
    assert safety.detect("我真不想活了😭") == "self_harm"


def test_assess_names_the_cues() -> None:
    got = safety.assess("我把安眠药攒了一抽屉")
    assert got.kind == "self_harm" and got.score >= safety.THRESHOLD and got.cues


@pytest.mark.parametrize("text", ["好想zisha", "真的想si了", "不想huo了啊", "想自shā了"])
def test_pinyin_and_homophone_spellings(text: str) -> None:
    assert safety.detect(text) == "self_harm"


def test_homophone_rule_spares_ordinary_words() -> None:
    assert safety.detect("想买个紫砂壶送人") is None


def test_a_dangerous_place_counts_unless_the_sentence_says_what_is_done_there() -> None:
    assert safety.detect("我在天台上，风好大") == "self_harm"
    assert safety.detect("我爸半夜在天台边上站着") == "self_harm"
    assert safety.detect("我在天台上晒被子") is None
    assert safety.detect("我在大桥下面等你") is None


def test_weak_farewell_signs_add_up_but_not_before_a_move() -> None:
    assert safety.detect("谢谢大家这么多年的照顾，以后不用惦记我了") == "self_harm"
    assert safety.detect("谢谢大家这么多年的照顾，以后不用惦记我了，我下周搬去养老院") is None


def test_a_story_earlier_in_the_sentence_unless_the_writer_joins_in() -> None:
    assert safety.detect("昨晚看了一部电影，结尾那个姑娘跳河了") is None
    assert safety.detect("看了一部电影，我也想跳河") == "self_harm"


def test_a_means_made_ready_for_its_ordinary_use() -> None:
    assert safety.detect("刀磨好了，明天杀鸡") is None
    assert safety.detect("刀磨好了，就放在枕头边") == "self_harm"


def test_an_ordinary_dose_is_not_an_act_but_a_handful_is() -> None:
    assert safety.detect("吃了一片安眠药还是睡不着") is None
    assert safety.detect("吃了二十片安眠药") == "self_harm"
