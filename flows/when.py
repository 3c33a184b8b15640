"""Understand the dates and times people type: 明天上午9点, 11月25日下午2点, 后天早上八点半, 周二下午."""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

_CN_DIGITS = {"零": 0, "〇": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8,
              "九": 9}
_NUM = r"(?:\d{1,2}|[零〇一二两三四五六七八九十]{1,3})"
_WEEKDAYS = {"一": 0, "二": 1, "三": 2, "四": 3, "五": 4, "六": 5, "日": 6, "天": 6}
# period -> (start hour used when no time is given, hours to add to a 12-hour clock time)
_PERIODS = {
    "凌晨": (5, 0), "清晨": (7, 0), "早上": (8, 0), "早晨": (8, 0), "上午": (9, 0), "中午": (12, 12),
    "下午": (14, 12), "傍晚": (17, 12), "晚上": (19, 12), "今晚": (19, 12), "夜里": (20, 12),
}
_RELATIVE = {"今天": 0, "今日": 0, "今晚": 0, "明天": 1, "明日": 1, "明早": 1, "后天": 2, "大后天": 3}


@dataclass(frozen=True)
class When:
    """A parsed time: the start as a local datetime, and whether a clock time was given."""

    at: datetime
    has_time: bool
    period: str | None = None


def cn_number(s: str) -> int | None:
    """'12' -> 12, '十二' -> 12, '二十' -> 20, '三十五' -> 35, '两' -> 2."""
    if s.isdigit():
        return int(s)
    if not s or any(c not in _CN_DIGITS and c != "十" for c in s):
        return None
    if "十" not in s:
        return _CN_DIGITS[s] if len(s) == 1 else None
    tens, _, ones = s.partition("十")
    t = _CN_DIGITS.get(tens, -1) if tens else 1
    o = _CN_DIGITS.get(ones, -1) if ones else 0
    return None if t < 0 or o < 0 else t * 10 + o


def _find_date(text: str, today: date) -> tuple[date | None, bool, str]:
    """The date mentioned in text, whether its year may roll over, and the text without it."""
    m = re.search(r"(\d{4})\s*[-/年.]\s*(\d{1,2})\s*[-/月.]\s*(\d{1,2})[日号]?", text)
    if m:
        return _safe_date(int(m[1]), int(m[2]), int(m[3])), False, text.replace(m[0], " ", 1)
    day, rollable = _find_short_date(text, today)
    return day, rollable, text


def _find_short_date(text: str, today: date) -> tuple[date | None, bool]:
    m = re.search(rf"({_NUM})\s*月\s*({_NUM})\s*[日号]?", text) or re.search(r"(\d{1,2})/(\d{1,2})", text)
    if m:
        mo, d = cn_number(m[1]), cn_number(m[2])
        return (_safe_date(today.year, mo, d) if mo and d else None), True
    m = re.search(rf"({_NUM})\s*[日号]", text)
    if m and (d := cn_number(m[1])):
        day = _safe_date(today.year, today.month, d)
        if day is not None and day < today:  # "5号" said on the 22nd means next month's 5th
            first_next = (today.replace(day=1) + timedelta(days=32)).replace(day=1)
            day = _safe_date(first_next.year, first_next.month, d)
        return day, True
    m = re.search(r"(下下|下个?)?(?:周|星期|礼拜)([一二三四五六日天])", text)
    if m:
        wd = _WEEKDAYS[m[2]]
        delta = (wd - today.weekday()) % 7
        if m[1]:
            monday_next = today + timedelta(days=7 - today.weekday())
            return monday_next + timedelta(days=wd + (7 if m[1] == "下下" else 0)), False
        return today + timedelta(days=delta), False
    for word in sorted(_RELATIVE, key=len, reverse=True):
        if word in text:
            return today + timedelta(days=_RELATIVE[word]), False
    return None, False


def _safe_date(y: int, mo: int | None, d: int | None) -> date | None:
    try:
        return date(y, mo or 0, d or 0)
    except ValueError:
        return None


def _find_time(text: str, period: str | None) -> time | None:
    m = re.search(r"(\d{1,2})\s*[:：]\s*(\d{2})", text)
    if m:
        h, mi = int(m[1]), int(m[2])
    else:
        m = re.search(rf"({_NUM})\s*[点點时時]\s*(半|一刻|三刻|({_NUM})\s*分?)?", text)
        if not m:
            return None
        h = cn_number(m[1]) or 0
        if m[1] in ("零", "〇", "0"):
            h = 0
        tail = m[2] or ""
        quarters = {"半": 30, "一刻": 15, "三刻": 45}
        mi = quarters[tail] if tail in quarters else (cn_number(m[3]) or 0) if m[3] else 0
    if not period and 1 <= h <= 6 and not m[0].startswith("0"):
        h += 12  # "两点半" said without a part of the day means the afternoon, not 2:30 at night
    if period and h < 12:
        add = _PERIODS[period][1]
        if period == "中午" and h >= 11:
            add = 0
        h += add
    if not (0 <= h <= 23 and 0 <= mi <= 59):
        return None
    return time(h, mi)


def parse_when(text: str, now: datetime) -> When | None:
    """Parse a typed date/time relative to `now` (local, naive); None if nothing is recognised."""
    text = re.sub(r"(?<=[^\d\s])\s+|\s+(?=[^\d\s])", "", text.strip())
    if not text:
        return None
    today = now.date()
    day, rollable, text = _find_date(text, today)
    period = next((p for p in sorted(_PERIODS, key=len, reverse=True) if p in text), None)
    if period == "今晚" and day is None:
        day = today
    clock = _find_time(text, period)
    if day is None and clock is None and period is None:
        return None
    if day is None:
        day = today
        if clock is not None and datetime.combine(day, clock) < now:
            day = today + timedelta(days=1)  # "8点" said at 10:00 means tomorrow
    elif rollable and day < today - timedelta(days=60):
        day = _safe_date(day.year + 1, day.month, day.day) or day  # "1月5日" said in November
    if clock is not None:
        return When(datetime.combine(day, clock), True, period)
    start = time(_PERIODS[period][0], 0) if period else time(0, 0)
    return When(datetime.combine(day, start), False, period)


def is_past(when: When, now: datetime) -> bool:
    """True when the time (or, without a clock time, the whole day/period) is already over."""
    if when.has_time:
        return when.at < now - timedelta(minutes=5)
    if when.period:
        return when.at.date() < now.date() or (when.at.date() == now.date() and when.at.hour + 4 <= now.hour)
    return when.at.date() < now.date()
