"""The learned half of the crisis detector (flows/safety_model.py, weights flows/crisis_model.json for self-harm
and flows/medical_model.json for medical emergencies).

None of the texts here is a row of tests/data/crisis_eval.jsonl (checked below), so these cases are not the
numbers of the benchmark again.
"""
from __future__ import annotations

import json
import warnings
from importlib import resources
from pathlib import Path

import pytest

from flows import safety, safety_model

ROOT = Path(__file__).resolve().parent.parent
EVAL_TEXTS = {json.loads(line)["text"] for line in (ROOT / "tests" / "data" / "crisis_eval.jsonl")
              .read_text(encoding="utf-8").splitlines() if line.strip()}

# Wordings the rules alone do not flag, and the model does.
RULES_MISS = ["我实在熬不下去了，想把自己了结", "活着太累了，我想走了，不回来的那种", "我想跟老伴一块儿走",
              "世上没有我就好了", "我受够了，想一走了之，永远不回来"]
IDIOMS = ["笑死我了，这个视频", "热死了，空调坏了", "累死了，今天走了两万步", "吓死我了，一只猫跳出来",
          "气死我了，又堵车", "想死你们了，过年回来", "这菜难吃死了"]


# Medical emergencies in words the medical rules have no cue for (a choking, a poisoning by mistake, a scald, low
# blood sugar, a stroke and a fall said another way), and look-alikes: the same things in the past, as a question
# or in a story, and small everyday mishaps.
MEDICAL_RULES_MISS = ["老爷子吃馒头噎住了，脸都憋紫了", "我奶奶吃枣卡住了，说不出话", "孩子喝了一口洁厕灵，嘴里起泡了",
                      "我妈被开水烫了胳膊，起了好多大水泡", "外婆打完胰岛素没吃饭，满身冷汗直哆嗦",
                      "我爸一边脸麻了，话也说不利落", "老伴躺在卫生间地上爬不起来，快来"]
# the medical model alone says medical for these; the guard of the past sets it aside
MEDICAL_PAST = ["去年我爸吃饭噎住了，脸都憋紫了", "如果老人吃东西噎住了，脸憋紫了怎么处理"]
MEDICAL_LOOKALIKES = ["去年孙子误吞过纽扣电池，后来取出来了", "小孩吃鱼卡了一下刺，咽口饭就好了",
                      "社区想办个防噎食的讲座", "前年我爸吃错过药，现在药盒分好了", "做饭被油溅了一下，冲冲凉水就好",
                      "电视剧里的老人噎住了，被路人救了"]


def test_the_cases_here_are_not_rows_of_the_evaluation_set() -> None:
    assert not EVAL_TEXTS & {*RULES_MISS, *IDIOMS, *MEDICAL_RULES_MISS, *MEDICAL_PAST, *MEDICAL_LOOKALIKES}


def test_the_shipped_model_loads() -> None:
    model = safety_model.load()
    assert len(model.weights) > 1000
    assert 0 < model.threshold_with_cue < model.threshold < 1
    raw = json.loads(resources.files("flows").joinpath(safety_model.FILE).read_text(encoding="utf-8"))
    assert safety_model.from_dict(raw) == model


def test_the_shipped_medical_model_loads_and_both_are_small() -> None:
    model = safety_model.load("medical")
    assert len(model.weights) > 1000
    assert 0 < model.threshold < 1
    assert model != safety_model.load()
    raw = json.loads(resources.files("flows").joinpath(safety_model.FILES["medical"]).read_text(encoding="utf-8"))
    assert safety_model.from_dict(raw) == model
    size = sum(len(resources.files("flows").joinpath(f).read_bytes()) for f in safety_model.FILES.values())
    assert size < 1_000_000


def test_medical_scores_are_deterministic() -> None:
    model = safety_model.load("medical")
    text = safety.blanked(MEDICAL_RULES_MISS[0])
    first = model.score(text)
    assert 0 <= first <= 1
    assert [model.score(safety_model.Parts(text)) for _ in range(3)] == [first] * 3


@pytest.mark.parametrize("text", MEDICAL_RULES_MISS)
def test_medical_paraphrases_the_rules_miss_are_caught_by_the_medical_model(text: str) -> None:
    assert safety.rules(text).kind is None
    got = safety.assess(text)
    assert got.kind == "medical"
    assert got.cues[-1].startswith("medical model ")  # explained: its score and the n-grams that weighed most
    assert safety.detect(text) == "medical"


@pytest.mark.parametrize("text", MEDICAL_PAST)
def test_the_medical_model_keeps_the_rules_guard_of_the_past(text: str) -> None:
    model = safety_model.load("medical")
    assert model.score(safety.blanked(text)) >= model.threshold  # the words alone look like an emergency...
    assert safety.detect(text) is None  # ...but it happened last year, or it is a question


@pytest.mark.parametrize("text", MEDICAL_LOOKALIKES)
def test_medical_look_alikes_are_not_emergencies(text: str) -> None:
    assert safety.detect(text) is None


def test_self_harm_goes_before_medical() -> None:
    assert safety.detect("我把一整瓶安眠药吞了，不想活了") == "self_harm"  # the rules
    text = "我想跟老伴一块儿走，刚喝了那瓶东西，肚子疼得厉害"  # the rules see nothing, both models do
    plain = safety.blanked(text)
    assert safety.rules(text).kind is None
    assert safety_model.load().score(plain) >= safety_model.load().threshold
    assert safety_model.load("medical").score(plain) >= safety_model.load("medical").threshold
    assert safety.detect(text) == "self_harm"


def test_a_medical_sentence_in_a_long_message_is_found() -> None:
    chatter = "今天天气不错，上午去菜市场买了点青菜和豆腐，下午在家看电视，孙子放学回来写作业。" * 3
    assert safety.detect(chatter + "老伴躺在卫生间地上爬不起来，快来。") == "medical"
    assert safety.detect(chatter) is None


@pytest.mark.parametrize(("crisis", "kind"), [("世上没有我就好了。", "self_harm"),
                                             ("我奶奶吃枣卡住了，说不出话。", "medical")])
def test_the_models_find_one_sentence_in_the_middle_of_a_very_long_message(crisis: str, kind: str) -> None:
    """Past safety_model.MODEL_CHARS the models read only the riskiest sentences: the one that matters is among
    them, wherever it is."""
    chatter = ("今天天气不错，上午去菜市场买了点青菜和豆腐，下午在家打扫卫生，孙子放学回来写作业。"
               "隔壁王阿姨送来饺子，我们一起包了两百个，冻在冰箱里慢慢吃。") * 15
    text = chatter + crisis + chatter
    assert len(text) > 3 * safety_model.MODEL_CHARS
    assert safety.rules(text).kind is None
    assert safety.detect(text) == kind
    assert safety.detect(chatter + chatter) is None


def test_scores_are_deterministic_and_in_range() -> None:
    model = safety_model.load()
    text = safety.blanked(RULES_MISS[0])
    first = model.score(text)
    assert 0 <= first <= 1
    assert [model.score(text) for _ in range(3)] == [first] * 3
    assert safety_model.from_dict(json.loads(json.dumps({
        "bias": model.bias, "threshold": model.threshold, "threshold_with_cue": model.threshold_with_cue,
        "weights": model.weights}))).score(text) == first


@pytest.mark.parametrize("text", RULES_MISS)
def test_paraphrases_the_rules_miss_are_caught_by_the_model(text: str) -> None:
    assert safety.rules(text).kind is None
    got = safety.assess(text)
    assert got.kind == "self_harm"
    assert got.cues[-1].startswith("model ")  # the reason is shown: the score and the n-grams that weighed most
    assert safety.detect(text) == "self_harm"


@pytest.mark.parametrize("text", IDIOMS)
def test_idioms_built_on_death_score_low(text: str) -> None:
    model = safety_model.load()
    assert model.score(safety.blanked(text)) < model.threshold_with_cue
    assert safety.detect(text) is None


def test_one_crisis_sentence_in_a_long_message_is_not_diluted() -> None:
    model = safety_model.load()
    crisis = "世上没有我就好了。"
    chatter = "今天天气不错，上午去菜市场买了点青菜和豆腐，下午在家看电视，孙子放学回来写作业。" * 3
    assert model.score(safety.blanked(chatter + crisis)) >= model.threshold
    assert safety.detect(chatter + crisis) == "self_harm"


def test_a_medical_verdict_of_the_rules_is_kept() -> None:
    assert safety.detect("我爸突然倒在地上，叫不醒，快来人") == "medical"


def test_an_empty_or_blank_text_has_no_model_cue() -> None:
    assert safety.assess("   ").cues == []
    assert safety_model.load().score("") < safety_model.load().threshold


def test_the_weights_file_is_package_data_of_the_installed_package(monkeypatch: pytest.MonkeyPatch) -> None:
    """What setuptools puts in the wheel (and the editable install) for `flows`: fails if pyproject.toml's
    package-data stops naming the file or the file is gone."""
    from setuptools.config.pyprojecttoml import apply_configuration
    from setuptools.dist import Distribution

    monkeypatch.chdir(ROOT)  # setuptools reads the package folders relative to the project
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dist = apply_configuration(Distribution(), ROOT / "pyproject.toml")
    dist.script_name = "setup.py"
    build = dist.get_command_obj("build_py")
    build.ensure_finalized()
    shipped = {name for package, src, _, names in build.data_files if package == "flows" for name in names
               if (Path(src) / name).is_file()}
    assert set(safety_model.FILES.values()) <= shipped
    # ...and named by pyproject.toml itself: setuptools also ships files listed in a local *.egg-info, which a
    # fresh clone does not have
    import fnmatch
    import tomllib

    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["flows"]
    for name in safety_model.FILES.values():
        assert any(fnmatch.fnmatch(name, p) for p in patterns), name
        assert resources.files("flows").joinpath(name).is_file()
