"""Metrics against hand-computed values and scipy."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import spearmanr

from tdabench.scores import SCORE_NAMES as METRIC_NAMES, phase_slices, rank_corr
from tdabench.scoring import score, score_groups


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


def test_grouped_skill_agrees_with_the_mses_of_its_own_row() -> None:
    # Two groups whose per-group skills would average to a negative number, while the row's MSEs say the method wins.
    rng = np.random.default_rng(3)
    true = rng.normal(size=(4, 30, 9))
    ref = true + rng.normal(scale=1.0, size=true.shape)
    pred = true + rng.normal(scale=0.3, size=true.shape)
    pred[:, 20:] = ref[:, 20:] + rng.normal(scale=0.8, size=(4, 10, 9))  # the small group: worse than the reference
    for a in (ref, pred):
        a[:, :, 0] = true[:, :, 0]
    groups = [np.arange(20), np.arange(20, 30)]
    s, by_group = score_groups(pred, true, ref, groups, group_names=["big", "small"])
    r, _ = score_groups(ref, true, ref, groups, group_names=["big", "small"])
    assert s["skill_mse"].mean == pytest.approx(1 - s["mse_all_steps"].mean / r["mse_all_steps"].mean, abs=1e-9)
    ratio_mean = np.mean([by_group[g]["skill_mse"].mean for g in ("big", "small")])
    assert by_group["small"]["skill_mse"].mean < 0 < s["skill_mse"].mean and ratio_mean != pytest.approx(s["skill_mse"].mean)
    assert s["skill_mse_pooled"].mean == pytest.approx(1 - s["mse_all_steps_pooled"].mean / r["mse_all_steps_pooled"].mean, abs=1e-9)


def test_the_bootstrap_resamples_runs_as_well_as_examples() -> None:
    rng = np.random.default_rng(4)
    true = rng.normal(size=(6, 40, 5))
    alike = true + rng.normal(scale=0.5, size=true.shape)
    apart = true + rng.normal(scale=0.5, size=true.shape) * np.linspace(0.2, 3.0, 6)[:, None, None]  # runs differ in error
    for a in (alike, apart):
        a[:, :, 0] = true[:, :, 0]
    lo, hi = score(apart, true)["mse_all_steps"].ci95
    per_run = ((apart[..., 1:] - true[..., 1:]) ** 2).mean(axis=(1, 2))
    # Leaving out the noisiest or the quietest run moves the mean; the interval must reach both ways.
    assert lo < np.delete(per_run, per_run.argmax()).mean() and hi > np.delete(per_run, per_run.argmin()).mean()
    w_alike = np.diff(score(alike, true)["mse_all_steps"].ci95)[0] / score(alike, true)["mse_all_steps"].mean
    assert (hi - lo) / score(apart, true)["mse_all_steps"].mean > 2 * w_alike


def test_phase_skills_say_where_the_skill_comes_from() -> None:
    rng = np.random.default_rng(5)
    true = rng.normal(size=(3, 10, 21))  # 20 steps after the initial one: early 1-2, mid 3-10, late 11-20
    ref = true + 1.0
    pred = ref.copy()
    pred[:, :, 1:3] = true[:, :, 1:3]  # perfect in the first 10% only
    for a in (ref, pred):
        a[:, :, 0] = true[:, :, 0]
    s = score(pred, true, ref)
    assert s["skill_mse_early"].mean == pytest.approx(1.0)
    assert s["skill_mse_mid"].mean == pytest.approx(0.0) and s["skill_mse_late"].mean == pytest.approx(0.0)
    assert s["skill_mse"].mean == pytest.approx(0.1)
    assert phase_slices(21) == {"early": slice(1, 3), "mid": slice(3, 11), "late": slice(11, 21)}
