"""Statistics for evaluation summaries: seeded bootstrap CIs, judge agreement, ROUGE-L.

Every number a summary reports carries a percentile-bootstrap 95% interval so that two
models are compared on intervals, not on point estimates from a few hundred prompts.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

BOOTSTRAP_RESAMPLES = 1000


def bootstrap_ci(
    values: Sequence[float],
    statistic: Callable[[Sequence[float]], float] | None = None,
    *,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = 0,
    level: float = 0.95,
) -> tuple[float, float]:
    """Percentile bootstrap interval of `statistic` (default: the mean); (nan, nan) for no data."""
    import numpy as np

    if len(values) == 0:
        return math.nan, math.nan
    data = np.asarray(values, dtype=float)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(data), size=(resamples, len(data)))
    if statistic is None:
        stats = data[idx].mean(axis=1)
    else:
        stats = np.array([statistic(data[row]) for row in idx], dtype=float)
    return _percentile_interval(stats, level)


def _percentile_interval(stats: Any, level: float) -> tuple[float, float]:
    """The central `level` interval of bootstrap statistics, ignoring undefined (NaN) resamples."""
    import numpy as np

    stats = stats[~np.isnan(stats)]
    if len(stats) == 0:
        return math.nan, math.nan
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(stats, [tail, 100 - tail])
    return float(low), float(high)


def mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else math.nan


def _kappa(observed: Any, px: Any, py: Any) -> Any:
    """Cohen's kappa for binary ratings from agreement and each rater's positive rate (arrays).

    Written out rather than calling scikit-learn (whose import costs seconds per run); the tests
    check it against `sklearn.metrics.cohen_kappa_score`. Two constant raters that agree get 1.0."""
    import numpy as np

    expected = px * py + (1 - px) * (1 - py)
    constant = np.where(observed == 1, 1.0, np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(expected < 1, (observed - expected) / (1 - expected), constant)


def cohen_kappa(a: Sequence[bool], b: Sequence[bool]) -> float:
    """Cohen's kappa of two binary raters on the same items."""
    import numpy as np

    if len(a) != len(b):
        raise ValueError("kappa needs two ratings of the same items")
    if not a:
        return math.nan
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return float(_kappa((x == y).mean(), x.mean(), y.mean()))


def bootstrap_kappa_ci(
    a: Sequence[bool],
    b: Sequence[bool],
    seed: int = 0,
    resamples: int = BOOTSTRAP_RESAMPLES,
    level: float = 0.95,
) -> tuple[float, float]:
    """Bootstrap interval for kappa, resampling items (pairs of ratings) together."""
    import numpy as np

    if not a:
        return math.nan, math.nan
    x = np.asarray(a, dtype=float)
    y = np.asarray(b, dtype=float)
    idx = np.random.default_rng(seed).integers(0, len(x), size=(resamples, len(x)))
    xs, ys = x[idx], y[idx]
    return _percentile_interval(_kappa((xs == ys).mean(axis=1), xs.mean(axis=1), ys.mean(axis=1)), level)


def precision_recall(predicted: Sequence[bool], actual: Sequence[bool]) -> tuple[float, float, float]:
    """Precision, recall and F1 for the positive class (here: 'complied')."""
    from sklearn.metrics import precision_recall_fscore_support

    p, r, f, _ = precision_recall_fscore_support(
        list(actual), list(predicted), average="binary", pos_label=True, zero_division=0
    )
    return float(p), float(r), float(f)


def _lcs_length(a: Sequence[str], b: Sequence[str]) -> int:
    if len(a) < len(b):
        a, b = b, a
    previous = [0] * (len(b) + 1)
    for token_a in a:
        current = [0]
        for j, token_b in enumerate(b, start=1):
            current.append(previous[j - 1] + 1 if token_a == token_b else max(previous[j], current[j - 1]))
        previous = current
    return previous[-1]


def rouge_l_f1(prediction: str, reference: str) -> float:
    """ROUGE-L F1 (Lin 2004) over lower-cased alphanumeric tokens, as rouge-score computes it
    without stemming; implemented here because rouge-score is not a dependency."""
    from mimicry.text import normalize

    pred, ref = normalize(prediction).split(), normalize(reference).split()
    if not pred or not ref:
        return 0.0
    lcs = _lcs_length(pred, ref)
    if lcs == 0:
        return 0.0
    precision, recall = lcs / len(pred), lcs / len(ref)
    return 2 * precision * recall / (precision + recall)
