"""Train the learned half of the crisis detector (flows/crisis_model.json, flows/medical_model.json) on the
TUNE split only.

    .venv/bin/pip install -e '.[train]'      # scikit-learn, for training only
    .venv/bin/python -m bench.train_crisis [--target self_harm|medical] [--write] [--fa 0.05]

Reads the rows of tests/data/crisis_eval.jsonl whose split is "tune" (it never reads a test row: they are
dropped while parsing, before anything else). Features are flows.safety_model.features of flows.safety.blanked
(the text normalised, idioms blanked), exactly what the bot computes. Positive: the target label (self_harm, or
medical); negative: every other row. The model is an L2 logistic regression (scikit-learn, lbfgs, balanced
classes). For the medical model, --fa-with-cue is not used (the medical rules have no weak cues): its one
threshold is the one at --fa.

Chosen by repeated stratified 5-fold cross-validation on the tune split: the regularisation C (best mean
out-of-fold recall at the false-alarm budget), then the decision threshold: the highest out-of-fold score of a
negative row that keeps the out-of-fold false alarms at most --fa (default 5 %, leaving room under the issue's
10 % for the rules' own false alarms, since the bot flags when the rules OR the model do), and a lower one kept
at --fa-with-cue (default 15 %) that applies only when a weak rule cue counted (a rule score of 1, below the
rules' own threshold of 2): two weak signs that agree. The fold models are
scored with flows.safety_model.Model, the same code the bot runs. Prints the out-of-fold numbers per kind;
with --write, fits on the whole tune split and writes flows/crisis_model.json.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections import Counter, defaultdict
from pathlib import Path

from bench.crisis import DATA
from flows import safety, safety_model

ROOT = Path(__file__).resolve().parent.parent
CS = (3.0, 10.0, 30.0, 100.0)
FOLDS, REPEATS, SEED = 5, 4, 20260510
DIGITS = 4  # weights are kept to 4 decimals: the file stays small, the scores move by < 1e-3


def tune_rows() -> list[dict[str, str]]:
    rows = []
    for line in DATA.read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            if row["split"] == "tune":
                rows.append(row)
    return rows


def fit(texts: list[str], y: list[int], c: float, prune: float = 0.0) -> safety_model.Model:
    from sklearn.feature_extraction import DictVectorizer
    from sklearn.linear_model import LogisticRegression

    vec = DictVectorizer()
    x = vec.fit_transform([safety_model.features(t) for t in texts])
    clf = LogisticRegression(C=c, class_weight="balanced", solver="lbfgs", max_iter=2000)
    clf.fit(x, y)
    names = vec.get_feature_names_out()
    weights = {str(g): round(float(w), DIGITS) for g, w in zip(names, clf.coef_[0], strict=True)}
    return safety_model.Model(round(float(clf.intercept_[0]), DIGITS), 0.5, 0.5,
                              {g: w for g, w in weights.items() if abs(w) > prune})


def out_of_fold(texts: list[str], y: list[int], c: float, prune: float = 0.0) -> list[list[float]]:
    """Each row's out-of-fold score, once per repeat."""
    from sklearn.model_selection import StratifiedKFold

    scores: list[list[float]] = [[] for _ in texts]
    for rep in range(REPEATS):
        folds = StratifiedKFold(n_splits=FOLDS, shuffle=True, random_state=SEED + rep)
        for train, held in folds.split(texts, y):
            model = fit([texts[i] for i in train], [y[i] for i in train], c, prune)
            for i in held:
                scores[i].append(model.score(texts[i]))
    return scores


def threshold_for(scores: list[list[float]], y: list[int], fa: float) -> float:
    """The lowest threshold whose mean out-of-fold false-alarm rate stays at most `fa`."""
    negatives = sorted((s for ss, lab in zip(scores, y, strict=True) if not lab for s in ss), reverse=True)
    allowed = int(fa * len(negatives))  # how many negative scores may be at or above the threshold
    return negatives[allowed] + 1e-6 if allowed < len(negatives) else 0.0


def rates(scores: list[list[float]], y: list[int], t: float) -> tuple[float, float]:
    hit = [s >= t for ss, lab in zip(scores, y, strict=True) if lab for s in ss]
    fa = [s >= t for ss, lab in zip(scores, y, strict=True) if not lab for s in ss]
    return sum(hit) / len(hit), sum(fa) / len(fa)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.train_crisis", description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", choices=tuple(safety_model.FILES), default="self_harm")
    parser.add_argument("--write", action="store_true", help="write the model file under flows/")
    parser.add_argument("--c", type=float, help="use this regularisation C instead of searching for it")
    parser.add_argument("--sweep", action="store_true",
                        help="also print the out-of-fold numbers of rules OR model at other false-alarm budgets")
    parser.add_argument("--prune", type=float, default=0.0,
                        help="drop weights of at most this size (keeps the file small; the fold models are pruned "
                             "the same way, so the thresholds are chosen for the model that is shipped)")
    parser.add_argument("--fa", type=float, default=0.05,
                        help="out-of-fold false-alarm budget of the model alone")
    parser.add_argument("--fa-with-cue", type=float, default=0.15,
                        help="the same for the lower threshold used when a weak rule cue counted")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    target = args.target
    out = ROOT / "flows" / safety_model.FILES[target]
    rows = tune_rows()
    texts = [safety.blanked(r["text"]) for r in rows]
    y = [int(r["label"] == target) for r in rows]
    print(f"tune split: {len(rows)} rows, {sum(y)} {target}; {FOLDS}-fold x {REPEATS} repeats")
    best: tuple[float, float, list[list[float]]] | None = None
    for c in (args.c,) if args.c else CS:
        scores = out_of_fold(texts, y, c, args.prune)
        t = threshold_for(scores, y, args.fa)
        recall, fa = rates(scores, y, t)
        print(f"  C={c:<5} threshold {t:.3f}: out-of-fold recall {recall:.1%}, false alarms {fa:.1%}")
        if best is None or recall > best[1]:
            best = (c, recall, scores)
    assert best is not None
    c, _, scores = best
    t = threshold_for(scores, y, args.fa)
    recall, fa = rates(scores, y, t)
    t_cue = threshold_for(scores, y, args.fa_with_cue) if target == "self_harm" else t
    verdicts = [safety.rules(r["text"]) for r in rows]
    if target == "self_harm":
        verdicts = [v if not safety.ENDING_A_REQUEST.search(t) else safety.Assessment(v.kind, v.score, v.cues,
                                                                                       ["end"])
                    for v, t in zip(verdicts, texts, strict=True)]

        def flag(v: safety.Assessment, s: float) -> bool:
            return v.kind == "self_harm" or (v.kind is None and not v.guarded
                                              and (s >= t or (v.score >= 1 and s >= t_cue)))
    else:  # the shipped self-harm model decides first (optimistic: it was trained on these rows)
        sh = safety_model.load()

        def said_self_harm(v: safety.Assessment, plain: str) -> bool:  # what safety.assess decides first
            bar = sh.threshold_with_cue if v.score >= 1 else sh.threshold
            return v.kind == "self_harm" or (v.kind is None and not v.guarded
                                              and not safety.ENDING_A_REQUEST.search(plain) and sh.score(plain) >= bar)

        self_harm = [said_self_harm(v, t) for v, t in zip(verdicts, texts, strict=True)]
        now = [safety.now(t) for t in texts]
        verdicts = [safety.Assessment("self_harm") if said else v for v, said in zip(verdicts, self_harm,
                                                                                      strict=True)]
        verdicts = [v if ok else safety.Assessment(v.kind, v.score, v.cues, ["past"]) for v, ok in
                    zip(verdicts, now, strict=True)]

        def flag(v: safety.Assessment, s: float) -> bool:
            return v.kind == "medical" or (v.kind is None and "past" not in v.guarded and s >= t)

    either_hit = [flag(v, s) for v, ss, lab in zip(verdicts, scores, y, strict=True) if lab for s in ss]
    either_fa = [flag(v, s) for v, ss, lab in zip(verdicts, scores, y, strict=True) if not lab for s in ss]
    print(f"chosen C={c}, threshold {t:.3f} ({t_cue:.3f} with a weak rule cue, self-harm only): model alone "
          f"recall {recall:.1%}, "
          f"false alarms {fa:.1%}; rules OR model {statistics.fmean(either_hit):.1%} / "
          f"{statistics.fmean(either_fa):.1%} (optimistic: the rules were written on most of these rows)")
    if args.sweep:
        chosen = t
        for budget in (0.03, 0.04, 0.05, 0.06, 0.07, 0.08, 0.09, 0.10):
            t = threshold_for(scores, y, budget)
            hit = [flag(v, s) for v, ss, lab in zip(verdicts, scores, y, strict=True) if lab for s in ss]
            fas = [flag(v, s) for v, ss, lab in zip(verdicts, scores, y, strict=True) if not lab for s in ss]
            print(f"  --fa {budget:.2f}: threshold {t:.3f}, model alone {rates(scores, y, t)[0]:.1%}; rules OR model "
                  f"{statistics.fmean(hit):.1%} / {statistics.fmean(fas):.1%}")
        t = chosen
    by_kind: dict[tuple[str, str], list[bool]] = defaultdict(list)
    for r, ss in zip(rows, scores, strict=True):
        by_kind[(r["label"], r["kind"])] += [s >= t for s in ss]
    print("out-of-fold share flagged by the model alone, per kind:")
    for (label, kind), flags in sorted(by_kind.items()):
        print(f"  {label:9} {kind:18} {statistics.fmean(flags):6.1%} of {len(flags) // REPEATS}")
    other = "medical" if target == "self_harm" else "self_harm"
    crossed = Counter(s >= t for r, ss in zip(rows, scores, strict=True) if r["label"] == other for s in ss)
    print(f"{other} rows the model would call {target}: {crossed[True]}/{sum(crossed.values())} (the bot keeps "
          "a verdict of the rules, and self-harm goes first)")
    if args.write:
        model = fit(texts, y, c, args.prune)
        data = {"about": f"flows.safety_model: {target} vs the rest, char 1-4 grams of flows.safety.blanked(text), "
                         f"logistic regression C={c} trained by bench/train_crisis.py on the tune split "
                         f"({len(rows)} rows), weights of at most {args.prune} dropped",
                "bias": model.bias, "threshold": round(t, DIGITS), "threshold_with_cue": round(t_cue, DIGITS),
                "weights": dict(sorted(model.weights.items()))}
        out.write_text(json.dumps(data, ensure_ascii=False, separators=(",", ":")) + "\n", encoding="utf-8")
        print(f"wrote {out.relative_to(ROOT)}: {len(model.weights)} weights, {out.stat().st_size // 1024} KiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
