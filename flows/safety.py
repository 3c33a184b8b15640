"""Spot words that mean urgent danger, so the bot answers with hotlines before any form.

`detect(text)` returns "self_harm", "medical" or None. It is pure and offline: weighted regular-expression
cues (flows/safety_rules.py) grouped by the kinds of risk language in CARE.md — direct intent and its
euphemisms, hopelessness and burden, method and preparation, being at a dangerous place now, farewell, an act
already done, following someone who died; third-person reports use the same cues. A cue of weight 2 flags on
its own, weaker cues only together (score >= 2).

Why rules and no word segmentation or model: the cues are short fixed phrases that a segmenter like jieba
would mostly split apart or get wrong (measured with jieba 0.42.1: 不想活 → 不想 / 活, 了断 → 了 / 断, the Hunan
活着么子意思都冇得 → 么 / 子 … / 冇 / 得, 想si → si), it loads a dictionary for 1.6 s at start and adds ~0.1 ms a
message, and every decision here must be explainable to the counsellors reading a case (the cue names).

Before the cues run, the text is normalised (NFKC, lower case, tone marks dropped, traditional → simplified for
the characters that matter, pinyin and homophone spellings such as 想si / zs / 紫砂 / 不相活 written as the words)
and the exaggerations built on 死 (冷死了, 笑死我了, 想死你了, 得要死, 死机) are blanked. A cue is ignored when a
negation stands just before it in the same clause (我可不会想不开, 我从来没想过死), or when its clause is about
fiction, news or the past (电视剧里…, 新闻说…, 以前…) without the writer speaking of now, or when an earlier clause
of its sentence is (看了个电影，结尾那个姑娘跳河了) and its own clause does not speak of the writer. Some cues carry
a guard checked on their whole sentence: being at a rooftop, a river or a railway counts on its own unless the
sentence says what ordinary thing is done there (晒被子, 钓鱼, 等你们来接); a knife, a rope or a poison got
ready counts unless its ordinary use is named (杀鸡, 老鼠太多 — but not 不是打虫子用的); the weak farewell signs
(thanks for the years, giving things away, 不用惦记我, a letter written) add up unless the sentence speaks of a
move, a trip or a hospital stay.
When in doubt the rules prefer the false alarm, as CARE.md asks: a kind call costs little.

Medical: present-tense emergencies (collapse, breathing, a fall with no getting up, stroke signs, chest
pain, heavy bleeding, seizures, cannot be woken). A message that speaks of the past or of a hypothetical
(去年, 以前, 后遗症, 复查, 如果, 预防) is not an emergency unless it also says now (突然, 刚才, 快来, 救护车).
Self-harm wins over medical (the self-harm answer also gives 110 / 120).
"""
from __future__ import annotations

import bisect
import re
import unicodedata
from dataclasses import dataclass, field

from flows.safety_rules import (
    DISTANCE,
    FIRST_PERSON_NOW,
    HYPERBOLE,
    IDIOMS,
    INSIST,
    MEDICAL,
    MEDICAL_NOW,
    MEDICAL_PAST,
    NEGATION,
    NEGATION_BARE,
    SELF_HARM,
    SLANG,
    TRAD,
    WISH,
    Cue,
)

THRESHOLD = 2
_ACCENTED = re.compile(r"[\u00c0-\u024f\u0300-\u036f]")
_SENTENCE_END = re.compile(r"[。！？!?\n]")
_SELF = re.compile(r"我|俺|咱|偶|i\b|i'm|\bme\b|\bmy\b")
_CLAUSE_END = re.compile(r"[，。！？!?；;,\n…~～、：:（）()]|(?<=[\u4e00-\u9fff])\s+|\s+(?=[\u4e00-\u9fff])")
_NEGATION_WINDOW = 7


@dataclass
class Assessment:
    """What the detector saw: the verdict, the self-harm score and the names of the cues that counted."""

    kind: str | None
    score: int = 0
    cues: list[str] = field(default_factory=list)


def normalise(text: str) -> str:
    """NFKC (full-width → half-width), lower case, no tone marks, traditional → simplified for the characters
    that matter, pinyin and homophone spellings of the key words (想si, zs, 紫砂) → characters."""
    text = unicodedata.normalize("NFKC", text).lower()
    if _ACCENTED.search(text):  # pinyin with tone marks (自shā): drop the marks
        text = unicodedata.normalize("NFKD", text)
        text = unicodedata.normalize("NFKC", "".join(c for c in text if not unicodedata.combining(c)))
    text = text.translate(TRAD)
    for pattern, word in SLANG:
        text = pattern.sub(word, text)
    return text


def _blank(text: str, pattern: re.Pattern[str]) -> str:
    """Replace every match by the same number of placeholders, so positions stay the same."""
    return pattern.sub(lambda m: "□" * len(m.group()), text)


class _Text:
    """A normalised message and where its clauses end."""

    def __init__(self, text: str) -> None:
        self.text = text
        seps = [(m.start(), m.end()) for m in _CLAUSE_END.finditer(text)]
        self._starts = [a for a, _ in seps]
        self._ends = [b for _, b in seps]
        self._stops = [m.start() for m in _SENTENCE_END.finditer(text)]

    def clause(self, pos: int) -> tuple[int, int]:
        """Start and end of the clause around `pos`."""
        i = bisect.bisect_right(self._ends, pos)  # separators that end at or before pos
        start = self._ends[i - 1] if i else 0
        j = bisect.bisect_left(self._starts, pos)
        return start, self._starts[j] if j < len(self._starts) else len(self.text)

    def sentence(self, pos: int) -> tuple[int, int]:
        """Start and end of the sentence (up to 。！？ or a line break) around `pos`."""
        i = bisect.bisect_left(self._stops, pos)  # sentence ends before pos (a stop is one character)
        return self._stops[i - 1] + 1 if i else 0, self._stops[i] if i < len(self._stops) else len(self.text)

    def counts(self, m: re.Match[str], cue: Cue | None = None) -> bool:
        """A cue match counts unless it is negated just before, or its clause is about fiction, news or the past
        (or an earlier clause of its sentence is, and the cue's clause does not speak of the writer), or the
        cue's `unless` is in its sentence."""
        start, end = self.clause(m.start())
        before = self.text[max(start, m.start() - _NEGATION_WINDOW):m.start()]
        if NEGATION.search(before) or (NEGATION_BARE.search(before) and WISH.match(m.group())):
            return False
        clause = self.text[start:end]
        if DISTANCE.search(clause) and not FIRST_PERSON_NOW.search(clause):
            return False
        s_start, s_end = self.sentence(m.start())
        if DISTANCE.search(self.text[s_start:start]) and not _SELF.search(clause):
            return False
        return not (cue and cue.unless and cue.unless.search(self.text[s_start:s_end]))

    def score(self, cues: list[Cue]) -> tuple[int, list[str]]:
        score, hits = 0, []
        for cue in cues:
            if any(self.counts(m, cue) for m in cue.pattern.finditer(self.text)):
                score += cue.weight
                hits.append(cue.name)
        return score, hits


def assess(text: str | None) -> Assessment:
    """The verdict with its reasons (for tests and the benchmark; the bot uses `detect`)."""
    if not text or not text.strip():
        return Assessment(None)
    plain = _blank(normalise(text), IDIOMS)
    score, hits = _Text(plain).score([HYPERBOLE])
    msg = _Text(_blank(plain, HYPERBOLE.pattern))
    plain = msg.text
    more, names = msg.score(SELF_HARM)
    score, hits = score + more, hits + names
    if score and INSIST.pattern.search(plain):
        score, hits = score + INSIST.weight, [*hits, INSIST.name]
    if score >= THRESHOLD:
        return Assessment("self_harm", score, hits)
    medical, names = msg.score(MEDICAL)
    if medical >= THRESHOLD and (MEDICAL_NOW.search(plain) or not (MEDICAL_PAST.search(plain)
                                                                 or DISTANCE.search(plain))):
        return Assessment("medical", score, hits + names)
    return Assessment(None, score, hits)


def detect(text: str | None) -> str | None:
    """'self_harm', 'medical' or None."""
    return assess(text).kind
