"""The learned half of the crisis detector (flows/safety_model.py, weights flows/crisis_model.json).

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


def test_the_cases_here_are_not_rows_of_the_evaluation_set() -> None:
    assert not EVAL_TEXTS & {*RULES_MISS, *IDIOMS}


def test_the_shipped_model_loads() -> None:
    model = safety_model.load()
    assert len(model.weights) > 1000
    assert 0 < model.threshold_with_cue < model.threshold < 1
    raw = json.loads(resources.files("flows").joinpath(safety_model.FILE).read_text(encoding="utf-8"))
    assert safety_model.from_dict(raw) == model


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
    assert safety_model.FILE in shipped
    # ...and named by pyproject.toml itself: setuptools also ships files listed in a local *.egg-info, which a
    # fresh clone does not have
    import fnmatch
    import tomllib

    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["flows"]
    assert any(fnmatch.fnmatch(safety_model.FILE, p) for p in patterns)
    assert resources.files("flows").joinpath(safety_model.FILE).is_file()
