"""The GPTfluence simulator (Chai et al., EMNLP 2024): config, fitting, rollout and factors.

Factors come from the text features of a training example i and a test example z, so
examples absent from the fit runs get factors too::

    y_t = sum_{j=1..n} (sum_{i in c_t} A_{i,j}(z)) y_{t-j} + sum_{i in c_t} B_i(z)

Equations, options and conventions: docs/methods.md, section "GPTfluence".
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from tdabench import (
    ExampleSet,
    FitData,
    Query,
    RunBatches,
    fitted_values,
    guard_range,
    guarded,
    option,
    torch_threads,
    validate_options,
    widened_range,
)
from tdabench_plugins.encoder import POOLINGS, TextEncoder
from tdabench_plugins.gptfluence._nets import FORMS, FactorNet, build_net
from tdabench_plugins.gptfluence._train import (
    FitResult, RunSet, TrainSettings, constant_factors, factor_range, fit_factors, rollout, used_columns,
)

PUBLISHED_WIDTH = {"concat": 100}  # dot: the encoder's hidden size


@dataclass(frozen=True)
class GPTfluenceConfig:
    """Options of ``gptfluence`` (docs/methods.md, section "GPTfluence")."""

    encoder: str = option("all-MiniLM-L6-v2", "frozen text encoder: all-MiniLM-L6-v2 (packaged, as published), or any transformers encoder directory or locally cached hub id")
    pooling: str = option("first", "sentence embedding: first (first token's last hidden state, as published) or mean (attention-masked mean)", choices=POOLINGS)
    max_length: int = option(512, "tokens kept per example text (published: 512)", ge=1)
    encode_batch_size: int = option(64, "texts per encoder forward pass", ge=1)
    form: str = option("dot", "factor network: dot (A = <f_A(h_i), f_A(h_z)>, one MLP per factor) or concat ([h_i; h_z] -> Linear -> ReLU -> one head per factor)", choices=FORMS)
    width: int = option(128, "hidden width of the factor networks; 0 = published (dot: the encoder's hidden size, concat: 100)", ge=0)
    order: int = option(1, "Markov order n: multiplicative factors over y_{t-1} .. y_{t-n} (published main results: 1)", ge=1)
    interval: int = option(1, "fit on every k-th recorded value only (the cheaper-collection ablation)", ge=1)
    lr: float = option(0.1, "AdamW step scale: each layer's learning rate is lr / fan_in", gt=0)
    weight_decay: float = option(1e-5, "AdamW weight decay (published: 1e-5)", ge=0)
    batch_size: int = option(1024, "(run, transition, test example) triples per minibatch (at least; see max_steps_per_epoch)", ge=1)
    max_steps_per_epoch: int = option(500, "grow the minibatch beyond batch_size so an epoch takes at most this many optimizer steps "
                                           "(large fits: fewer, larger steps; 0 = never grow, as before version 6)", ge=0)
    epochs: int = option(15, "passes over every triple of the fit runs (at most)", ge=1)
    warmup_steps: int = option(200, "linear warmup steps, then linear decay to 0 at the last epoch (published: 200)", ge=0)
    patience: int = option(10, "stop after this many epochs without a lower validation rollout MSE (the best state is kept)", ge=1)
    init_scale: float = option(0.1, "size of the initial example-dependent part of the factors, relative to the constant start", gt=0)
    clip: bool = option(True, "clip every rollout step to the fitted value range widened by its span on each side, "
                        "and the returned predictions also at 0 when no fitted value is negative")
    unseen_test: str = option("neighbors", "test examples the fit did not see: neighbors (the mean test-side representation of "
                                            "their most similar fitted test examples, by encoder cosine; stable) or features (their own "
                                            "features, as published; unseen-test rollouts can run away)", ("neighbors", "features"))
    unseen_train: str = option("neighbors", "training examples the fit did not see: neighbors (the mean train-side representation of "
                                             "their most similar fitted training examples; stable) or features (their own features, as "
                                             "published and before version 2; unseen-train rollouts can drift)", ("neighbors", "features"))
    neighbors: int = option(5, "neighbors: how many fitted examples stand in for an unseen one", ge=1)
    clamp_factors: bool = option(True, "clamp each transition's summed factors to their 1%-99% range over the fit runs' transitions "
                                       "(so an unseen example cannot get factors that make its rollout run away)")
    threads: int = option(1, "torch intra-op threads while fitting and simulating (0 = leave torch's setting): the tensors are small, and on a shared CPU one thread is fastest", ge=0)

    def __post_init__(self) -> None:
        validate_options(self)


@dataclass(frozen=True)
class PairFactors:
    """Per-pair factors on the metric's original scale.

    Attributes:
        train_ids: int64 [n_train]; test_ids: int64 [n_test].
        A: float64 [n_train, n_test, order], the multiplicative factor of each lag 1..order.
        B: float64 [n_train, n_test], the additive factor.
    """

    train_ids: np.ndarray
    test_ids: np.ndarray
    A: np.ndarray
    B: np.ndarray


class GPTfluence:
    """The featurized simulator; the constructor stores the config only.

    Learned state (set by :meth:`fit`): ``net_`` (the factor network), ``encoder_`` (the
    resolved encoder and its cache, kept to embed examples first seen at simulation),
    ``mean_``/``std_`` (feature standardization, from the fit examples), ``scale_`` (the
    target scale), ``bounds_`` (rollout clip range on the normalized scale, or None), ``guard_``
    (the clip of returned predictions, on the metric's scale),
    ``factor_range_`` ([2, F] clamp of the summed factors, or None), ``fit_test_ids_``,
    ``fit_te_`` and ``fit_unit_`` (the fitted test examples' representations and unit
    features, standing in for unseen test examples), ``fit_train_ids_``, ``fit_tr_`` and
    ``fit_train_unit_`` (the same for the fitted training examples),
    ``device_``, ``result_`` (what training chose) and ``texts_`` (id -> text of every
    training and test example met so far, for :meth:`factors`).
    """

    def __init__(self, config: GPTfluenceConfig) -> None:
        self.config = config

    # -- fitting -------------------------------------------------------------------------
    def fit(self, data: FitData) -> GPTfluence:
        """Embed the fit examples, train the factor network, keep the best validation state."""
        with torch_threads(self.config.threads):
            return self._fit(data)

    def _fit(self, data: FitData) -> GPTfluence:
        cfg = self.config
        if data.values.shape[1] != len(data.test):
            raise ValueError(f"FitData values have {data.values.shape[1]} test rows, FitData.test has {len(data.test)}")
        t0 = time.perf_counter()
        self.device_ = torch.device(data.device)
        self.encoder_ = TextEncoder(cfg.encoder, cfg.pooling, cfg.max_length, cfg.encode_batch_size, data.cache_dir, data.device)
        self.texts_: dict[str, dict[int, str]] = {"train": {}, "test": {}}
        self._remember(data.train, data.test)
        raw_train = self.encoder_.embed(data.train.texts)
        raw_test = self.encoder_.embed(data.test.texts)
        both = np.concatenate([raw_train, raw_test])
        self.mean_ = both.mean(axis=0)
        std = both.std(axis=0)
        self.std_ = np.where(std > 1e-8, std, 1.0).astype(np.float32)
        h_train, h_test = self._standardized(raw_train), self._standardized(raw_test)
        encode_s = time.perf_counter() - t0
        # Learn on y / scale: O(1) targets whatever the metric (loss, BLEU 0-100, ROUGE 0-1).
        # Only the columns the interval reads (all of them for interval 1) are ever looked at.
        cols = used_columns(data.values.shape[2], cfg.interval)
        vals = np.concatenate([data.values[..., cols].ravel(), data.validation_values[..., cols].ravel()])
        vals = vals[np.isfinite(vals)]
        rms = float(np.sqrt(np.mean(vals**2))) if len(vals) else 1.0
        self.scale_ = rms if rms > 0 and math.isfinite(rms) else 1.0
        self.bounds_ = widened_range(vals / self.scale_) if cfg.clip else None
        self.guard_ = guard_range(fitted_values(data)) if cfg.clip else None
        fit = self._runset(data.runs, data.train, data.values)
        val = self._runset(data.validation, data.train, data.validation_values) if len(data.validation) else None
        gen = torch.Generator().manual_seed(data.seed)
        width = cfg.width or PUBLISHED_WIDTH.get(cfg.form, h_train.shape[1])
        self.net_: FactorNet = build_net(cfg.form, h_train.shape[1], width, cfg.order, gen).to(self.device_)
        self.const_ = constant_factors(fit, cfg.interval)
        self.net_.init_constant(h_train, h_test, self.const_, cfg.init_scale)
        settings = TrainSettings(
            lr=cfg.lr, weight_decay=cfg.weight_decay, batch_size=cfg.batch_size, epochs=cfg.epochs,
            warmup_steps=cfg.warmup_steps, patience=cfg.patience, interval=cfg.interval, seed=data.seed,
            max_steps_per_epoch=cfg.max_steps_per_epoch,
        )
        t1 = time.perf_counter()
        self.result_: FitResult = fit_factors(self.net_, h_train, h_test, fit, val, settings, self.bounds_)
        self.net_.eval()
        with torch.no_grad():
            tr, te = self.net_.represent(h_train, h_test)
        self.factor_range_ = factor_range(self.net_, tr, te, fit.pos) if cfg.clamp_factors else None
        self.fit_test_ids_ = np.array(data.test.ids, copy=True)
        self.members_ = float((fit.pos >= 0).sum(-1).double().mean().clamp_min(1.0))
        self.level_ = np.nanmean(data.values[:, :, :-1], axis=(0, 2)) if data.values.shape[2] > 1 else data.values[:, :, 0].mean(axis=0)
        self.fit_te_ = te
        self.fit_unit_ = _unit(raw_test)
        self.fit_train_ids_ = np.array(data.train.ids, copy=True)
        self.fit_tr_ = tr[:-1]  # without the padding row
        self.fit_train_unit_ = _unit(raw_train)
        self.times_ = {"encode_s": encode_s, "train_s": time.perf_counter() - t1}
        return self

    def _runset(self, runs: RunBatches, train: ExampleSet, values: np.ndarray) -> RunSet:
        pos = _positions(runs.transitions(), train)
        return RunSet(
            torch.as_tensor(pos, device=self.device_),
            torch.as_tensor(values / self.scale_, dtype=torch.float32, device=self.device_),
        )

    # -- features ------------------------------------------------------------------------
    def _remember(self, train: ExampleSet, test: ExampleSet) -> None:
        self.texts_["train"].update(zip(train.ids.tolist(), train.texts))
        self.texts_["test"].update(zip(test.ids.tolist(), test.texts))

    def _standardized(self, raw: np.ndarray) -> torch.Tensor:
        return torch.as_tensor((raw - self.mean_) / self.std_, dtype=torch.float32, device=self.device_)

    def _features(self, texts: Sequence[str]) -> torch.Tensor:
        """Standardized features of ``texts``: cached embeddings, unseen texts encoded now."""
        return self._standardized(self.encoder_.embed(texts))

    def _lookup(self, kind: str, ids: np.ndarray) -> list[str]:
        known = self.texts_[kind]
        missing = [int(i) for i in ids if int(i) not in known]
        if missing:
            raise KeyError(f"gptfluence has not met {kind} examples {missing[:5]} (pass them in a fit or a query first)")
        return [known[int(i)] for i in ids]

    # -- simulation ----------------------------------------------------------------------
    def simulate(self, query: Query) -> np.ndarray:
        """Roll out every query run from its initial values; float64 [R, n_test, K]."""
        with torch_threads(self.config.threads):
            return self._simulate(query)

    def _simulate(self, query: Query) -> np.ndarray:
        self._remember(query.train, query.test)
        trans = query.runs.transitions()
        used = np.unique(trans[trans >= 0])
        train = query.train.subset(used) if len(used) else ExampleSet.from_ids([])
        pos = torch.as_tensor(_positions(trans, train), device=self.device_)
        initial = torch.as_tensor(query.initial / self.scale_, dtype=torch.float32, device=self.device_)
        with torch.no_grad():
            raw_test = self.encoder_.embed(query.test.texts)
            raw_train = self.encoder_.embed(train.texts)
            tr, te = self.net_.represent(self._standardized(raw_train), self._standardized(raw_test))
            unseen = ~np.isin(query.test.ids, self.fit_test_ids_)
            if unseen.any() and self.config.unseen_test == "neighbors":
                te = te.clone()
                te[torch.as_tensor(unseen)] = _neighbors(raw_test[unseen], self.fit_unit_, self.fit_te_, self.config.neighbors)
            new_train = np.flatnonzero(~np.isin(train.ids, self.fit_train_ids_))
            if len(new_train) and self.config.unseen_train == "neighbors":
                tr = tr.clone()  # the last row is padding and stays
                tr[torch.as_tensor(new_train)] = _neighbors(raw_train[new_train], self.fit_train_unit_, self.fit_tr_, self.config.neighbors)
            pred = rollout(self.net_, tr, te, pos, initial, self.bounds_, self.factor_range_)
        out = guarded(pred.double().cpu().numpy() * self.scale_, self.guard_)
        out[:, :, 0] = query.initial  # exact, not a float32 round trip
        return out

    # -- what was learned ----------------------------------------------------------------
    def factors(self, train_ids: Sequence[int] | np.ndarray, test_ids: Sequence[int] | np.ndarray) -> PairFactors:
        """A and B of every (training id, test id) pair, on the metric's original scale.

        Any example met in a fit or a query can be asked for, seen in fitting or not; an
        example's factors depend only on its text. ``A[i, z, j-1]`` multiplies ``y_{t-j}``
        when ``i`` is in the batch; ``B[i, z]`` is added (the target was learned as
        ``y / scale``, so B is scaled back; A is scale-free).
        """
        tr_ids = np.asarray(train_ids, dtype=np.int64).reshape(-1)
        te_ids = np.asarray(test_ids, dtype=np.int64).reshape(-1)
        parts = []
        with torch_threads(self.config.threads), torch.no_grad():
            h_train = self._features(self._lookup("train", tr_ids))
            h_test = self._features(self._lookup("test", te_ids))
            for start in range(0, len(tr_ids), 64):  # bounded memory for the concat form
                tr, te = self.net_.represent(h_train[start : start + 64], h_test)
                parts.append(self.net_.pairs(tr, te).double().cpu())
        n = self.config.order
        f = torch.cat(parts).numpy() if parts else np.zeros((0, len(te_ids), n + 1))
        return PairFactors(tr_ids, te_ids, f[..., :n].copy(), f[..., n] * self.scale_)

    def self_influence(self, ids: np.ndarray) -> np.ndarray:
        """float64 [n]: the one-step change of each example's own metric from a batch holding it
        rather than a neutral example (a batch of M neutral examples keeps the value: lag-1
        factor 1/M, other factors 0), ``(A_1(i,i) - 1/M) y + sum_{j>1} A_j(i,i) y + B(i,i)``
        at its own mean fitted level y (the mean over fitted test examples for another).

        The example's text is both the training and the test side; an example never met in
        a fit or a query is a ``KeyError``.
        """
        ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        with torch_threads(self.config.threads), torch.no_grad():
            h = self._features(self._lookup("train", ids))
            tr, te = self.net_.represent(h, h)
            f = self.net_.diagonal(tr, te).double().cpu().numpy()
        n = self.config.order
        pos = np.searchsorted(self.fit_test_ids_, ids).clip(max=len(self.fit_test_ids_) - 1)
        known = self.fit_test_ids_[pos] == ids
        y = np.where(known, self.level_[pos], float(np.nanmean(self.level_)))
        return (f[:, 0] - 1.0 / self.members_) * y + f[:, 1:n].sum(axis=1) * y + f[:, n] * self.scale_

    def fit_info(self) -> dict[str, Any]:
        """What fitting chose, JSON-ready: the kept epoch, its validation MSE, timings."""
        r = self.result_
        return {
            "best_epoch": r.best_epoch,
            "epochs_run": r.epochs_run,
            "steps": r.steps,
            "block": list(r.block),
            "selected_on": r.selection,
            "best_select_mse": r.best_val_mse * self.scale_**2,  # on the original scale
            "target_scale": self.scale_,
            "constant_start": {"a": self.const_.a, "b": self.const_.b * self.scale_},
            "encoder": self.encoder_.identity(),
            "texts_encoded": self.encoder_.n_encoded,
            **{k: round(v, 3) for k, v in self.times_.items()},
        }


def _neighbors(raw: np.ndarray, fit_unit: np.ndarray, fit_rep: torch.Tensor, k: int) -> torch.Tensor:
    """The mean fitted representation of each row's ``k`` most similar fitted examples (by
    encoder cosine): what stands in for an example the fit did not see."""
    k = min(k, len(fit_unit))
    sim = _unit(raw) @ fit_unit.T  # [m, n_fit]
    top = torch.as_tensor(np.argsort(-sim, axis=1, kind="stable")[:, :k], device=fit_rep.device)
    return fit_rep[top].mean(dim=1)


def _unit(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (cosine similarity as a dot product)."""
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def _positions(trans: np.ndarray, train: ExampleSet) -> np.ndarray:
    """Rows of ``train`` for transition ids (-1 stays -1); an id ``train`` lacks is an error."""
    pos = train.positions(trans)
    bad = (trans >= 0) & (pos < 0)
    if bad.any():
        raise ValueError(f"training ids without an example (text): {np.unique(trans[bad])[:5].tolist()}")
    return pos


