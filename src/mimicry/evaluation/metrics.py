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


def _encode(a: Sequence[Any], b: Sequence[Any]) -> tuple[Any, Any, int]:
    """Two label sequences as integer codes over their joint label set."""
    import numpy as np

    if len(a) != len(b):
        raise ValueError("kappa needs two ratings of the same items")
    labels = {label: i for i, label in enumerate(sorted(set(a) | set(b), key=str))}
    return (np.asarray([labels[x] for x in a]), np.asarray([labels[y] for y in b]), len(labels))


def _kappa_rows(x: Any, y: Any, k: int) -> Any:
    """Cohen's kappa of each row of two (resamples, items) code arrays, for any number of labels.

    Written out rather than calling scikit-learn (whose import costs seconds per run); the tests
    check it against `sklearn.metrics.cohen_kappa_score`. Two constant raters that agree get 1.0."""
    import numpy as np

    observed = (x == y).mean(axis=1)
    expected = sum((x == c).mean(axis=1) * (y == c).mean(axis=1) for c in range(k))
    constant = np.where(observed == 1, 1.0, np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(expected < 1, (observed - expected) / (1 - expected), constant)


def cohen_kappa(a: Sequence[Any], b: Sequence[Any]) -> float:
    """Cohen's kappa of two raters on the same items; labels may be booleans or any strings
    (three-way verdicts: refusal / compliance / other)."""
    if len(a) != len(b):
        raise ValueError("kappa needs two ratings of the same items")
    if not a:
        return math.nan
    x, y, k = _encode(a, b)
    return float(_kappa_rows(x[None, :], y[None, :], k)[0])


def bootstrap_kappa_ci(
    a: Sequence[Any],
    b: Sequence[Any],
    seed: int = 0,
    resamples: int = BOOTSTRAP_RESAMPLES,
    level: float = 0.95,
) -> tuple[float, float]:
    """Bootstrap interval for kappa, resampling items (pairs of ratings) together."""
    import numpy as np

    if not a:
        return math.nan, math.nan
    x, y, k = _encode(a, b)
    idx = np.random.default_rng(seed).integers(0, len(x), size=(resamples, len(x)))
    return _percentile_interval(_kappa_rows(x[idx], y[idx], k), level)


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


# -- paired comparisons ---------------------------------------------------------------------------


def paired_bootstrap_diff(
    a: Sequence[float],
    b: Sequence[float],
    *,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = 0,
    level: float = 0.95,
) -> tuple[float, float, float]:
    """mean(a) - mean(b) on the same items (a[i] and b[i] are one prompt), with a bootstrap
    interval that resamples prompts, keeping each prompt's pair together."""
    import numpy as np

    if len(a) != len(b):
        raise ValueError("a paired comparison needs both outcomes for every item")
    if len(a) == 0:
        return math.nan, math.nan, math.nan
    d = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    idx = np.random.default_rng(seed).integers(0, len(d), size=(resamples, len(d)))
    low, high = _percentile_interval(d[idx].mean(axis=1), level)
    return float(d.mean()), low, high


def mcnemar_exact(a: Sequence[bool], b: Sequence[bool]) -> float:
    """Two-sided exact McNemar p-value for paired binary outcomes: a binomial test on the
    discordant pairs (a yes / b no against a no / b yes)."""
    if len(a) != len(b):
        raise ValueError("McNemar's test needs both outcomes for every item")
    only_a = sum(bool(x) and not bool(y) for x, y in zip(a, b, strict=True))
    only_b = sum(bool(y) and not bool(x) for x, y in zip(a, b, strict=True))
    n = only_a + only_b
    if n == 0:
        return 1.0
    k = min(only_a, only_b)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2**n
    return min(1.0, 2 * tail)


def two_level_bootstrap_mean(
    outcomes: Sequence[Sequence[float]],
    *,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = 0,
    level: float = 0.95,
) -> tuple[float, float, float]:
    """The mean over seeds of per-seed means, with an interval that resamples both sources of
    variance: seeds, and (the same resampled) prompts within them.

    `outcomes[s][i]` is seed s's outcome on prompt i; every seed is scored on the same prompts, so
    one prompt resample is shared by all seeds of a replicate (the prompts are one sample)."""
    import numpy as np

    if not outcomes or not outcomes[0]:
        return math.nan, math.nan, math.nan
    data = np.asarray(outcomes, dtype=float)
    if data.ndim != 2:
        raise ValueError("every seed needs an outcome for every prompt")
    n_seeds, n_items = data.shape
    rng = np.random.default_rng(seed)
    stats = np.empty(resamples)
    for r in range(resamples):
        seeds = rng.integers(0, n_seeds, size=n_seeds)
        items = rng.integers(0, n_items, size=n_items)
        stats[r] = data[np.ix_(seeds, items)].mean()
    low, high = _percentile_interval(stats, level)
    return float(data.mean()), low, high
