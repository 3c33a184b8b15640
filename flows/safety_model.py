"""The learned half of the crisis detector: a linear model over character n-grams, run in pure Python.

`flows.safety` hands it the message already normalised and with the 死 idioms blanked; `features()` turns that
into binary character 1-4 grams, L2-normalised over all of the message's n-grams; the score is the logistic of
bias + the dot product with the weights kept in `crisis_model.json` (a dict lookup per n-gram; n-grams the model
never saw add nothing). The same `features()` is used by bench/train_crisis.py to train it with scikit-learn,
so training and inference cannot drift apart. The file also holds the two decision thresholds chosen there.
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

FILE = "crisis_model.json"
NGRAMS = (1, 4)
_SPACE = re.compile(r"\s+")
_BLANK = "□"  # what flows.safety puts where an idiom was
_SENTENCE = re.compile(r"[^。！？!?\n]+[。！？!?\n]*")


def grams(text: str) -> set[str]:
    """The distinct character n-grams of a text (spaces collapsed, blanked idioms dropped, edges marked)."""
    text = " " + _SPACE.sub(" ", text.replace(_BLANK, " ")).strip() + " "
    lo, hi = NGRAMS
    return {text[i:i + n] for n in range(lo, hi + 1) for i in range(len(text) - n + 1)} - {" "}


def features(text: str) -> dict[str, float]:
    """Binary n-gram features, L2-normalised (so a long message does not score higher for its length)."""
    found = grams(text)
    if not found:
        return {}
    value = 1 / math.sqrt(len(found))
    return dict.fromkeys(found, value)


def sentences(text: str) -> list[str]:
    """The message, and its sentences when it has more than one (a crisis said in one sentence of a long
    message must not be diluted by the rest)."""
    parts = [s for s in _SENTENCE.findall(text) if s.strip()]
    return [text, *parts] if len(parts) > 1 else [text]


@dataclass(frozen=True)
class Model:
    bias: float
    threshold: float  # flag on its own at or above this score
    threshold_with_cue: float  # flag at or above this when a weak rule cue also counted
    weights: dict[str, float]

    def logit(self, text: str) -> float:
        return self.bias + sum(v * self.weights.get(g, 0.0) for g, v in features(text).items())

    def score(self, text: str) -> float:
        """Probability-like score in [0, 1]: the highest over the message and each of its sentences."""
        z = max(self.logit(part) for part in sentences(text))
        return 1 / (1 + math.exp(-z))

    def reasons(self, text: str, k: int = 3) -> list[str]:
        """The n-grams of the text that pushed the score up most (to explain a verdict to a counsellor)."""
        found = grams(text)
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


@cache
def load() -> Model:
    """The shipped model (package data of `flows`), read once."""
    raw = resources.files("flows").joinpath(FILE).read_text(encoding="utf-8")
    return from_dict(json.loads(raw))
