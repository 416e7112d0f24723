"""Base checkpoints of the built-in sizes: brief pre-training on held-out data of the task family.

Fine-tuning then starts from a model that already knows the prompt formats, as the
published runs started from Pythia. The examples (``pretrain.jsonl`` of every built-in task)
never appear in any training pool or test set. Deterministic: fixed init seed, fixed order.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from tdabench.recorder.lm import encode
from tdabench.recorder.models import BASE_DIR, SIZES, fresh_model, n_params
from tdabench.recorder.tasks import pretrain_examples
from tdabench.recorder.tokenizer import bank_tokenizer
from tdabench.recorder.train import Schedule, train


@dataclass(frozen=True)
class PretrainSpec:
    """How a base checkpoint is made: whole-sequence LM loss, AdamW with linear decay."""

    steps: int = 150
    batch_size: int = 16
    lr: float = 2e-3
    weight_decay: float = 0.01
    seed: int = 0


def pretrain(size: str, spec: PretrainSpec = PretrainSpec(), dest: Path | None = None) -> Path:
    """Pre-train ``size`` and save it (float16 safetensors + tokenizer) to ``dest``."""
    dest = dest or BASE_DIR / size
    tok = bank_tokenizer()
    model = fresh_model(size, len(tok), spec.seed)
    ex = pretrain_examples()
    enc = encode(tok, ex.prompts, ex.targets, "whole-sequence")
    rng = np.random.default_rng(spec.seed)
    rows = np.concatenate([rng.permutation(len(ex)) for _ in range(-(-spec.steps * spec.batch_size // len(ex)))])
    rows = rows[: spec.steps * spec.batch_size].reshape(spec.steps, spec.batch_size)
    schedule = Schedule(lr=spec.lr, weight_decay=spec.weight_decay, batch_size=spec.batch_size, epochs=1, sample=spec.steps * spec.batch_size)
    torch.manual_seed(spec.seed)
    losses = train(model, enc, rows, schedule)
    tmp = dest.with_name(dest.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    model.to(torch.float16).save_pretrained(str(tmp), safe_serialization=True)
    tok.save_pretrained(str(tmp))
    shutil.rmtree(dest, ignore_errors=True)
    tmp.rename(dest)
    print(f"{size}: {n_params(model)} parameters, pre-training loss {losses[:10].mean():.3f} -> {losses[-10:].mean():.3f}")
    return dest


if __name__ == "__main__":  # python -m tdabench.recorder.pretrain regenerates every base checkpoint
    for name in SIZES:
        pretrain(name)
