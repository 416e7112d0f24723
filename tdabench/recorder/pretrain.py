"""Base checkpoints of the built-in sizes: brief pre-training on held-out data of the task family.

Fine-tuning then starts from a model that already knows the prompt formats, as the
published runs started from Pythia. The examples (``pretrain.jsonl`` of every built-in task)
never appear in any training pool or test set. Deterministic: fixed init seed, fixed order.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from tdabench.methods.lm import encode
from tdabench.recorder.models import BASE_DIR, SIZES, TUNED, fresh_model, load_model, n_params
from tdabench.recorder.tasks import FT_TASKS, pretrain_examples
from tdabench.recorder.tokenizer import bank_tokenizer
from tdabench.recorder.train import Schedule, train

if TYPE_CHECKING:
    from transformers import PreTrainedModel


@dataclass(frozen=True)
class PretrainSpec:
    """How a base checkpoint is made: whole-sequence LM loss, AdamW with linear decay.

    600 steps of 16 (about two passes over the 5,000 held-out examples): at 150 steps (bank v1)
    the 1M model sat at chance on sentiment, where every fine-tuning batch's label mix throws
    the mean test loss up and down and the run never learns the task (docs/benchmarks.md).
    """

    steps: int = 600
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
    schedule = Schedule(lr=spec.lr, weight_decay=spec.weight_decay, batch_size=spec.batch_size, epochs=1, sample=spec.steps * spec.batch_size, warmup=0.0)
    torch.manual_seed(spec.seed)
    losses = train(model, enc, rows, schedule)
    _save(model, tok, dest)
    print(f"{size}: {n_params(model)} parameters, pre-training loss {losses[:10].mean():.3f} -> {losses[-10:].mean():.3f}")
    return dest


def tune(name: str, dest: Path | None = None) -> Path:
    """Train the base of ``TUNED[name]`` further on its task's pre-training examples (with the
    task's own loss) and save it as ``bank/models/<name>``."""
    t = TUNED[name]
    dest = dest or BASE_DIR / name
    loaded = load_model(t.size)
    ex = pretrain_examples((t.task,))
    enc = encode(loaded.tokenizer, ex.prompts, ex.targets, FT_TASKS[t.task][0])
    rng = np.random.default_rng(0)
    rows = np.concatenate([rng.permutation(len(ex)) for _ in range(-(-t.steps * t.batch_size // len(ex)))])
    rows = rows[: t.steps * t.batch_size].reshape(t.steps, t.batch_size)
    torch.manual_seed(0)
    losses = train(loaded.model, enc, rows, Schedule(lr=t.lr, batch_size=t.batch_size, epochs=1, sample=t.steps * t.batch_size, warmup=0.0))
    _save(loaded.model, loaded.tokenizer, dest)
    print(f"{name}: {t.size} tuned on {t.task}, loss {losses[:10].mean():.3f} -> {losses[-10:].mean():.3f}")
    return dest


def _save(model: PreTrainedModel, tokenizer: object, dest: Path) -> None:
    """float16 safetensors plus the tokenizer, written beside ``dest`` and renamed into place."""
    tmp = dest.with_name(dest.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    # transformers types ``to`` as a decorated method that wants the model first (it binds it).
    model.to(torch.float16).save_pretrained(str(tmp), safe_serialization=True)  # type: ignore[arg-type]
    tokenizer.save_pretrained(str(tmp))  # type: ignore[attr-defined]
    for f in tmp.iterdir():
        f.chmod(0o644)  # package data: readable by every user, like any checkout file
    shutil.rmtree(dest, ignore_errors=True)
    tmp.rename(dest)


if __name__ == "__main__":  # python -m tdabench.recorder.pretrain regenerates every base checkpoint
    for name in SIZES:
        pretrain(name)
    for name in TUNED:
        tune(name)
