"""Per-example losses of a causal LM, with the token masking of each loss type.

The same masking serves the recorder (training and test losses) and gradient-based methods
(per-example gradients with ``torch.func``): :func:`token_losses` has no data-dependent
shapes, so it can run under ``vmap``.

Loss types (GPTDynamics' three):

* ``output-tokens``: mean cross-entropy over the target's tokens and the closing EOS;
* ``last-token``: cross-entropy of the target's last token (the label word);
* ``whole-sequence``: mean cross-entropy over every token after the first.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

LOSS_TYPES: tuple[str, ...] = ("output-tokens", "last-token", "whole-sequence")


@dataclass(frozen=True)
class Encoded:
    """A right-padded batch of examples.

    Attributes:
        input_ids: int64 [n, L], prompt + target + EOS, padded with the pad id.
        attention_mask: int64 [n, L].
        loss_mask: float32 [n, L - 1]; entry ``j`` weights the prediction of token ``j + 1``.
    """

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    loss_mask: torch.Tensor

    def __len__(self) -> int:
        return int(self.input_ids.shape[0])

    def rows(self, index: torch.Tensor | np.ndarray | Sequence[int]) -> Encoded:
        """The examples at these rows, trimmed to their longest sequence."""
        idx = torch.as_tensor(np.asarray(index), dtype=torch.long)
        am = self.attention_mask[idx]
        width = int(am.sum(1).max()) if len(idx) else 1
        return Encoded(self.input_ids[idx, :width], am[:, :width], self.loss_mask[idx, : max(width - 1, 1)])

    def to(self, device: str | torch.device) -> Encoded:
        """The batch on ``device``."""
        return Encoded(self.input_ids.to(device), self.attention_mask.to(device), self.loss_mask.to(device))


def check_loss_type(loss_type: str) -> str:
    """``loss_type`` if known, else a ValueError naming the allowed values."""
    if loss_type not in LOSS_TYPES:
        raise ValueError(f"loss_type must be one of {', '.join(LOSS_TYPES)}, got {loss_type!r}")
    return loss_type


def encode(
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[str],
    targets: Sequence[str],
    loss_type: str,
    max_length: int = 256,
) -> Encoded:
    """Tokenize ``prompt`` and ``target`` separately (so the boundary is exact) and add EOS.

    A sequence longer than ``max_length`` loses tokens from the start of its prompt.
    """
    check_loss_type(loss_type)
    p_ids = tokenizer(list(prompts), add_special_tokens=False)["input_ids"]
    t_ids = tokenizer(list(targets), add_special_tokens=False)["input_ids"] if len(targets) else []
    eos = tokenizer.eos_token_id
    seqs, spans = [], []
    for p, t in zip(p_ids, t_ids):
        tail = list(t) + ([eos] if eos is not None else [])
        keep = max(max_length - len(tail), 1)
        p = list(p)[-keep:]
        seqs.append((p + tail)[:max_length])
        spans.append((len(p), len(p) + len(t)))  # target tokens occupy [start, end)
    n = len(seqs)
    width = max((len(s) for s in seqs), default=1)
    ids = torch.full((n, width), int(tokenizer.pad_token_id), dtype=torch.long)
    am = torch.zeros((n, width), dtype=torch.long)
    mask = torch.zeros((n, max(width - 1, 1)), dtype=torch.float32)
    for i, (s, (start, end)) in enumerate(zip(seqs, spans)):
        ids[i, : len(s)] = torch.tensor(s)
        am[i, : len(s)] = 1
        # mask[j] weights the prediction of token j + 1
        if loss_type == "output-tokens":
            mask[i, max(start, 1) - 1 : len(s) - 1] = 1.0
        elif loss_type == "last-token":
            last = end - 1 if end > start else len(s) - 1
            mask[i, max(last, 1) - 1] = 1.0
        else:
            mask[i, : len(s) - 1] = 1.0
    return Encoded(ids, am, mask)


def token_losses(logits: torch.Tensor, input_ids: torch.Tensor, loss_mask: torch.Tensor) -> torch.Tensor:
    """Per-example masked mean cross-entropy, in float32; works batched or under ``vmap``.

    ``logits`` [..., L, V], ``input_ids`` [..., L], ``loss_mask`` [..., L - 1].
    """
    logp = torch.log_softmax(logits[..., :-1, :].float(), dim=-1)
    nll = -torch.gather(logp, -1, input_ids[..., 1:].unsqueeze(-1)).squeeze(-1)
    return (nll * loss_mask).sum(-1) / loss_mask.sum(-1).clamp_min(1.0)


def per_example_loss(model: PreTrainedModel, batch: Encoded) -> torch.Tensor:
    """Differentiable float32 [n] losses of ``batch`` under ``model``."""
    out = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask, use_cache=False)
    return token_losses(out.logits, batch.input_ids, batch.loss_mask)


def evaluate(model: PreTrainedModel, batch: Encoded, *, bf16: bool = True, chunk: int = 256) -> np.ndarray:
    """float64 [n] losses, batched in chunks of ``chunk`` examples, without gradients.

    With ``bf16`` the transformer body runs under bfloat16 autocast (CPU or CUDA), while the
    output head and the cross-entropy run in float32 at the masked positions only: rounding
    the logits to bfloat16 would cost ~1e-2 in loss, this keeps the error below 1e-3
    (checked in ``tests/test_recorder.py``).
    """
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    body, head = model.base_model, model.get_output_embeddings()
    outs = []
    with torch.inference_mode():
        for lo in range(0, len(batch), chunk):
            part = batch.rows(torch.arange(lo, min(lo + chunk, len(batch)))).to(device)
            with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=bf16):
                hidden = body(input_ids=part.input_ids, attention_mask=part.attention_mask, use_cache=False).last_hidden_state
            sel = part.loss_mask > 0  # [n, L-1]: positions whose next token counts
            logits = head(hidden[:, :-1][sel].float())
            nll = torch.nn.functional.cross_entropy(logits, part.input_ids[:, 1:][sel], reduction="none")
            w = part.loss_mask[sel]
            rows = sel.nonzero()[:, 0]
            total = torch.zeros(len(part), dtype=torch.float64).index_add_(0, rows, (nll * w).double())
            outs.append(total / part.loss_mask.sum(1).double().clamp_min(1.0))
    model.train(was_training)
    return torch.cat(outs).cpu().numpy() if outs else np.zeros(0)
