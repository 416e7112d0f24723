"""Per-example gradients of the recorded loss with ``torch.func`` (``vmap`` of ``grad``).

Each example's loss is the masked mean cross-entropy of :func:`tdabench.methods.lm.token_losses`,
the recording's own masking (output tokens, last token or whole sequence). Gradients are
taken with respect to a chosen parameter set (all parameters, or the output layer: the
published TracIn-CP baseline) and written, flattened or projected, into a preallocated
buffer. Examples are processed in chunks sorted by length (less padding), with the chunk
size set from a memory budget; a model too large for one example's gradient to fit is split
into parameter groups, each differentiated in its own pass (only with a projection).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch.func import functional_call, grad, vmap

from tdabench import Encoded, token_losses
from tdabench_plugins.gradients._project import Projector

if TYPE_CHECKING:
    from transformers import PreTrainedModel

#: The parameter sets every gradient family offers (the ``params`` option): every parameter; the
#: weights and biases of the ``nn.Linear`` modules only (what kronfluence's factors can cover); the
#: output layer (the published TracIn-CP baseline).
PARAM_SETS: tuple[str, ...] = ("all", "linear", "last-layer")
#: Rows per chunk never exceed this: beyond it vmap gains nothing on CPU.
MAX_CHUNK = 64


def selected_names(model: PreTrainedModel, which: str) -> list[str]:
    """Names of the parameters differentiated: all, those of the linear layers, or those of the output layer."""
    if which not in PARAM_SETS:
        raise ValueError(f"params must be one of {', '.join(PARAM_SETS)}, got {which!r}")
    named = list(model.named_parameters())
    if which == "all":
        return [n for n, _ in named]
    if which == "linear":
        ids = {id(p) for m in model.modules() if isinstance(m, torch.nn.Linear) for p in m.parameters(recurse=False)}
        return [n for n, p in named if id(p) in ids]
    head = model.get_output_embeddings()
    if head is None:
        raise ValueError("params=last-layer: the model has no output layer (get_output_embeddings() is None)")
    ids = {id(p) for p in head.parameters()}
    return [n for n, p in named if id(p) in ids]


def _model_dims(model: PreTrainedModel) -> tuple[int, int, int]:
    """(vocabulary, hidden size, layers), for the activation-memory estimate."""
    head = model.get_output_embeddings()
    vocab, hidden = (head.weight.shape[0], head.weight.shape[1]) if head is not None else (50_000, 1024)
    layers = int(getattr(getattr(model, "config", None), "num_hidden_layers", 1) or 1)
    return int(vocab), int(hidden), layers


class GradientEngine:
    """Per-example gradients of one model, for any parameter values (checkpoints).

    Args:
        model: the model (its own parameters are only a template: values come per call).
        names: the parameters to differentiate, in a fixed order (the flattening order).
        projector: maps gradients to ``projector.dim`` columns; None keeps all ``D`` entries.
        memory_bytes: the working-memory budget of one chunk.
    """

    def __init__(self, model: PreTrainedModel, names: Sequence[str], *, projector: Projector | None, memory_bytes: int) -> None:
        shapes = {n: p.shape for n, p in model.named_parameters()}
        self.model = model
        self.names = list(names)
        self.sizes = {n: int(np.prod(shapes[n])) for n in self.names}
        self.n_params = sum(self.sizes.values())
        self.projector = projector
        self.dim = projector.dim if projector is not None else self.n_params
        self.memory_bytes = int(memory_bytes)
        offsets = np.concatenate([[0], np.cumsum([self.sizes[n] for n in self.names])])
        self.offsets = {n: (int(offsets[i]), int(offsets[i + 1])) for i, n in enumerate(self.names)}
        self.groups = self._groups()
        self._vocab, self._hidden, self._layers = _model_dims(model)

    def _groups(self) -> list[list[str]]:
        """Parameter groups differentiated in separate passes (one group unless projecting a
        model whose per-example gradients would not fit the budget)."""
        per_entry = 12  # bytes per gradient entry per example: vmap output + flatten + projection temp
        if self.projector is None or self.n_params * per_entry <= self.memory_bytes // 2:
            return [self.names]
        cap = max(1, self.memory_bytes // 2 // per_entry)
        groups: list[list[str]] = [[]]
        used = 0
        for n in self.names:
            if groups[-1] and used + self.sizes[n] > cap:
                groups.append([])
                used = 0
            groups[-1].append(n)
            used += self.sizes[n]
        return groups

    def chunk_rows(self, width: int) -> int:
        """Examples per vmap call for sequences of ``width`` tokens, within the budget."""
        group = max(sum(self.sizes[n] for n in g) for g in self.groups)
        act = width * (4 * self._vocab + 40 * self._hidden * self._layers) * 4
        per_example = act + 12 * group
        return int(max(1, min(MAX_CHUNK, self.memory_bytes // max(per_example, 1))))

    def _grad_fn(self, group: Sequence[str]) -> Callable[..., dict[str, torch.Tensor]]:
        model = self.model

        def loss(sel: dict[str, torch.Tensor], rest: dict[str, torch.Tensor], ids: torch.Tensor, am: torch.Tensor, lm: torch.Tensor) -> torch.Tensor:
            out = functional_call(model, {**rest, **sel}, (), {"input_ids": ids[None], "attention_mask": am[None], "use_cache": False})
            return token_losses(out.logits, ids[None], lm[None])[0]

        return vmap(grad(loss), in_dims=(None, None, 0, 0, 0))

    def grads(self, params: dict[str, torch.Tensor], enc: Encoded, out: torch.Tensor | None = None) -> torch.Tensor:
        """float32 [n, dim]: the gradient (flattened or projected) of each example of ``enc``
        under parameter values ``params`` (every parameter of the model, by name)."""
        n = len(enc)
        device = next(iter(params.values())).device
        if out is None:
            out = torch.empty(n, self.dim, device=device)
        if n == 0:
            return out
        if self.projector is not None:
            out.zero_()
        lengths = enc.attention_mask.sum(1).numpy()
        order = np.argsort(lengths, kind="stable")  # similar lengths share a chunk: less padding
        fns = [(g, self._grad_fn(g)) for g in self.groups]
        lo = 0
        while lo < n:
            m = self.chunk_rows(int(lengths[order[min(n - 1, lo + MAX_CHUNK - 1)]]))
            rows = order[lo : lo + m]
            part = enc.rows(rows).to(device)
            idx = torch.as_tensor(rows, device=device)
            for group, fn in fns:
                sel = {k: params[k] for k in group}
                rest = {k: v for k, v in params.items() if k not in sel}
                g = fn(sel, rest, part.input_ids, part.attention_mask, part.loss_mask)
                if self.projector is None:
                    for k in group:
                        a, b = self.offsets[k]
                        out[idx, a:b] = g[k].reshape(len(rows), -1)
                else:
                    block = torch.zeros(len(rows), self.dim, device=device)
                    for k in group:
                        self.projector.add_block(block, k, g[k])
                    out[idx] += block
                del g
            lo += m
        return out
