"""The message catalogs: both locales have the same keys and placeholders, and every key the code uses exists."""
from __future__ import annotations

import ast
import re
import string
from pathlib import Path

import pytest

from flows import intake
from flows.i18n import LOCALES, catalog, norm_locale, t, words

ROOT = Path(__file__).resolve().parent.parent
SOURCES = sorted(p for d in ("flows", "handlers", "bot") for p in (ROOT / d).rglob("*.py"))
# t(<first argument>, "key" …) with a plain (not f-) string literal as the key, followed by `,` or `)`
T_CALL = re.compile(r"""\bt\(\s*[^,()]*(?:\([^()]*\))?[^,()]*,\s*(["'])([A-Za-z0-9_.]+)\1\s*[,)]""")
# the keys the code builds with f-strings or concatenation, expanded by hand
STATUSES = ("open", "claimed", "started", "finished", "cancelled")
HISTORY_ACTIONS = ("created", "escalate", "stuck", "claimed", "assigned", "released", "started", "finished",
                   "hours", "rated", "cancelled", "reminded", "system")
DYNAMIC_KEYS = (
    [f"status.{s}" for s in STATUSES]
    + [f"detail.state_{s}" for s in ("finished", "cancelled", "open")]
    + [f"intake.ask.{s}" for s in intake.STEPS if s != "summary"] + ["intake.ask.edit"]
    + [f"intake.field.{f}" for f in intake.EDITABLE]
    + [f"intake.phone_{p}" for p in ("short", "long", "bad")]
    + [f"weekday.{d}" for d in intake.WEEKDAY_KEYS]
    + [f"safety.{k}" for k in ("self_harm", "medical")]
    + [f"safety.{what}_{k}" for what in ("ask_phone", "phone_thanks", "relayed", "coming")
       for k in ("self_harm", "medical")]
    + [f"case.alert_{k}" for k in ("self_harm", "medical")]
    + [f"case.outcome.{code}" for code in ("safe", "followup", "emergency", "referred", "unreachable")]
    + [f"coord.escalated_{w}" for w in ("timeout", "nobody_on_duty")]
    + [f"coord.stuck_{w}" for w in ("timeout", "nobody_on_duty")]
    + [f"action.{a}" for a in HISTORY_ACTIONS]
    + [f"rights.ask_{f}" for f in ("phone", "address")]
    + [f"audit.action.{a}" for a in ("claimer_details", "case_alert", "data_view", "data_export", "data_correct",
                                     "data_erase")]
    + [f"audit.reason.{r}" for r in ("claimed", "assigned", "tasks", "resident_request", "phone", "address")]
)


def placeholders(text: str) -> set[str]:
    """The names in {braces} of a catalog text."""
    return {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}


def used_keys() -> dict[str, list[str]]:
    """Every literal key passed to t(...) in the code, with where it is used."""
    found: dict[str, list[str]] = {}
    for path in SOURCES:
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            for m in T_CALL.finditer(line):
                found.setdefault(m[2], []).append(f"{path.relative_to(ROOT)}:{n}")
    return found


def test_both_catalogs_have_the_same_keys() -> None:
    zh, en = set(catalog("zh_CN")), set(catalog("en"))
    assert not zh - en, f"missing in en: {sorted(zh - en)}"
    assert not en - zh, f"missing in zh_CN: {sorted(en - zh)}"


@pytest.mark.parametrize("key", sorted(catalog("zh_CN")))
def test_placeholders_are_the_same_in_both_catalogs(key: str) -> None:
    assert placeholders(catalog("zh_CN")[key]) == placeholders(catalog("en").get(key, ""))


@pytest.mark.parametrize("locale", LOCALES)
def test_every_text_formats(locale: str) -> None:
    for key, text in catalog(locale).items():
        assert text.strip(), key
        text.format(**{name: "X" for name in placeholders(text)})  # no stray braces


def test_en_is_translated() -> None:
    zh, en = catalog("zh_CN"), catalog("en")
    same = [k for k in zh if zh[k] == en[k] and not k.startswith(("kw.", "period."))
            and re.search(r"[\u4e00-\u9fff]", zh[k])]
    assert not same, f"not translated: {same}"


def test_scan_finds_the_keys_in_the_code() -> None:
    keys = used_keys()
    assert len(keys) > 50  # the scan itself works
    for key in ("intake.greeting", "tasks.none", "error.sorry_short", "detail.not_yours", "card.claim"):
        assert key in keys, key


def test_every_key_used_in_the_code_exists() -> None:
    zh = catalog("zh_CN")
    missing = {k: where for k, where in used_keys().items() if k not in zh}
    assert not missing, f"keys used in the code but not in zh_CN.yaml: {missing}"


@pytest.mark.parametrize("key", DYNAMIC_KEYS)
def test_every_built_key_exists(key: str) -> None:
    assert key in catalog("zh_CN")
    assert key in catalog("en")


def _string_constants(node: ast.AST) -> set[str]:
    """The string literals an expression may evaluate to ("a" if x else "b" -> both)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return {node.value}
    if isinstance(node, ast.IfExp):
        return _string_constants(node.body) | _string_constants(node.orelse)
    if isinstance(node, ast.BoolOp):
        return set().union(*(_string_constants(v) for v in node.values))
    return set()


def _trees() -> list[tuple[Path, ast.AST]]:
    return [(p, ast.parse(p.read_text(encoding="utf-8"))) for p in SOURCES]


def test_every_catalog_like_literal_in_the_code_exists() -> None:
    """Keys chosen before the call (key = "duty.started" if on else …) are plain literals too."""
    zh = catalog("zh_CN")
    sections = sorted({k.split(".")[0] for k in zh})
    pattern = re.compile(rf"(?:{'|'.join(sections)})\.[a-z_][a-z0-9_.]*")
    missing = []
    for path, tree in _trees():
        in_fstrings = {id(c) for n in ast.walk(tree) if isinstance(n, ast.JoinedStr) for c in ast.walk(n)}
        for n in ast.walk(tree):
            if (isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in in_fstrings
                    and pattern.fullmatch(n.value) and n.value not in zh):
                missing.append(f"{path.relative_to(ROOT)}:{n.lineno} {n.value}")
    assert not missing


def test_every_history_action_has_a_name() -> None:
    """The actions written with add_history(...) or History(...) effects are the ones /history can name."""
    found: set[str] = set()
    for _path, tree in _trees():
        for n in ast.walk(tree):
            if (isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and n.func.attr == "add_history"
                    and len(n.args) >= 4):
                found |= _string_constants(n.args[3])
            if (isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == "History"
                    and len(n.args) >= 2):  # a pure step's History effect (flows/lifecycle.py)
                found |= _string_constants(n.args[1])
    found.add("escalate")  # dispatch(…, reason="escalate") records its reason
    assert found <= set(HISTORY_ACTIONS), found - set(HISTORY_ACTIONS)
    assert {"created", "claimed", "assigned", "released", "started", "finished", "cancelled", "rated", "reminded",
            "stuck", "hours"} <= found


def test_period_keys_cover_the_parser() -> None:
    from flows.when import _PERIODS

    for period in _PERIODS:
        assert f"period.{period}" in catalog("zh_CN") and f"period.{period}" in catalog("en")


def test_keywords_keep_the_chinese_words_in_english() -> None:
    for key in (k for k in catalog("zh_CN") if k.startswith("kw.")):
        zh = {w.strip() for w in catalog("zh_CN")[key].split(",")}
        en = {w.strip() for w in catalog("en")[key].split(",")}
        assert zh <= en, f"{key}: {zh - en} missing in en"
    assert {"取消", "cancel", "quit"} <= words("kw.cancel")


def test_t_falls_back_and_fills() -> None:
    assert t("en_US", "intake.too_long", limit=200) == catalog("en")["intake.too_long"].format(limit=200)
    assert t(None, "intake.too_long", limit=200) == "内容有点长，请精简到200个字以内。"
    assert norm_locale("zh") == "zh_CN" and norm_locale("EN") == "en"
    with pytest.raises(KeyError):
        t("zh_CN", "no.such.key")
