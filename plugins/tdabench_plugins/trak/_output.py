"""TRAK's model output for a causal language model (traker ships none).

TRAK (Park et al. 2023) attributes a model output ``f`` whose loss is ``log(1 + exp(-f))``: for a
classifier, the margin ``log(p / (1 - p))`` of the correct label. Here ``p`` is the model's
probability of the example's target tokens, taken per token as the recording's own loss does:
``p = exp(-loss)``, with ``loss`` the masked mean cross-entropy of :func:`tdabench.token_losses`
(output tokens, last token or whole sequence). So ``f = log(p / (1 - p)) = -loss - log(1 - exp(-loss))``,
a decreasing function of the recorded loss, and the out-to-loss term (TRAK's ``Q``) is ``1 - p``.
A positive TRAK score therefore means training on ``i`` raises ``f(z)``: lowers the loss of ``z``,
tdabench's orientation.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from trak.modelout_functions import AbstractModelOutput

from tdabench import token_losses


class CausalLMMarginOutput(AbstractModelOutput):
    """The margin ``log(p / (1 - p))`` of the target tokens, ``p = exp(-recorded loss)``; batches are
    ``(input_ids, attention_mask, loss_mask)``."""

    def __init__(self) -> None:
        super().__init__()

    @staticmethod
    def get_output(model: torch.nn.Module, weights: dict[str, torch.Tensor], buffers: dict[str, torch.Tensor],
                   input_ids: torch.Tensor, attention_mask: torch.Tensor, loss_mask: torch.Tensor) -> torch.Tensor:
        """One example's margin (traker vmaps this over a batch and differentiates it)."""
        out: Any = torch.func.functional_call(model, (weights, buffers), args=(),
                                              kwargs={"input_ids": input_ids[None], "attention_mask": attention_mask[None], "use_cache": False})
        loss = token_losses(out.logits, input_ids[None], loss_mask[None])[0]
        return margin_of_loss(loss)

    def get_out_to_loss_grad(self, model: torch.nn.Module, weights: dict[str, torch.Tensor], buffers: dict[str, torch.Tensor],
                             batch: Iterable[torch.Tensor]) -> torch.Tensor:
        """TRAK's ``Q = 1 - p`` per example, [n, 1]."""
        input_ids, attention_mask, loss_mask = batch
        out: Any = torch.func.functional_call(model, (weights, buffers), args=(),
                                              kwargs={"input_ids": input_ids, "attention_mask": attention_mask, "use_cache": False})
        p = torch.exp(-token_losses(out.logits, input_ids, loss_mask))
        return (1 - p).clone().detach().unsqueeze(-1)


def margin_of_loss(loss: torch.Tensor) -> torch.Tensor:
    """``log(p / (1 - p))`` with ``p = exp(-loss)``, stable for small losses (``expm1``)."""
    return -loss - torch.log(-torch.expm1(-loss.clamp_min(1e-12)))
