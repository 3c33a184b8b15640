"""The learned half of the crisis detector: linear models over character n-grams, run in pure Python.

Two models of the same form: self-harm vs the rest (`crisis_model.json`) and a medical emergency vs the rest
(`medical_model.json`). `flows.safety` hands them the message already normalised and with the 死 idioms blanked;
`Parts` splits it into sentences once and takes each sentence's binary character 1-4 grams (the message's own
n-grams are the union of its sentences': n-grams across a sentence end carry nothing, and the long-message
path does each n-gram once); a part's score is the logistic of bias + the dot product of its L2-normalised
n-grams with the weights (a dict lookup per distinct n-gram, shared by the sentences and the whole; n-grams the
model never saw add nothing). The same `features()` is used by bench/train_crisis.py to train them with
scikit-learn, so training and inference cannot drift apart. Each file also holds the decision thresholds
chosen there by cross-validation.
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

FILES = {"self_harm": "crisis_model.json", "medical": "medical_model.json"}
FILE = FILES["self_harm"]
NGRAMS = (1, 4)
_SPACE = re.compile(r"\s+")
_BLANK = "□"  # what flows.safety puts where an idiom was
_WORD = re.compile(r"\w+")
_SENTENCE = re.compile(r"[^。！？!?\n]+[。！？!?\n]*")


def _grams(text: str) -> set[str]:
    """The distinct character n-grams of one piece of text (spaces collapsed, blanked idioms dropped, edges
    marked)."""
    text = " " + _SPACE.sub(" ", text.replace(_BLANK, " ")).strip() + " "
    lo, hi = NGRAMS
    return {text[i:i + n] for n in range(lo, hi + 1) for i in range(len(text) - n + 1)} - {" "}


def split(text: str) -> list[str]:
    """The sentences of a text (the text itself when it has none)."""
    return [s for s in _SENTENCE.findall(text) if s.strip()] or [text]


def grams(text: str) -> set[str]:
    """The distinct character n-grams of a text: the union of its sentences' n-grams."""
    return set().union(*(_grams(s) for s in split(text)))


def features(text: str) -> dict[str, float]:
    """Binary n-gram features, L2-normalised (so a long message does not score higher for its length)."""
    found = grams(text)
    if not found:
        return {}
    value = 1 / math.sqrt(len(found))
    return dict.fromkeys(found, value)


MODEL_CHARS = 600  # the models read at most this many characters of a message (the rules read all of it)


class Parts:
    """A message cut into what the models score: the whole and, when it has more than one sentence, each
    sentence (a crisis said in one sentence of a long message must not be diluted by the rest). The n-grams
    are taken once and shared by both models. Taking them costs ~1 µs a character, so for a message longer than
    MODEL_CHARS the models read only its sentences that hold the most characters either model weighs towards a
    risk, up to MODEL_CHARS in all (messages that long are rare; the rules still read every sentence)."""

    def __init__(self, text: str) -> None:
        sentences = split(text)
        if len(text) > MODEL_CHARS:
            sentences = _riskiest(sentences)
        sets = [g for g in (_grams(s) for s in sentences) if g]
        self.whole: set[str] = set().union(*sets)
        self.sets = [self.whole, *sets] if len(sets) > 1 else [self.whole]


@dataclass(frozen=True)
class Model:
    bias: float
    threshold: float  # flag on its own at or above this score
    threshold_with_cue: float  # flag at or above this when a weak rule cue also counted
    weights: dict[str, float]
    vocabulary: frozenset[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "vocabulary", frozenset(self.weights))

    def logit(self, text: str) -> float:
        return self.bias + sum(v * self.weights.get(g, 0.0) for g, v in features(text).items())

    def score(self, text: str | Parts) -> float:
        """Probability-like score in [0, 1]: the highest over the message and each of its sentences."""
        parts = text if isinstance(text, Parts) else Parts(text)
        if not parts.whole:
            return 1 / (1 + math.exp(-self.bias))
        weight = self.weights.__getitem__
        known = parts.whole & self.vocabulary  # a set intersection in C: only n-grams with a weight are looked up
        z = max(self.bias + sum(map(weight, grams & known)) / math.sqrt(len(grams)) for grams in parts.sets)
        return 1 / (1 + math.exp(-z))

    def reasons(self, text: str, k: int = 3) -> list[str]:
        """The n-grams of the text that pushed the score up most (to explain a verdict to a counsellor)."""
        found = {g for g in grams(text) if _WORD.fullmatch(g.strip())}  # no n-gram with a comma or an edge
        # longer n-grams first (a single character explains little), then by weight
        ranked = sorted((g for g in found if self.weights.get(g, 0) > 0),
                        key=lambda g: (len(g.strip()) < 2, -self.weights[g], g))
        chosen: list[str] = []
        for g in ranked:  # skip an n-gram that overlaps one already chosen
            g = g.strip()
            if not any(g in c or c in g for c in chosen):
                chosen.append(g)
            if len(chosen) == k:
                break
        return chosen


def from_dict(data: dict[str, Any]) -> Model:
    weights = data["weights"]
    assert isinstance(weights, dict)
    return Model(float(data["bias"]), float(data["threshold"]), float(data["threshold_with_cue"]),
                 {str(g): float(w) for g, w in weights.items()})


def _riskiest(sentences: list[str]) -> list[str]:
    """The sentences whose characters weigh most towards a risk (the sum over their distinct characters of the
    higher of the two models' single-character weights, normalised as the models are), in their order, up to
    MODEL_CHARS characters in all (a sentence longer than that is cut)."""
    weights, known = _character_weights()

    def risk(sentence: str) -> float:
        chars = set(sentence)
        return sum(map(weights.__getitem__, chars & known)) / math.sqrt(len(chars) or 1)

    ranked = sorted(range(len(sentences)), key=lambda i: (-risk(sentences[i]), i))
    chosen, room = [], MODEL_CHARS
    for i in ranked:
        if room <= 0:
            break
        chosen.append(i)
        room -= len(sentences[i])
    return [sentences[i][:MODEL_CHARS] for i in sorted(chosen)]


@cache
def _character_weights() -> tuple[dict[str, float], frozenset[str]]:
    """Each single character's higher weight in the two models, where it is positive."""
    weights: dict[str, float] = {}
    for kind in FILES:
        for g, w in load(kind).weights.items():
            if len(g) == 1 and w > weights.get(g, 0.0):
                weights[g] = w
    return weights, frozenset(weights)


@cache
def load(kind: str = "self_harm") -> Model:
    """A shipped model (package data of `flows`): "self_harm" or "medical", read once."""
    raw = resources.files("flows").joinpath(FILES[kind]).read_text(encoding="utf-8")
    return from_dict(json.loads(raw))
