"""TRAK through traker, with the benchmark's checkpoints as TRAK's ensemble, as an additive simulator.

traker featurizes every training example at each checkpoint of the ensemble (the gradient of the
margin of :mod:`._output`, projected by a seeded Gaussian JL map), forms
``Phi_c (Phi_c^T Phi_c + lambda I)^-1`` per checkpoint, and scores a target ``z`` by averaging
``phi_c(z)^T (...)`` over the checkpoints, times the averaged out-to-loss term ``1 - p_i``. That one
table ``S[i, z]`` serves every step of the simulator form of the gradient plugin
(:mod:`tdabench_plugins.gradients._rollout`). traker rescales ``(Phi^T Phi + lambda I)^-1`` to unit
mean absolute entry, so its raw scale says nothing about a loss change: the methods calibrate
(``trak``) or fit their scale on the zero line's residuals (``trak-residual``). Unless ``damping``
is given, lambda is ``r * trace(Phi^T Phi) / d`` (the mean eigenvalue, averaged over the ensemble)
with ``r`` from ``damping_grid`` chosen by rollout MSE on the validation runs; every candidate reuses
the same featurized gradients.
"""

from __future__ import annotations

import contextlib
import io
import logging
import tempfile
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch

from tdabench import Encoded, FitData
from tdabench_plugins.gradients._model import select_steps
from tdabench_plugins.gradients._per_example import selected_names
from tdabench_plugins.gradients._tracin import DampedSimulator
from tdabench_plugins.trak._config import TrakConfig
from tdabench_plugins.trak._output import CausalLMMarginOutput

if TYPE_CHECKING:
    from transformers import PreTrainedModel

EXPERIMENT = "targets"


class TRAK(DampedSimulator):
    """TRAK scores (one table over the ensemble of checkpoints) in the additive simulator form."""

    config: TrakConfig
    table_kind: ClassVar[str] = "trak"

    def _checkpoints(self) -> str:
        return "final"  # one table, served at every step; the ensemble is chosen in _prepare

    def _prepare(self, data: FitData) -> None:
        self.ensemble_: tuple[int, ...] = select_steps(self.handle_.steps, "all", self.config.max_checkpoints)
        self._init_damping()

    def _table_salt(self, step: int, variants: bool) -> dict[str, Any]:
        salt: dict[str, Any] = {"ensemble": [self._digest(s) for s in self.ensemble_]}
        return salt if variants else {**salt, "damping": self.damping_[step]}

    def _digest(self, step: int) -> str:
        return self.digests_[step] if step in self.digests_ else self._weights_digest(step, self.handle_.params_at(step))

    # ----- traker ---------------------------------------------------------------------------
    def _traker(self, save_dir: str, n_train: int) -> Any:
        from trak import TRAKer
        from trak.projectors import BasicProjector, ProjectionType

        model = self._model_copy()
        names = selected_names(model, self.config.params)
        grad_dim = sum(p.numel() for n, p in model.named_parameters() if n in set(names))
        dim = self.config.proj_dim
        # traker's BasicProjector frees its matrix in finalize_features and, with one block, never
        # regenerates it for the next project() call: blocks smaller than the dimension regenerate
        projector = BasicProjector(grad_dim=grad_dim, proj_dim=dim, seed=self.seed_, proj_type=ProjectionType.normal,
                                   device=self.handle_.device, block_size=max(1, min(self.config.projector_block, dim - 1)),
                                   dtype=torch.float32)
        logging.getLogger("TRAK").setLevel(logging.WARNING)
        logging.getLogger("ScoreComputer").setLevel(logging.WARNING)
        return TRAKer(model=model, task=CausalLMMarginOutput(), train_set_size=n_train, save_dir=save_dir, load_from_save_dir=True,
                      device=str(self.handle_.device), projector=projector, use_half_precision=False, logging_level=logging.WARNING,
                      grad_wrt=None if self.config.params == "all" else names, projector_seed=self.seed_, lambda_reg=0.0)

    def _model_copy(self) -> PreTrainedModel:
        import copy

        model = copy.deepcopy(self.handle_.model)
        for p in model.parameters():
            p.requires_grad_(True)  # traker's functional gradients differentiate the module's own parameters
        return model

    def _state(self, model: torch.nn.Module, step: int) -> dict[str, torch.Tensor]:
        """The full state dict at ``step`` (traker loads it strictly): checkpoint parameters, base buffers."""
        state = dict(model.state_dict())
        state.update(self.handle_.params_at(step))
        return state

    def _rows(self, n: int) -> int:
        """Examples per traker call: its per-example gradients of every parameter must fit the budget."""
        per_example = 12 * sum(p.numel() for p in self.handle_.model.parameters())
        return int(max(1, min(n, (self.config.memory_mb * 2**20) // max(per_example, 1))))

    @staticmethod
    def _batches(enc: Encoded, rows: int) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        out = []
        for lo in range(0, len(enc), rows):
            part = enc.rows(np.arange(lo, min(len(enc), lo + rows)))
            out.append((part.input_ids, part.attention_mask, part.loss_mask))
        return out

    def _trak_scores(self, test: Encoded, train: Encoded, dampings: list[float] | None) -> tuple[np.ndarray, float]:
        """[V, n_train, n_test] TRAK scores for each damping (None: the grid), and the mean eigenvalue."""
        quiet = io.StringIO()
        with tempfile.TemporaryDirectory(prefix="tdabench-trak-") as save_dir, contextlib.redirect_stderr(quiet):
            traker = self._traker(save_dir, len(train))
            rows = self._rows(max(len(train), len(test)))
            states = {mid: self._state(traker.model, step) for mid, step in enumerate(self.ensemble_)}
            for mid, state in states.items():
                traker.load_checkpoint(state, model_id=mid)
                for batch in self._batches(train, rows):
                    traker.featurize(batch=batch, num_samples=batch[0].shape[0])
            eig = []
            for mid in states:
                traker.saver.load_current_store(mid)
                g = np.asarray(traker.saver.current_store["grads"], dtype=np.float64)
                eig.append(float((g * g).sum()) / g.shape[1])
            mean_eig = float(np.mean(eig)) if eig and np.mean(eig) > 0 else 1.0
            lams = dampings if dampings is not None else (
                [self.config.damping] if self.config.damping > 0 else [r * mean_eig for r in self.config.damping_grid])
            out = []
            for v, lam in enumerate(lams):
                traker.score_computer.lambda_reg = float(lam)
                for mid in states:
                    traker.saver.model_ids[mid]["is_finalized"] = 0  # features again, at this damping
                if v > 0:  # finalize_features frees the projector's matrix and cannot free it twice: make it again
                    traker.projector.generate_sketch_matrix(traker.projector.generator_states[0])
                traker.finalize_features()
                if v == 0:
                    for mid, state in states.items():
                        traker.start_scoring_checkpoint(EXPERIMENT, state, model_id=mid, num_targets=len(test))
                        for batch in self._batches(test, rows):
                            traker.score(batch=batch, num_samples=batch[0].shape[0])
                out.append(np.array(traker.finalize_scores(EXPERIMENT), dtype=np.float64))
            return np.stack(out), mean_eig

    def _checkpoint_table(self, params: dict[str, torch.Tensor], step: int, test: Encoded, train: Encoded, *, variants: bool) -> np.ndarray:
        if variants:
            scores, mean_eig = self._trak_scores(test, train, None)
            self.scale_of_[step] = mean_eig
            self.grid_[step] = [self.config.damping] if self.config.damping > 0 else [r * mean_eig for r in self.config.damping_grid]
        else:
            scores, _ = self._trak_scores(test, train, [self.damping_[step]])
        return scores.transpose(0, 2, 1)  # [V, n_test, n_train]

    def _self_table(self, params: dict[str, torch.Tensor], step: int, enc: Encoded) -> np.ndarray:
        """TRAK's self-influence: each example scored as a target against a training set of these examples."""
        scores, _ = self._trak_scores(enc, enc, [self.damping_[step]])
        return np.diagonal(scores[0]).copy()

    def fit_info(self) -> dict[str, Any]:
        """The gradient methods' fit info plus TRAK's ensemble, projection and dampings."""
        from importlib.metadata import version

        info = super().fit_info()
        info.update(
            library=f"traker {version('traker')}",
            ensemble_steps=list(self.ensemble_),
            proj_dim=self.config.proj_dim,
            model_output="margin log(p/(1-p)), p = exp(-loss)",
            mean_eigenvalue={str(k): v for k, v in self.scale_of_.items()},
            damping_candidates={str(k): v for k, v in self.grid_.items()},
            damping={str(k): v for k, v in self.damping_.items()},
        )
        return info
