"""EK-FAC, KFAC and diagonal influence through kronfluence, as additive training-run simulators.

The simulator form, checkpoints, learning rates, calibration, guard, score-table cache and
self-influence are the gradient plugin's (:class:`~tdabench_plugins.gradients._tracin.GradientSimulator`);
only the table of a checkpoint comes from kronfluence: at checkpoint ``c``,
``S[c, i, z] = grad loss(z)^T (G_c + lambda I)^-1 grad loss(i)``, with ``G_c`` kronfluence's
approximation (``strategy``) of the Fisher of the recorded loss over the fit runs' training
examples. Unless ``damping`` is given, lambda is ``r * m_c`` with ``r`` from ``damping_grid``
chosen by rollout MSE on the validation runs, where ``m_c`` is the mean eigenvalue of the fitted
curvature over the tracked modules (kronfluence's own heuristic is ``r = 0.1`` per module).

kronfluence fits its factors into a folder (``<cache_dir>/kronfluence/factors/<key>``, keyed by
the weights, the curvature examples and the options, so forms of a method share them; a temporary
folder without a cache dir) and writes each score table there under a private name, read back
and removed at once.
"""

from __future__ import annotations

import contextlib
import copy
import gc
import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from tdabench import Encoded, FitData, TDABenchError
from tdabench_plugins.gradients._model import encode_examples
from tdabench_plugins.gradients._tracin import DampedSimulator
from tdabench_plugins.kronfluence._config import KronfluenceConfig
from tdabench_plugins.kronfluence._task import CausalLMTask, EncodedDataset

#: kronfluence's strategies served here ("identity" is plain gradient dot products: the cross-check).
STRATEGIES: tuple[str, ...] = ("ekfac", "kfac", "diagonal", "identity")
FACTORS = "factors"


@contextlib.contextmanager
def frozen_heap() -> Iterator[None]:
    """kronfluence calls ``gc.collect()`` around every pass (``release_memory``); with torch and
    transformers loaded each takes ~1 s, most of a small fit. Objects older than the call are moved
    to the permanent generation for its duration (``gc.freeze``), so a collection scans only what
    kronfluence made."""
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def tracked_modules(model: torch.nn.Module, params: str) -> list[str] | None:
    """Module names kronfluence tracks for a parameter set (None: every linear layer)."""
    if params == "linear":
        return None
    if params == "last-layer":
        get_head: Any = getattr(model, "get_output_embeddings", None)
        head = get_head() if callable(get_head) else None
        if not isinstance(head, torch.nn.Linear):
            raise TDABenchError("params=last-layer: kronfluence needs the output layer to be an nn.Linear")
        return [name for name, m in model.named_modules() if m is head]
    raise TDABenchError(f"kronfluence tracks nn.Linear modules only: params={params!r} cannot be served; use params=linear or last-layer")


FIT_SECONDS = "tdabench_fit_seconds.json"


def _fit_seconds(folder: Path) -> float | None:
    """What fitting the factors in ``folder`` cost (None for folders written before it was recorded)."""
    try:
        return float(json.loads((folder / FIT_SECONDS).read_text()))
    except (OSError, ValueError, TypeError):
        return None


def mean_eigenvalue(factors: dict[str, dict[str, torch.Tensor]], strategy: str) -> float:
    """The mean eigenvalue of the fitted curvature over the tracked modules (the damping scale)."""
    means: list[float] = []
    if strategy in ("ekfac", "diagonal"):
        for name, lam in factors["lambda_matrix"].items():
            count = factors["num_lambda_processed"][name].double()
            means.append(float((lam.double() / count).mean()))
    elif strategy == "kfac":
        for name, act in factors["activation_eigenvalues"].items():
            means.append(float(act.double().mean() * factors["gradient_eigenvalues"][name].double().mean()))
    means = [m for m in means if np.isfinite(m) and m > 0]
    return float(np.mean(means)) if means else 1.0


class KronfluenceInfluence(DampedSimulator):
    """Influence functions with kronfluence's curvature (``strategy``) at the final or every checkpoint.

    Args:
        strategy: one of :data:`STRATEGIES`.
        config: a :class:`KronfluenceConfig`.
    """

    config: KronfluenceConfig
    table_kind: ClassVar[str] = "kronfluence"

    def __init__(self, strategy: str, config: KronfluenceConfig) -> None:
        if strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {', '.join(STRATEGIES)}, got {strategy!r}")
        self.strategy = strategy
        super().__init__(config)

    def _checkpoints(self) -> str:
        return self.config.checkpoints

    # ----- fit-time setup -----------------------------------------------------------------
    def _prepare(self, data: FitData) -> None:
        cfg = self.config
        n_h = cfg.hessian_examples or len(data.train)
        rng = np.random.default_rng(data.seed)
        ids = np.sort(rng.choice(data.train.ids, size=min(n_h, len(data.train)), replace=False))
        self.h_enc_: Encoded = encode_examples(self.handle_, data.train.subset(ids), cfg.max_length)
        self.h_ids_digest_ = hashlib.sha256(np.ascontiguousarray(ids, dtype=np.int64).tobytes()).hexdigest()
        self.factors_counted_: set[Path] = set()  # factor folders whose cost this fit already holds
        self.modules_ = tracked_modules(self.handle_.model, cfg.params)
        self.cache_root_ = Path(data.cache_dir) / "kronfluence" / "factors" if data.cache_dir else None
        self._init_damping()

    def _table_salt(self, step: int, variants: bool) -> dict[str, Any]:
        salt: dict[str, Any] = {"strategy": self.strategy, "curvature_examples": self.h_ids_digest_}
        return salt if variants else {**salt, "damping": self.damping_[step]}

    # ----- kronfluence --------------------------------------------------------------------
    def _analyzer(self, params: dict[str, torch.Tensor], step: int) -> Any:
        """kronfluence's Analyzer on a copy of the model at ``step`` (kronfluence wraps its modules in
        place, so the handle's model, which the gradient engine differentiates by name, stays as is),
        with its factors fitted (or found) in this checkpoint's factor folder."""
        from kronfluence.analyzer import Analyzer, prepare_model
        from kronfluence.arguments import FactorArguments
        from kronfluence.utils.dataset import DataLoaderKwargs

        model = copy.deepcopy(self.handle_.model)
        model.load_state_dict(params, strict=False)
        task = CausalLMTask(self.modules_)
        model = prepare_model(model, task)
        folder = self._factor_folder(step, params)
        logging.getLogger("kronfluence").setLevel(logging.WARNING)
        cpu = self.handle_.device.type == "cpu"
        if (folder / "tdabench" / f"factors_{FACTORS}" / "factor_arguments.json").is_file():
            if folder not in self.factors_counted_:  # fitted by another cell: its cost stays ours
                seconds = _fit_seconds(folder)
                self.cached_seconds_ += seconds or 0.0
                self.cached_unknown_ |= seconds is None
        else:
            t_fit = time.perf_counter()
            # fitted into a private folder and renamed into place: concurrent fits never see half a folder
            folder.parent.mkdir(parents=True, exist_ok=True)
            tmp = folder.parent / f".{folder.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}"
            work = Analyzer(analysis_name="tdabench", model=model, task=task, cpu=cpu, disable_tqdm=True, output_dir=str(tmp),
                            log_level=logging.WARNING)
            work.set_dataloader_kwargs(DataLoaderKwargs(num_workers=0))
            torch.manual_seed(self.seed_ + step)  # the sampled labels of the true Fisher
            work.fit_all_factors(FACTORS, dataset=EncodedDataset(self.h_enc_), per_device_batch_size=self.config.batch_size,
                                 factor_args=FactorArguments(strategy=self.strategy, use_empirical_fisher=self.config.empirical_fisher),
                                 overwrite_output_dir=True)
            (tmp / FIT_SECONDS).write_text(json.dumps(time.perf_counter() - t_fit))
            try:
                os.replace(tmp, folder)
            except OSError:  # another process put the same factors in place first
                shutil.rmtree(tmp, ignore_errors=True)
        analyzer = Analyzer(analysis_name="tdabench", model=model, task=task, cpu=cpu, disable_tqdm=True, output_dir=str(folder),
                            log_level=logging.WARNING)
        analyzer.set_dataloader_kwargs(DataLoaderKwargs(num_workers=0))
        self.factors_counted_.add(folder)
        if self.strategy != "identity" and step not in self.scale_of_:
            self.scale_of_[step] = mean_eigenvalue(analyzer.load_all_factors(FACTORS), self.strategy)
        return analyzer

    def _factor_folder(self, step: int, params: dict[str, torch.Tensor]) -> Path:
        """Where the factors of ``step`` live: keyed by everything they depend on."""
        key = hashlib.sha256(json.dumps({
            "weights": self._weights_digest(step, params), "strategy": self.strategy,
            "curvature_examples": self.h_ids_digest_, "params": self.config.params, "fisher": self.config.empirical_fisher,
            "max_length": self.config.max_length, "loss_type": self.handle_.loss_type, "seed": self.seed_,
            "device": self.handle_.device.type, "kronfluence": _kronfluence_version(),
        }, sort_keys=True).encode()).hexdigest()[:32]
        if self.cache_root_ is None:
            scratch: str | None = getattr(self, "scratch_", None)
            if scratch is None or not Path(scratch).is_dir():  # none yet, or made by another process (unpickled)
                scratch = tempfile.mkdtemp(prefix="tdabench-kronfluence-")
                self.scratch_ = scratch
            return Path(scratch) / key
        return self.cache_root_ / key

    def _dampings(self, step: int, variants: bool) -> list[float | None]:
        if self.strategy == "identity":
            return [None]
        if not variants:
            return [self.damping_[step]]
        grid = [self.config.damping] if self.config.damping > 0 else [r * self.scale_of_[step] for r in self.config.damping_grid]
        self.grid_[step] = grid
        return list(grid)

    def _scores(self, analyzer: Any, damping: float | None, test: Encoded | None, train: Encoded) -> np.ndarray:
        """kronfluence's pairwise [n_test, n_train] (or, without ``test``, self [n_train]) scores at one damping."""
        from kronfluence.arguments import ScoreArguments

        name = f"tdabench_{os.getpid()}_{uuid.uuid4().hex[:8]}"
        args = ScoreArguments(damping_factor=damping)
        bs = self.config.batch_size
        try:
            if test is None:
                analyzer.compute_self_scores(name, FACTORS, train_dataset=EncodedDataset(train), per_device_train_batch_size=bs,
                                             score_args=args, overwrite_output_dir=True)
                scores = analyzer.load_self_scores(name)["all_modules"]
            else:
                analyzer.compute_pairwise_scores(name, FACTORS, query_dataset=EncodedDataset(test), train_dataset=EncodedDataset(train),
                                                 per_device_query_batch_size=bs, per_device_train_batch_size=bs, score_args=args,
                                                 overwrite_output_dir=True)
                scores = analyzer.load_pairwise_scores(name)["all_modules"]
        finally:
            shutil.rmtree(Path(analyzer.output_dir) / "tdabench" / f"scores_{name}", ignore_errors=True)
        return scores.double().cpu().numpy()

    def _checkpoint_table(self, params: dict[str, torch.Tensor], step: int, test: Encoded, train: Encoded, *, variants: bool) -> np.ndarray:
        with frozen_heap():
            analyzer = self._analyzer(params, step)
            return np.stack([self._scores(analyzer, lam, test, train) for lam in self._dampings(step, variants)])

    def _self_table(self, params: dict[str, torch.Tensor], step: int, enc: Encoded) -> np.ndarray:
        with frozen_heap():
            analyzer = self._analyzer(params, step)
            lam = None if self.strategy == "identity" else self.damping_[step]
            return self._scores(analyzer, lam, None, enc)

    def fit_info(self) -> dict[str, Any]:
        """The gradient methods' fit info plus kronfluence's strategy, the dampings and the curvature examples."""
        info = super().fit_info()
        info.update(
            library=f"kronfluence {_kronfluence_version()}",
            strategy=self.strategy,
            tracked_modules="every nn.Linear" if self.modules_ is None else self.modules_,
            fisher="empirical" if self.config.empirical_fisher else "true (sampled labels)",
            curvature_examples=len(self.h_enc_),
            mean_eigenvalue={str(k): v for k, v in self.scale_of_.items()},
            damping_candidates={str(k): v for k, v in self.grid_.items()},
            damping={str(k): v for k, v in self.damping_.items()},
        )
        return info


def _kronfluence_version() -> str:
    from importlib.metadata import version

    return version("kronfluence")
