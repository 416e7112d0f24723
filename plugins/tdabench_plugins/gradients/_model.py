"""The adapter between a benchmark's :class:`~tdabench.data.ModelAccess` and the gradient methods.

This is the only module that knows how the recorder stores a model: ``base_model`` is a
directory :func:`tdabench.recorder.models.load_model` opens (weights plus tokenizer), and each
checkpoint is a safetensors file (or a directory holding ``model.safetensors``) with the
model's ``state_dict`` after that step. The base model counts as the checkpoint of step 0
when the reference run has none there. If that layout changes, only this module changes.
"""

from __future__ import annotations

from collections.abc import Sequence
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from tdabench import Encoded, ExampleSet, LOSS_TYPES, ModelAccess, TDABenchError, encode

if TYPE_CHECKING:
    from transformers import PreTrainedModel

#: Loss type assumed when neither the model access nor the metadata names one: GPTDynamics'
#: default ("whole sequence otherwise").
FALLBACK_LOSS_TYPE = "whole-sequence"


@dataclass
class ModelHandle:
    """A loaded model with its tokenizer and the checkpoints of one reference run.

    Attributes:
        model: the model, float32, in eval mode, parameters frozen, on ``device``.
        tokenizer: its tokenizer (with a pad token).
        loss_type: one of :data:`tdabench.methods.lm.LOSS_TYPES`.
        run: the reference run whose checkpoints are used ("" when only the base model exists).
        files: checkpoint step -> safetensors file; ``None`` stands for the base weights.
        device: where the model and every gradient live.
        notes: what was assumed while opening (for ``fit_info``).
    """

    model: PreTrainedModel
    tokenizer: object
    loss_type: str
    run: str
    files: dict[int, Path | None]
    device: torch.device
    notes: list[str] = field(default_factory=list)

    @property
    def steps(self) -> tuple[int, ...]:
        """Checkpoint steps, ascending (0 is the base model)."""
        return tuple(sorted(self.files))

    def params_at(self, step: int) -> dict[str, torch.Tensor]:
        """Every parameter of the model at checkpoint ``step``, detached, on ``device``."""
        base = {k: v.detach() for k, v in self.model.named_parameters()}
        path = self.files[step]
        if path is None:
            return base
        from safetensors.torch import load_file

        file = path / "model.safetensors" if path.is_dir() else path
        if not file.is_file():
            raise TDABenchError(f"checkpoint of step {step} of run {self.run!r} is missing: {file}")
        state = renamed(self.model, load_file(str(file), device="cpu"))
        missing = [k for k in base if k not in state]
        if missing:
            raise TDABenchError(f"{file}: the checkpoint lacks {len(missing)} of the model's parameters, e.g. {missing[:3]}")
        out = {}
        for k in base:
            v = state[k]
            if v.shape != base[k].shape:
                raise TDABenchError(f"{file}: {k} has shape {tuple(v.shape)}, the model {tuple(base[k].shape)}")
            out[k] = v.to(device=self.device, dtype=torch.float32)
        return out


def renamed(model: PreTrainedModel, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``state`` with keys in the model's naming: files written by ``save_pretrained`` may use
    legacy names (GPT-NeoX: ``embed_out.*`` for ``lm_head.*``); transformers' own renaming
    rules map them."""
    names = {n for n, _ in model.named_parameters()}
    if all(k in state for k in names):
        return state
    try:
        from transformers.conversion_mapping import WeightRenaming, get_model_conversion_mapping

        rules = [r for r in get_model_conversion_mapping(model) if isinstance(r, WeightRenaming)]
    except (ImportError, TypeError, AttributeError):  # other transformers versions: names as stored
        return state
    out = {}
    for key, value in state.items():
        new = key
        for rule in rules:
            for src, dst in zip(rule.source_patterns, rule.target_patterns):
                if new not in names:
                    new = re.sub(src, dst, new)
        out[new if new in names else key] = value
    return out


def resolve_loss_type(access: ModelAccess, meta_loss_type: str) -> tuple[str, str | None]:
    """(loss type, note): the access's, else the metadata's, else :data:`FALLBACK_LOSS_TYPE`."""
    for candidate in (access.loss_type, meta_loss_type):
        if candidate in LOSS_TYPES:
            return candidate, None
    return FALLBACK_LOSS_TYPE, f"loss type unknown; assumed {FALLBACK_LOSS_TYPE!r}"


def reference_run(access: ModelAccess, preferred: Sequence[str], override: str = "") -> str:
    """The run whose checkpoints are used: ``override``, else the first ``preferred`` run with
    checkpoints, else the first run (by name) with checkpoints, else "" (base model only)."""
    if override:
        if override not in access.checkpoints:
            have = ", ".join(sorted(access.checkpoints)) or "none"
            raise TDABenchError(f"checkpoint_run {override!r} has no checkpoints (runs with checkpoints: {have})")
        return override
    for name in preferred:
        if access.checkpoints.get(name):
            return name
    with_ckpt = sorted(n for n, steps in access.checkpoints.items() if steps)
    return with_ckpt[0] if with_ckpt else ""


def open_model(
    access: ModelAccess | None,
    *,
    meta_loss_type: str,
    preferred_runs: Sequence[str],
    run_override: str = "",
    device: str = "cpu",
) -> ModelHandle:
    """Load the base model and list the reference run's checkpoints."""
    from tdabench.recorder.models import load_model

    if access is None or access.base_model is None:
        raise TDABenchError("gradient methods need the benchmark's base model (ModelAccess.base_model)")
    loaded = load_model(str(access.base_model), device=device)
    model = loaded.model.float().eval()
    for p in model.parameters():
        p.requires_grad_(False)
    loss_type, note = resolve_loss_type(access, meta_loss_type)
    run = reference_run(access, preferred_runs, run_override)
    files: dict[int, Path | None] = {0: None}
    if run:
        files.update({int(s): Path(p) for s, p in access.checkpoints[run].items()})
    notes = [note] if note else []
    if not run:
        notes.append("no checkpoints: every step uses the base model")
    return ModelHandle(model, loaded.tokenizer, loss_type, run, files, torch.device(device), notes)


def example_targets(examples: ExampleSet) -> tuple[str, ...]:
    """Each example's target; derived from text minus prompt where a source left it empty."""
    return tuple(
        t if t else (x[len(p) :] if x.startswith(p) else x)
        for p, t, x in zip(examples.prompts, examples.targets, examples.texts)
    )


def encode_examples(handle: ModelHandle, examples: ExampleSet, max_length: int) -> Encoded:
    """Tokenize ``examples`` with the recording's loss masking (see :mod:`tdabench.methods.lm`)."""
    if len(examples) and not examples.has_text:
        raise TDABenchError("gradient methods need example texts; this benchmark ships ids only")
    return encode(handle.tokenizer, examples.prompts, example_targets(examples), handle.loss_type, max_length)  # type: ignore[arg-type]


def select_steps(steps: Sequence[int], which: str, max_checkpoints: int) -> tuple[int, ...]:
    """Checkpoint steps used: all or the final one, evenly thinned to ``max_checkpoints`` (> 0),
    always keeping the first and the last."""
    steps = sorted(steps)
    if which == "final":
        return (steps[-1],)
    if max_checkpoints <= 0 or len(steps) <= max_checkpoints:
        return tuple(steps)
    keep = np.unique(np.round(np.linspace(0, len(steps) - 1, max_checkpoints)).astype(int))
    return tuple(steps[i] for i in keep)


def step_checkpoint_index(ckpt_steps: Sequence[int], n_steps: int) -> np.ndarray:
    """int [T]: for each optimizer step t = 1..T, the index of the latest checkpoint at or
    before step t - 1: the weights the update of step t was taken at, as the published
    TracIn-CP uses the run's checkpoint t - 1 (the earliest checkpoint where none is that old)."""
    ck = np.asarray(sorted(ckpt_steps), dtype=np.int64)
    idx = np.searchsorted(ck, np.arange(0, n_steps), side="right") - 1
    return np.maximum(idx, 0)


def lr_at(lr: np.ndarray, steps: Sequence[int]) -> np.ndarray:
    """Mean recorded learning rate over runs at each checkpoint step (step 0 reads step 1)."""
    if lr.size == 0:
        return np.ones(len(steps))
    cols = np.clip(np.asarray(steps, dtype=np.int64) - 1, 0, lr.shape[1] - 1)
    with np.errstate(all="ignore"):
        out = np.nanmean(lr[:, cols], axis=0) if np.isfinite(lr[:, cols]).any() else np.ones(len(steps))
    return np.where(np.isfinite(out), out, 1.0)
