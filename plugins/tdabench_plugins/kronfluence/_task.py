"""What kronfluence needs to know about the benchmark's causal language model.

kronfluence asks for a :class:`kronfluence.task.Task`: the training loss (summed over a batch, and
with labels sampled from the model for the true Fisher), the measurement whose influence is
scored, the attention mask of padded sequences and the modules it tracks. Here the loss and the
measurement are both the recording's own per-example loss (:func:`tdabench.token_losses`: masked
mean cross-entropy over the loss type's tokens), so a pairwise score is
``grad loss(z)^T (G + lambda I)^-1 grad loss(i)``: positive when training on ``i`` lowers the
loss of ``z``, tdabench's orientation.
"""

from __future__ import annotations

from typing import Any

import torch
from kronfluence.task import Task

from tdabench import Encoded, token_losses

Batch = dict[str, torch.Tensor]


class EncodedDataset(torch.utils.data.Dataset[Batch]):
    """Rows of an :class:`~tdabench.Encoded` batch as kronfluence's dataset (the default collate stacks them)."""

    def __init__(self, enc: Encoded) -> None:
        self.enc = enc

    def __len__(self) -> int:
        return len(self.enc)

    def __getitem__(self, i: int) -> Batch:
        return {"input_ids": self.enc.input_ids[i], "attention_mask": self.enc.attention_mask[i], "loss_mask": self.enc.loss_mask[i]}


class CausalLMTask(Task):
    """The recorded per-example loss as kronfluence's training loss and measurement.

    Args:
        modules: names of the modules kronfluence tracks (None: every ``nn.Linear``).
    """

    def __init__(self, modules: list[str] | None) -> None:
        self.modules = modules

    @staticmethod
    def _logits(batch: Batch, model: torch.nn.Module) -> torch.Tensor:
        out: Any = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], use_cache=False)
        return out.logits

    def compute_train_loss(self, batch: Batch, model: torch.nn.Module, sample: bool = False) -> torch.Tensor:
        """Summed per-example losses; with ``sample``, of tokens drawn from the model's own predictions
        at the loss positions (the true Fisher, kronfluence's default)."""
        logits = self._logits(batch, model)
        ids = batch["input_ids"]
        if sample:
            with torch.no_grad():
                probs = torch.softmax(logits[:, :-1].detach().float(), dim=-1)
                drawn = torch.multinomial(probs.reshape(-1, probs.shape[-1]), 1).reshape(probs.shape[:-1])
            ids = torch.cat([ids[:, :1], torch.where(batch["loss_mask"] > 0, drawn, ids[:, 1:])], dim=1)
        return token_losses(logits, ids, batch["loss_mask"]).sum()

    def compute_measurement(self, batch: Batch, model: torch.nn.Module) -> torch.Tensor:
        """Summed per-example losses of the test examples (their per-example gradients are the measurement's)."""
        return token_losses(self._logits(batch, model), batch["input_ids"], batch["loss_mask"]).sum()

    def get_influence_tracked_modules(self) -> list[str] | None:
        """The modules of the parameter set (None: every linear layer)."""
        return self.modules

    def get_attention_mask(self, batch: Batch) -> torch.Tensor:
        """Padded positions are left out of the activation covariances."""
        return batch["attention_mask"]
