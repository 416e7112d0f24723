"""TracIn-CP and Grad-Dot as training-run simulators, and the machinery influence reuses.

:class:`GradientSimulator` fits by computing, at each used checkpoint, a score table
``S[c, i, z]`` over the fit runs' training examples ``i`` and the fitted test examples ``z``
(orientation train x test; positive means training on ``i`` lowers the loss of ``z``). It
keeps the model and that table; ``simulate`` computes the rows and columns a query adds
(unseen training or test examples: gradients exist for any text) and rolls the additive
model of :mod:`tdabench_plugins.gradients._rollout` out. Subclasses say which checkpoints they use
and how a table is computed (TracIn: ``<g_i, g_z>``).
"""

from __future__ import annotations

import hashlib
import time
from typing import Any, ClassVar

import numpy as np
import torch

from tdabench import Encoded, ExampleSet, FitData, Query, RunBatches, config_dict, fitted_values, guard_range, guarded
from tdabench_plugins.gradients._cache import TableCache, example_keys, examples_digest, table_cache
from tdabench_plugins.gradients._config import GradientConfig
from tdabench_plugins.gradients._model import ModelHandle, encode_examples, lr_at, open_model, select_steps, step_checkpoint_index
from tdabench_plugins.gradients._per_example import GradientEngine, selected_names
from tdabench_plugins.gradients._project import Projector
from tdabench_plugins.gradients._rollout import filled_lr, least_squares_scale, mse_after_initial, rollout, step_deltas
from tdabench_plugins.gradients._scores import cross_scores, self_scores


class GradientSimulator:
    """Shared fit/simulate of the gradient methods; see the module docstring."""

    checkpoint_choice: ClassVar[str] = "all"
    #: What a checkpoint's table is, for the cache key: TracIn-CP and Grad-Dot share "dot".
    table_kind: ClassVar[str] = "dot"

    def __init__(self, config: GradientConfig) -> None:
        self.config = config

    # ----- hooks for subclasses -------------------------------------------------------
    def _checkpoints(self) -> str:
        return self.checkpoint_choice

    def _prepare(self, data: FitData) -> None:
        """Fit-time setup before any table is computed (influence: curvature samples)."""

    def _checkpoint_table(self, params: dict[str, torch.Tensor], step: int, test: Encoded, train: Encoded, *, variants: bool) -> np.ndarray:
        """[n_variants, n_test, n_train] at one checkpoint; TracIn: plain gradient dot products."""
        return cross_scores(self.engine_, params, test, train, budget_bytes=self.budget_)

    def _self_table(self, params: dict[str, torch.Tensor], step: int, enc: Encoded) -> np.ndarray:
        """[n] self-scores at one checkpoint."""
        return self_scores(self.engine_, params, enc, budget_bytes=self.budget_)[0]

    def _table_salt(self, step: int, variants: bool) -> dict[str, Any]:
        """What else a table at ``step`` depends on, beyond the config (influence: the damping)."""
        return {}

    def _table_state(self, step: int) -> dict[str, Any]:
        """State a table's computation leaves behind, saved with it in the cache."""
        return {}

    def _restore_state(self, step: int, state: dict[str, Any]) -> None:
        """Put back what :meth:`_table_state` saved, when a table comes from the cache."""

    # ----- fit --------------------------------------------------------------------------
    def fit(self, data: FitData) -> GradientSimulator:
        """Load the model, compute the score tables of the fit examples, choose and calibrate."""
        if data.trajectory != "loss":
            raise ValueError(f"gradient methods predict the loss only (gradients of the loss), not {data.trajectory!r}")
        t0 = time.perf_counter()
        cfg = self.config
        self.budget_ = cfg.memory_mb * 2**20
        self.seed_ = data.seed
        self.cache_: TableCache = table_cache(data.cache_dir)
        self.cached_seconds_ = 0.0  # what the tables read from the cache cost when they were computed
        self.cached_unknown_ = False  # some were cached before that was recorded
        self.counted_: set[tuple[str, str]] = set()  # (table, column) whose cost this fit already holds
        self.digests_: dict[int, str] = {}
        self.handle_: ModelHandle = open_model(
            data.model, meta_loss_type=data.meta.loss_type, preferred_runs=(*data.runs.names, *data.validation.names),
            run_override=cfg.checkpoint_run, device=data.device,
        )
        self.steps_ = select_steps(self.handle_.steps, self._checkpoints(), cfg.max_checkpoints)
        names = selected_names(self.handle_.model, cfg.params)
        shapes = dict(self.handle_.model.named_parameters())
        projector = None
        if cfg.projection_dim > 0:
            sizes = {n: shapes[n].numel() for n in names}
            projector = Projector(sizes, cfg.projection_dim, cfg.projection, data.seed, self.handle_.device)
        self.engine_ = GradientEngine(self.handle_.model, names, projector=projector, memory_bytes=self.budget_ // 2)
        self.train_, self.test_ = data.train, data.test
        self.bounds_ = guard_range(fitted_values(data)) if cfg.clip else None
        lr_fit, note = filled_lr(data.runs.lr)
        self.weights_ = lr_at(lr_fit, self.steps_)
        self.notes_ = [*self.handle_.notes, *([note] if note else [])]
        self._prepare(data)
        tables = self._tables(data.train, data.test, variants=True)  # [V, C, n_train, n_test]
        self.fit_hits_ = self.cache_.hits
        self.variant_mse_: list[float] = []
        scales: list[float] = []
        for v in range(tables.shape[0]):
            s = self._calibrate(tables[v], data.runs, data.values) if cfg.calibrate else 1.0
            scales.append(s)
            if len(data.validation):
                pred = self._predict(tables[v], data.train.ids, data.validation, data.validation_values[:, :, 0], s)
                self.variant_mse_.append(mse_after_initial(pred, data.validation_values))
            else:  # no validation runs: select on the fit runs
                pred = self._predict(tables[v], data.train.ids, data.runs, data.values[:, :, 0], s)
                self.variant_mse_.append(mse_after_initial(pred, data.values))
        self.variant_ = int(np.argmin(self.variant_mse_))
        self.scores_ = tables[self.variant_]
        self.scale_ = scales[self.variant_]
        self._chosen(self.variant_)
        self.fit_seconds_ = time.perf_counter() - t0
        return self

    def _chosen(self, variant: int) -> None:
        """Told which variant won (influence keeps its damping)."""

    def _calibrate(self, table: np.ndarray, runs: RunBatches, values: np.ndarray) -> float:
        raw = self._predict(table, self.train_.ids, runs, values[:, :, 0], 1.0)
        return least_squares_scale(raw - raw[:, :, :1], values - values[:, :, :1])

    def _predict(self, table: np.ndarray, train_ids: np.ndarray, runs: RunBatches, initial: np.ndarray, scale: float) -> np.ndarray:
        lr, _ = filled_lr(runs.lr)
        index = step_checkpoint_index(self.steps_, runs.batches.shape[1])
        deltas = step_deltas(table, train_ids, runs, index, lr, self.config.batch_reduction)
        return rollout(deltas, runs.steps, initial, scale)

    def _tables(self, train: ExampleSet, test: ExampleSet, *, variants: bool) -> np.ndarray:
        """[V, C, n_train, n_test] over the used checkpoints (V = 1 unless ``variants``); each
        checkpoint's table is read from the cache (_cache) column by column, and only the test
        examples it lacks are computed."""
        # calibration and clipping act after the table
        options = {k: v for k, v in config_dict(self.config).items() if k not in ("calibrate", "clip")}
        parts = {"kind": self.table_kind, "layout": 2, "options": options, "seed": self.seed_, "device": self.handle_.device.type,
                 "loss_type": self.handle_.loss_type, "train": examples_digest(train), "variants": variants}
        columns = example_keys(test)
        train_enc: Encoded | None = None  # tokenized only on a miss
        per_ckpt = []
        for step in self.steps_:
            params = self.handle_.params_at(step)
            key = self.cache_.key({**parts, "step": step, "weights": self._weights_digest(step, params), **self._table_salt(step, variants)})
            found, state = self.cache_.load(key, columns)
            if state:
                self._restore_state(step, state)
            # A cached column's cost, measured when it was computed, stays this fit's cost: the
            # leaderboard's speed-up over retraining must not credit a method with another cell's work.
            column_seconds: dict[str, float] = dict(state.get("column_seconds", {}))
            borrowed = [c for c in found if (key, c) not in self.counted_]
            self.cached_seconds_ += sum(float(column_seconds.get(c, 0.0)) for c in borrowed)
            self.cached_unknown_ |= any(c not in column_seconds for c in borrowed)
            self.counted_.update((key, c) for c in columns)
            missing = [j for j, c in enumerate(columns) if c not in found]
            if missing:
                t_table, before = time.perf_counter(), self.cached_seconds_
                if train_enc is None:
                    train_enc = encode_examples(self.handle_, train, self.config.max_length)
                sub = test.subset(test.ids[missing])
                fresh = self._checkpoint_table(params, step, encode_examples(self.handle_, sub, self.config.max_length), train_enc, variants=variants)
                new = {columns[j]: fresh[:, r] for r, j in enumerate(missing)}
                # what computing them cost, including cached parts it used (kronfluence's factors)
                per_column = (time.perf_counter() - t_table + self.cached_seconds_ - before) / len(missing)
                column_seconds.update({columns[j]: per_column for j in missing})
                self.cache_.store(key, new, {**self._table_state(step), "column_seconds": column_seconds})
                found.update(new)
            table = np.stack([found[c] for c in columns], axis=1) if columns else np.zeros((1, 0, len(train)))
            per_ckpt.append(table.transpose(0, 2, 1))
            del params
        return np.stack(per_ckpt, axis=1)

    def _weights_digest(self, step: int, params: dict[str, torch.Tensor]) -> str:
        """sha256 of the weights at a checkpoint (names, shapes and bytes), once per step."""
        if step not in self.digests_:
            h = hashlib.sha256()
            for name in sorted(params):
                t = params[name].detach().to("cpu", torch.float32).contiguous()
                h.update(f"{name}{tuple(t.shape)}".encode())
                h.update(t.numpy().tobytes())
            self.digests_[step] = h.hexdigest()
        return self.digests_[step]

    # ----- simulate ---------------------------------------------------------------------
    def simulate(self, query: Query) -> np.ndarray:
        """Roll the additive model out for the query's runs and test examples."""
        if query.trajectory != "loss":
            raise ValueError(f"gradient methods predict the loss only, not {query.trajectory!r}")
        used = np.unique(query.runs.batches)
        used = used[used >= 0]
        table = self._query_table(used, query)
        return guarded(self._predict(table, used, query.runs, query.initial, self.scale_), self.bounds_)

    def _query_table(self, train_ids: np.ndarray, query: Query) -> np.ndarray:
        """[C, len(train_ids), n_query_test]: stored scores, plus fresh ones for unseen examples."""
        tr_pos = self.train_.positions(train_ids)
        te_pos = self.test_.positions(query.test.ids)
        known_tr, known_te = tr_pos >= 0, te_pos >= 0
        out = np.zeros((len(self.steps_), len(train_ids), len(query.test)))
        out[:, known_tr[:, None] & known_te[None, :]] = self.scores_[:, tr_pos[known_tr]][:, :, te_pos[known_te]].reshape(len(self.steps_), -1)
        if (~known_te).any():  # unseen test examples: against every training example used
            train = self._examples(train_ids, query)
            fresh = self._tables(train, query.test.subset(query.test.ids[~known_te]), variants=False)[0]
            out[:, :, ~known_te] = fresh
        if (~known_tr).any() and known_te.any():  # unseen training examples: against fitted tests
            train = query.train.subset(train_ids[~known_tr])
            fresh = self._tables(train, self.test_.subset(query.test.ids[known_te]), variants=False)[0]
            out[np.ix_(np.arange(len(self.steps_)), np.flatnonzero(~known_tr), np.flatnonzero(known_te))] = fresh
        return out

    def _examples(self, ids: np.ndarray, query: Query) -> ExampleSet:
        """Training examples by id: from the query's texts, or the fitted ones."""
        pos = query.train.positions(ids)
        return query.train.subset(ids) if (pos >= 0).all() else self.train_.subset(ids)

    # ----- exposed scores ---------------------------------------------------------------
    def pairwise_scores(self, train: ExampleSet | None = None, test: ExampleSet | None = None) -> np.ndarray:
        """float64 [n_train, n_test]: ``s * sum_c eta_c S[c, i, z]`` (positive: training on
        ``i`` lowers the loss of ``z``); defaults to the fitted examples."""
        if train is None and test is None:
            table = self.scores_
        else:
            table = self._tables(self.train_ if train is None else train, self.test_ if test is None else test, variants=False)[0]
        return self.scale_ * np.tensordot(self.weights_, table, axes=(0, 0))

    def self_scores(self, train: ExampleSet | None = None) -> np.ndarray:
        """float64 [n_train]: each training example's score with itself, same weights and sign
        as :meth:`pairwise_scores` (TracIn's self-influence)."""
        enc = encode_examples(self.handle_, self.train_ if train is None else train, self.config.max_length)
        total = np.zeros(len(enc))
        for w, step in zip(self.weights_, self.steps_):
            total += w * self._self_table(self.handle_.params_at(step), step, enc)
        return self.scale_ * total

    def self_influence(self, ids: np.ndarray) -> np.ndarray:
        """float64 [n]: minus :meth:`self_scores` of the fitted examples with these ids (the
        predicted change of each one's own loss, negative: training on it lowers it); NaN for
        an id the fit did not have."""
        ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        known: dict[int, tuple[str, str, str]] = {}
        for ex in (self.test_, self.train_):  # a training example's own record wins
            known.update({int(i): (p, t, x) for i, p, t, x in zip(ex.ids, ex.prompts, ex.targets, ex.texts)})
        found = np.array([int(i) in known for i in ids], dtype=bool)
        out = np.full(len(ids), np.nan)
        if found.any():
            uniq = np.unique(ids[found])  # an ExampleSet holds sorted, distinct ids
            rows = [known[int(i)] for i in uniq]
            pool = ExampleSet(uniq, tuple(r[0] for r in rows), tuple(r[1] for r in rows), tuple(r[2] for r in rows))
            out[found] = -self.self_scores(pool)[np.searchsorted(uniq, ids[found])]
        return out

    def fit_info(self) -> dict[str, Any]:
        """What fit chose and assumed."""
        return {
            "loss_type": self.handle_.loss_type,
            "reference_run": self.handle_.run,
            "checkpoint_steps": list(self.steps_),
            "params": self.config.params,
            "gradient_dim": self.engine_.dim,
            "n_params": self.engine_.n_params,
            "scale": self.scale_,
            "variant_val_mse": self.variant_mse_,
            "fit_seconds": round(self.fit_seconds_, 2),
            "score_tables_cached": f"{self.fit_hits_} of {len(self.steps_)} checkpoints",
            "cached_table_seconds": None if self.cached_unknown_ else round(self.cached_seconds_, 2),
            "notes": self.notes_,
            **({"in_sample_scale": True} if self.config.published else {}),
        }


class TracInCP(GradientSimulator):
    """TracIn-CP: gradient dot products at every checkpoint (Pruthi et al. 2020)."""

    checkpoint_choice = "all"


class GradDot(GradientSimulator):
    """Grad-Dot: gradient dot products at the final checkpoint only."""

    checkpoint_choice = "final"


class DampedSimulator(GradientSimulator):
    """A gradient simulator whose damping is relative to each checkpoint's mean curvature eigenvalue
    (kronfluence, TRAK): the candidates ``grid_[step]`` are scored on the validation runs, the winner
    kept in ``damping_``, and the grid and eigenvalue travel with each cached table."""

    def _init_damping(self) -> None:
        self.grid_: dict[int, list[float]] = {}  # checkpoint step -> absolute candidate dampings
        self.damping_: dict[int, float] = {}  # checkpoint step -> chosen damping
        self.scale_of_: dict[int, float] = {}  # checkpoint step -> mean eigenvalue

    def _chosen(self, variant: int) -> None:
        self.damping_ = {step: grid[variant] for step, grid in self.grid_.items()}

    def _table_state(self, step: int) -> dict[str, Any]:
        return {"grid": self.grid_.get(step), "mean_eigenvalue": self.scale_of_.get(step)}

    def _restore_state(self, step: int, state: dict[str, Any]) -> None:
        if state.get("grid") is not None:
            self.grid_[step] = [float(x) for x in state["grid"]]
        if state.get("mean_eigenvalue") is not None:
            self.scale_of_[step] = float(state["mean_eigenvalue"])
