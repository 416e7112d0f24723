"""Metrics against hand-computed values and scipy."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import spearmanr

from tdabench.scores import SCORE_NAMES as METRIC_NAMES, rank_corr, score


def test_hand_computed_values() -> None:
    # One run, two test examples, three steps (column 0 is the initial point).
    true = np.array([[[1.0, 2.0, 3.0], [1.0, 1.0, 1.0]]])
    pred = np.array([[[1.0, 3.0, 5.0], [1.0, 1.0, 2.0]]])
    s = score(pred, true)
    # Errors after the initial point: ex0 (1, 2), ex1 (0, 1).
    assert s["mse_all_steps"].mean == pytest.approx(((1 + 4) / 2 + (0 + 1) / 2) / 2)  # 1.5
    assert s["mse_all_steps"].std == pytest.approx(np.std([2.5, 0.5]))
    assert s["mae_all_steps"].mean == pytest.approx((1.5 + 0.5) / 2)
    assert s["mse_final"].mean == pytest.approx((4 + 1) / 2)
    assert s["mae_final"].mean == pytest.approx(1.5)
    # Final step: pred (5, 2) vs true (3, 1): same order, rho = 1.
    assert s["spearman_final"].mean == pytest.approx(1.0)
    # Across steps: ex0 (3,5) vs (2,3) -> 1; ex1 true is constant -> undefined, left out.
    assert s["spearman_steps"].mean == pytest.approx(1.0) and s["spearman_steps"].n == 1
    assert set(s) == set(METRIC_NAMES)


def test_matches_scipy_and_ci_brackets_mean() -> None:
    rng = np.random.default_rng(1)
    true = rng.normal(size=(5, 40, 12))
    pred = true + rng.normal(scale=0.5, size=true.shape)
    pred[:, :, 0] = true[:, :, 0]
    s = score(pred, true)
    per_run = [spearmanr(pred[r, :, -1], true[r, :, -1]).statistic for r in range(5)]
    assert s["spearman_final"].mean == pytest.approx(np.mean(per_run))
    assert s["spearman_final"].std == pytest.approx(np.std(per_run))
    per_traj = [spearmanr(pred[r, i, 1:], true[r, i, 1:]).statistic for r in range(5) for i in range(40)]
    assert s["spearman_steps"].mean == pytest.approx(np.mean(per_traj))
    mse = ((pred[:, :, 1:] - true[:, :, 1:]) ** 2).mean(-1)
    assert s["mse_all_steps"].mean == pytest.approx(mse.mean())
    for name in METRIC_NAMES:
        lo, hi = s[name].ci95
        assert lo <= s[name].mean <= hi, name


def test_rank_corr_ties_match_scipy() -> None:
    a = np.array([1.0, 2.0, 2.0, 3.0, 5.0, 5.0])
    b = np.array([2.0, 1.0, 4.0, 4.0, 6.0, 3.0])
    assert rank_corr(a, b) == pytest.approx(spearmanr(a, b).statistic)
    assert np.isnan(rank_corr(np.ones(4), np.arange(4.0)))


def test_constant_predictions_have_undefined_step_correlation() -> None:
    true = np.cumsum(np.ones((2, 3, 5)), axis=-1)
    pred = np.repeat(true[:, :, :1], 5, axis=2)
    s = score(pred, true)
    assert np.isnan(s["spearman_steps"].mean) and s["spearman_steps"].n == 0
    assert s["spearman_steps"].to_dict()["mean"] is None


def test_bootstrap_is_seeded() -> None:
    rng = np.random.default_rng(2)
    true = rng.normal(size=(2, 10, 4))
    pred = true + 0.1
    assert score(pred, true)["mse_all_steps"].ci95 == score(pred, true)["mse_all_steps"].ci95


def test_shape_mismatch_is_an_error() -> None:
    with pytest.raises(ValueError, match="must both be"):
        score(np.zeros((1, 2, 3)), np.zeros((1, 2, 4)))
