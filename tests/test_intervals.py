"""The bootstrap intervals are right: on synthetic data whose true metric is known, a 95% interval covers the truth
in about 95% of repeated samples, and a paired interval of the change covers the true change as often.

Each case draws `REPS` independent test sets from a known distribution, computes the interval on each with
`evals.confidence_intervals` (or `paired_change`), and counts how often it contains the true value. With 300
repetitions the count of a correct 95% interval lies in [0.90, 0.99] with probability > 0.999; an interval that
is too narrow by a third (coverage ~83%) or twice too wide (~99.99%) falls outside."""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import norm

from ml_lifecycle.evals import Predictions, confidence_intervals, paired_change

REPS, ROWS, BOOT = 300, 400, 400
LOW, HIGH = 0.90, 0.99


def binary(rng: np.random.Generator, d: float, prevalence: float = 0.3, n: int = ROWS) -> Predictions:
    """Scores of positives ~ N(d, 1), of negatives ~ N(0, 1): true AUC = Phi(d / sqrt 2)."""
    y = (rng.random(n) < prevalence).astype(int)
    score = 1 / (1 + np.exp(-(rng.normal(size=n) + d * y)))
    return Predictions(y.astype(object), (score > 0.5).astype(int).astype(object), np.column_stack([1 - score, score]),
                       (0, 1))


def coverage(truth: float, intervals: list[tuple[float, float]]) -> float:
    return float(np.mean([lo <= truth <= hi for lo, hi in intervals]))


def test_auc_accuracy_and_brier_intervals_cover_the_truth():
    d, prevalence = 1.2, 0.3
    rng = np.random.default_rng(11)
    true_auc = norm.cdf(d / math.sqrt(2))
    # accuracy and Brier of the threshold 0.5 on the logistic of N(d*y, 1) scores, from one huge sample
    big = binary(np.random.default_rng(0), d, prevalence, n=4_000_000)
    hit = big.y_true.astype(int)
    true_accuracy = float(np.mean(big.y_pred.astype(int) == hit))
    true_brier = float(np.mean((big.scores[:, 1] - hit) ** 2))
    cis = [confidence_intervals("binary", binary(rng, d, prevalence), BOOT, 0.95, seed=r) for r in range(REPS)]
    for name, truth in (("roc_auc", true_auc), ("accuracy", true_accuracy), ("brier", true_brier)):
        got = coverage(truth, [c[name] for c in cis])
        assert LOW <= got <= HIGH, (name, truth, got)
    # the width shrinks with the rows as 1/sqrt(n): four times the rows, about half the width
    wide = np.median([np.subtract(*c["roc_auc"][::-1]) for c in cis[:50]])
    narrow = np.median([np.subtract(*confidence_intervals("binary", binary(rng, d, prevalence, 4 * ROWS), BOOT,
                                                          seed=r)["roc_auc"][::-1]) for r in range(50)])
    assert 0.4 < narrow / wide < 0.6, (wide, narrow)


def test_regression_intervals_cover_the_truth():
    sigma = 2.0
    rng = np.random.default_rng(12)
    cis = []
    for r in range(REPS):
        y = rng.normal(10, 3, ROWS)
        cis.append(confidence_intervals("regression", Predictions(y, y + rng.normal(0, sigma, ROWS)), BOOT, seed=r))
    for name, truth in (("rmse", sigma), ("mae", sigma * math.sqrt(2 / math.pi)), ("r2", 1 - sigma ** 2 / 9)):
        got = coverage(truth, [c[name] for c in cis])
        assert LOW <= got <= HIGH, (name, truth, got)


@pytest.mark.parametrize("confidence", [0.8, 0.95])
def test_paired_change_covers_the_true_change(confidence):
    """Two models scoring the same rows, sharing most of their noise: the change of AUC is known."""
    rng = np.random.default_rng(13)
    d_new, d_old = 1.3, 1.1
    # score = d * y + shared noise + own noise; each model's score is N(d*y, 1), so its AUC is Phi(d / sqrt 2)
    truth = norm.cdf(d_new / math.sqrt(2)) - norm.cdf(d_old / math.sqrt(2))
    hits = []
    for r in range(REPS):
        y = (rng.random(ROWS) < 0.3).astype(int)
        shared = rng.normal(0, math.sqrt(0.8), ROWS)
        preds = []
        for d in (d_new, d_old):
            s = 1 / (1 + np.exp(-(d * y + shared + rng.normal(0, math.sqrt(0.2), ROWS))))
            preds.append(Predictions(y.astype(object), (s > 0.5).astype(int).astype(object),
                                     np.column_stack([1 - s, s]), (0, 1)))
        _, lo, hi = paired_change("binary", "roc_auc", preds[0], preds[1], BOOT, confidence, seed=r)
        hits.append(lo <= truth <= hi)
    got = float(np.mean(hits))
    # the same bound as above, around the asked confidence (80%: a count in [0.74, 0.86] with p > 0.999)
    slack = 0.05 if confidence == 0.95 else 0.07
    assert confidence - slack <= got <= min(confidence + slack, 0.99), (truth, got)
