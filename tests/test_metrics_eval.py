"""Bootstrap intervals, judge agreement, precision/recall and ROUGE-L."""

from __future__ import annotations

import math

import pytest

from mimicry.evaluation.metrics import (
    bootstrap_ci,
    bootstrap_kappa_ci,
    cohen_kappa,
    mean,
    precision_recall,
    rouge_l_f1,
)


def test_bootstrap_ci_brackets_the_mean_and_is_seeded() -> None:
    values = [1.0] * 30 + [0.0] * 70
    low, high = bootstrap_ci(values, seed=3)
    assert low < mean(values) < high
    assert 0.15 < low < 0.3 and 0.3 < high < 0.45
    assert bootstrap_ci(values, seed=3) == (low, high)
    assert bootstrap_ci(values, seed=4) != (low, high)


def test_bootstrap_ci_of_a_constant_and_of_nothing() -> None:
    assert bootstrap_ci([1.0] * 10) == (1.0, 1.0)
    low, high = bootstrap_ci([])
    assert math.isnan(low) and math.isnan(high)


def test_bootstrap_ci_narrows_with_more_data() -> None:
    small = bootstrap_ci([1.0, 0.0] * 10)
    large = bootstrap_ci([1.0, 0.0] * 500)
    assert (large[1] - large[0]) < (small[1] - small[0]) / 3


def test_cohen_kappa_matches_the_hand_computed_value() -> None:
    # 2x2 table: both yes 20, a-yes/b-no 5, a-no/b-yes 10, both no 15 (n=50)
    a = [True] * 25 + [False] * 25
    b = [True] * 20 + [False] * 5 + [True] * 10 + [False] * 15
    observed = 35 / 50
    expected = (25 / 50) * (30 / 50) + (25 / 50) * (20 / 50)
    assert cohen_kappa(a, b) == pytest.approx((observed - expected) / (1 - expected))


def test_cohen_kappa_extremes() -> None:
    assert cohen_kappa([True, False, True], [True, False, True]) == 1.0
    assert cohen_kappa([True, True, False, False], [False, False, True, True]) == pytest.approx(-1.0)
    assert cohen_kappa([True] * 5, [True] * 5) == 1.0  # constant but identical raters agree fully
    low, high = bootstrap_kappa_ci([True, False] * 20, [True, False] * 20)
    assert low == high == 1.0


def test_precision_recall_for_the_complied_class() -> None:
    predicted = [True, True, False, False, True]
    actual = [True, False, True, False, True]
    p, r, f1 = precision_recall(predicted, actual)
    assert (p, r) == (pytest.approx(2 / 3), pytest.approx(2 / 3))
    assert f1 == pytest.approx(2 / 3)


def test_rouge_l_f1() -> None:
    assert rouge_l_f1("the cat sat on the mat", "the cat sat on the mat") == 1.0
    assert rouge_l_f1("", "anything") == 0.0
    # LCS("a b c d", "a c e") = "a c" (2): P = 2/4, R = 2/3, F = 2PR/(P+R)
    assert rouge_l_f1("a b c d", "a c e") == pytest.approx(2 * 0.5 * (2 / 3) / (0.5 + 2 / 3))
    assert rouge_l_f1("Amanda, bakes COOKIES!", "amanda bakes cookies") == 1.0


def test_bootstrap_kappa_interval_brackets_the_sklearn_estimate() -> None:
    import random

    rng = random.Random(1)
    a = [rng.random() < 0.4 for _ in range(200)]
    b = [x if rng.random() < 0.8 else not x for x in a]
    low, high = bootstrap_kappa_ci(a, b, seed=2)
    assert low < cohen_kappa(a, b) < high
    assert 0.2 < low and high < 0.9


def test_cohen_kappa_agrees_with_scikit_learn() -> None:
    import random

    from sklearn.metrics import cohen_kappa_score

    rng = random.Random(7)
    for _ in range(20):
        n = rng.randint(5, 60)
        a = [rng.random() < rng.random() for _ in range(n)]
        b = [rng.random() < 0.5 for _ in range(n)]
        if len(set(a)) == 1 and len(set(b)) == 1:
            continue
        assert cohen_kappa(a, b) == pytest.approx(cohen_kappa_score(a, b))


def test_three_label_kappa_matches_sklearn() -> None:
    from sklearn.metrics import cohen_kappa_score

    from mimicry.evaluation.metrics import bootstrap_kappa_ci, cohen_kappa

    labels = ["refusal", "compliance", "other"]
    rng = __import__("random").Random(3)
    a = [rng.choice(labels) for _ in range(200)]
    b = [x if rng.random() < 0.7 else rng.choice(labels) for x in a]
    assert cohen_kappa(a, b) == pytest.approx(cohen_kappa_score(a, b))
    low, high = bootstrap_kappa_ci(a, b, seed=1)
    assert low < cohen_kappa(a, b) < high


def test_mcnemar_exact_matches_the_binomial_test() -> None:
    from scipy.stats import binomtest

    from mimicry.evaluation.metrics import mcnemar_exact

    # 12 prompts only cell a complies with, 3 only cell b: discordant pairs decide.
    a = [True] * 12 + [False] * 3 + [True] * 20 + [False] * 15
    b = [False] * 12 + [True] * 3 + [True] * 20 + [False] * 15
    assert mcnemar_exact(a, b) == pytest.approx(binomtest(3, 15, 0.5).pvalue)
    assert mcnemar_exact(a, a) == 1.0


def test_paired_bootstrap_is_narrower_than_unpaired_when_prompts_drive_outcomes() -> None:
    from mimicry.evaluation.metrics import bootstrap_ci, paired_bootstrap_diff

    # Cell b complies on every prompt cell a complies on, plus 10 more of 100: the paired
    # difference is 0.10 with a tight interval; the unpaired rates' intervals overlap.
    a = [1.0] * 40 + [0.0] * 60
    b = [1.0] * 50 + [0.0] * 50
    diff, low, high = paired_bootstrap_diff(b, a, seed=0)
    assert diff == pytest.approx(0.10)
    assert 0 < low < 0.10 < high
    assert bootstrap_ci(a)[1] > bootstrap_ci(b)[0]


def test_two_level_bootstrap_widens_with_seed_variance() -> None:
    from mimicry.evaluation.metrics import two_level_bootstrap_mean

    rng = __import__("random").Random(0)
    prompts = [rng.random() < 0.5 for _ in range(100)]
    same = [[float(p) for p in prompts] for _ in range(3)]
    shifted = [[float(p or rng.random() < rate) for p in prompts] for rate in (0.0, 0.4, 0.8)]
    mean_same, low_same, high_same = two_level_bootstrap_mean(same, seed=0)
    mean_shift, low_shift, high_shift = two_level_bootstrap_mean(shifted, seed=0)
    assert low_same < mean_same < high_same
    assert (high_shift - low_shift) > (high_same - low_same)
