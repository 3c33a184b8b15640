"""Message catalogs: every text the bot says lives in flows/locales/<locale>.yaml."""
from __future__ import annotations

import functools
from functools import cache
from pathlib import Path
from typing import Any

import yaml

LOCALES = ("zh_CN", "en")
DEFAULT_LOCALE = "zh_CN"
_DIR = Path(__file__).parent / "locales"


def _flatten(prefix: str, node: Any, out: dict[str, str]) -> None:
    if isinstance(node, dict):
        for k, v in node.items():
            _flatten(f"{prefix}.{k}" if prefix else str(k), v, out)
    else:
        out[prefix] = str(node)


@cache
def catalog(locale: str) -> dict[str, str]:
    """The flattened catalog of one locale (dotted keys)."""
    out: dict[str, str] = {}
    _flatten("", yaml.safe_load((_DIR / f"{locale}.yaml").read_text(encoding="utf-8")), out)
    return out


def norm_locale(locale: str | None) -> str:
    """A supported locale for whatever the caller has (None, 'en_US', 'zh' …)."""
    if not locale:
        return DEFAULT_LOCALE
    if locale in LOCALES:
        return locale
    return "en" if locale.lower().startswith("en") else DEFAULT_LOCALE


def t(locale: str | None, key: str, **params: Any) -> str:
    """The text for `key` in `locale` (falling back to Chinese) with placeholders filled."""
    loc = norm_locale(locale)
    text = catalog(loc).get(key) or catalog(DEFAULT_LOCALE).get(key)
    if text is None:
        raise KeyError(f"no message {key!r} in the catalogs")
    return text.format(**params) if params else text


def words(key: str) -> set[str]:
    """Every locale's comma-separated words for a keyword key (e.g. 'kw.cancel'), lower-cased."""
    out: set[str] = set()
    for loc in LOCALES:
        raw = catalog(loc).get(key, "")
        out |= {w.strip().lower() for w in raw.split(",") if w.strip()}
    return out


@functools.cache
def keywords() -> frozenset[str]:
    """Every keyword the bot answers as a command (all kw.* lists, every locale), lower-cased."""
    keys = {k for loc in LOCALES for k in catalog(loc) if k.startswith("kw.")}
    return frozenset().union(*(words(k) for k in keys))
