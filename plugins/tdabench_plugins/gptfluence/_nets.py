"""GPTfluence factor networks: per-pair factors from the features of a training and a test example.

A network yields ``F = order + 1`` factors per (training example i, test example z): the
multiplicative factors ``A_{i,1..n}`` (one per Markov lag) and the additive factor ``B_i``,
with one network (``dot``) or one head (``concat``) per factor:

* ``dot``: ``factor_f(i, z) = <f_f(h_i), f_f(h_z)>``, ``f_f = Linear(d, w) -> ReLU -> Linear(w, w)``
  (published: ``w = d``). The ``F`` networks run as one batched module.
* ``concat``: ``factor_f(i, z) = head_f(ReLU(Linear(2d, w)([h_i; h_z])))`` (published: ``w = 100``).

Each network works in two stages so that no example is mapped twice: :meth:`FactorNet.represent`
maps every example's features once per optimizer step, and :meth:`FactorNet.grid` combines them
into the factor sums of whole transitions for every test example at once. A transition's
factor is the sum over its batch members, ``sum_{i in c_t} factor_f(i, z)``; row ``-1`` marks
padding.

Initialization keeps the exact functional form but starts at the best constant factors of the
fit data (every pair gets the same lag-1 and additive factor, fitted by least squares) plus a
small example-dependent part, so early rollouts neither explode nor vanish and training only
has to learn how examples differ (see :meth:`FactorNet.init_constant`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

FORMS: tuple[str, ...] = ("dot", "concat")


@dataclass(frozen=True)
class ConstantFactors:
    """The best per-pair factors shared by every pair (least squares over the fit transitions).

    Attributes:
        a, b: lag-1 multiplicative and additive factor of the joint fit.
        a_alone: the lag-1 factor of the fit without an additive factor.
    """

    a: float
    b: float
    a_alone: float


def _uniform(shape: tuple[int, ...], bound: float, gen: torch.Generator) -> nn.Parameter:
    """PyTorch's default Linear init (uniform in +-1/sqrt(fan_in)), from a local generator."""
    return nn.Parameter(torch.empty(shape).uniform_(-bound, bound, generator=gen))


class FactorNet(nn.Module):
    """Base class: ``n_factors = order + 1`` factors per pair (lags 1..order, then additive)."""

    def __init__(self, order: int) -> None:
        super().__init__()
        self.order = order
        self.n_factors = order + 1

    def represent(self, h_train: torch.Tensor, h_test: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-example representations; the train side gets one extra all-padding row at the end."""
        raise NotImplementedError

    def grid(self, tr: torch.Tensor, te: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        """[..., n_test, F]: factor sums of the transitions ``ids`` [..., M] for every test row."""
        raise NotImplementedError

    def init_constant(self, h_train: torch.Tensor, h_test: torch.Tensor, const: ConstantFactors, scale: float) -> None:
        """Start at the best constant per-pair factors, plus small example-dependent parts.

        Every pair starts with lag-1 factor ``const.a`` and additive factor ``const.b`` (the
        least-squares constants of the fit data), other lags at 0, and an example-dependent part
        whose size relative to ``a`` is ``scale``, measured on the features it will see. The
        functional form is unchanged; only the last layer's scale and bias move.
        """
        raise NotImplementedError

    def lr_groups(self, lr: float) -> list[dict[str, object]]:
        """AdamW parameter groups: each layer's learning rate is ``lr / fan_in`` (its bias too).

        Adam moves every weight by about its learning rate per step, so a layer's outputs move
        by about ``lr_layer * fan_in``; scaling by 1/fan-in (as muP does for Adam) makes one step
        change every layer's outputs by about ``lr`` whatever the encoder size and width.
        """
        return [{"params": params, "lr": lr / fan_in} for fan_in, params in self.layers()]

    def layers(self) -> list[tuple[int, list[nn.Parameter]]]:
        """(fan-in, parameters) of each layer."""
        raise NotImplementedError

    def pairs(self, tr: torch.Tensor, te: torch.Tensor) -> torch.Tensor:
        """[n_train, n_test, F]: the factors of every single (training, test) pair."""
        n_train = tr.shape[0] - 1
        ids = torch.arange(n_train, device=tr.device).unsqueeze(1)  # each "batch" is one example
        return self.grid(tr, te, ids)

    def diagonal(self, tr: torch.Tensor, te: torch.Tensor) -> torch.Tensor:
        """[n, F]: the factors of pair (row i, row i), for ``represent(h, h)`` of the same n examples."""
        raise NotImplementedError


class DotFactors(FactorNet):
    """``dot`` form: one Linear-ReLU-Linear network per factor, factors are inner products."""

    def __init__(self, dim: int, width: int, order: int, gen: torch.Generator) -> None:
        super().__init__(order)
        F = self.n_factors
        b1, b2 = 1.0 / math.sqrt(dim), 1.0 / math.sqrt(width)
        self.w1 = _uniform((F, dim, width), b1, gen)
        self.b1 = _uniform((F, 1, width), b1, gen)
        self.w2 = _uniform((F, width, width), b2, gen)
        self.b2 = _uniform((F, 1, width), b2, gen)

    def layers(self) -> list[tuple[int, list[nn.Parameter]]]:
        return [(self.w1.shape[1], [self.w1, self.b1]), (self.w2.shape[1], [self.w2, self.b2])]

    def _mlp(self, h: torch.Tensor) -> torch.Tensor:
        """[n, d] -> [n, F, w]: all F networks in one batched matmul."""
        x = torch.relu(torch.matmul(h.unsqueeze(0), self.w1) + self.b1)  # [F, n, w]
        return (torch.matmul(x, self.w2) + self.b2).transpose(0, 1)  # [n, F, w]

    def represent(self, h_train: torch.Tensor, h_test: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        tr = self._mlp(h_train)
        # Padding row of zeros: a padded batch slot adds nothing to the summed features.
        return torch.cat([tr, tr.new_zeros((1, *tr.shape[1:]))]), self._mlp(h_test)

    def grid(self, tr: torch.Tensor, te: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        pad = tr.shape[0] - 1
        # The dot product is linear in the train side: sum the batch's features first.
        summed = tr[torch.where(ids < 0, pad, ids)].sum(-3)  # [..., F, w]
        return torch.einsum("...fw,zfw->...zf", summed, te)

    def diagonal(self, tr: torch.Tensor, te: torch.Tensor) -> torch.Tensor:
        return (tr[:-1] * te).sum(-1)

    @torch.no_grad()
    def init_constant(self, h_train: torch.Tensor, h_test: torch.Tensor, const: ConstantFactors, scale: float) -> None:
        # <u_i, u_z> with u = W2 r + b2: a shared bias gives every pair the constant |b2|^2, which
        # is never negative, so with a negative b the additive factor starts at 0 and the lag-1
        # factor at the best constant without an additive part. W2 is scaled so that |W2 r| is
        # `scale` times the lag-1 bias norm sqrt(a).
        a, b = (const.a, const.b) if const.b >= 0 else (const.a_alone, 0.0)
        h = torch.cat([h_train, h_test])
        r = torch.relu(torch.matmul(h.unsqueeze(0), self.w1) + self.b1)  # [F, n, w]
        norm2 = (torch.matmul(r, self.w2) ** 2).sum(-1).mean(-1)  # [F]
        # Lag-1: |W2 r| = scale * sqrt(a); other factors one more `scale` smaller, so they start
        # at ~scale^4 * a per pair instead of drifting every rollout from the first step.
        size = scale * math.sqrt(max(abs(a), 1e-12)) * torch.full_like(norm2, scale)
        size[0] = scale * math.sqrt(max(abs(a), 1e-12))
        self.w2.mul_((size / torch.sqrt(norm2.clamp_min(1e-24)))[:, None, None])
        w = self.b2.shape[-1]
        self.b2.zero_()
        self.b2[0].fill_(math.sqrt(max(a, 0.0) / w))
        self.b2[-1].fill_(math.sqrt(max(b, 0.0) / w))


class ConcatFactors(FactorNet):
    """``concat`` form: ``[h_i; h_z] -> Linear(2d, w) -> ReLU -> one Linear(w, 1) head per factor``."""

    def __init__(self, dim: int, width: int, order: int, gen: torch.Generator) -> None:
        super().__init__(order)
        b1, b2 = 1.0 / math.sqrt(2 * dim), 1.0 / math.sqrt(width)
        # Linear(2d, w) split in its train and test halves, so each half is applied per example.
        self.w_train = _uniform((dim, width), b1, gen)
        self.w_test = _uniform((dim, width), b1, gen)
        self.b1 = _uniform((width,), b1, gen)
        self.heads = _uniform((width, self.n_factors), b2, gen)
        self.head_bias = _uniform((self.n_factors,), b2, gen)

    def layers(self) -> list[tuple[int, list[nn.Parameter]]]:
        return [(2 * self.w_train.shape[0], [self.w_train, self.w_test, self.b1]), (self.heads.shape[0], [self.heads, self.head_bias])]

    def represent(self, h_train: torch.Tensor, h_test: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        tr = h_train @ self.w_train
        return torch.cat([tr, tr.new_zeros((1, tr.shape[1]))]), h_test @ self.w_test + self.b1

    def _heads(self, pre: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        out = torch.relu(pre) @ self.heads + self.head_bias  # [..., M, F]
        return (out * valid.unsqueeze(-1)).sum(-2)

    def grid(self, tr: torch.Tensor, te: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        pad = tr.shape[0] - 1
        pre = tr[torch.where(ids < 0, pad, ids)].unsqueeze(-3) + te.unsqueeze(-2)  # [..., n_test, M, w]
        return self._heads(pre, (ids >= 0).to(pre.dtype).unsqueeze(-2))

    def diagonal(self, tr: torch.Tensor, te: torch.Tensor) -> torch.Tensor:
        return torch.relu(tr[:-1] + te) @ self.heads + self.head_bias

    @torch.no_grad()
    def init_constant(self, h_train: torch.Tensor, h_test: torch.Tensor, const: ConstantFactors, scale: float) -> None:
        # Head biases carry the constants; head weights are scaled so the lag-1 factor's
        # example-dependent part has rms `scale * a` over (at most 64 x 64) pairs, every other
        # factor's one more `scale` smaller (as in the dot form).
        a, b = const.a, const.b
        tr, te = self.represent(h_train[:64], h_test[:64])
        r = torch.relu(tr[:-1].unsqueeze(1) + te.unsqueeze(0))  # [n_tr, n_te, w]
        rms = torch.sqrt(((r @ self.heads) ** 2).mean((0, 1)).clamp_min(1e-24))  # [F]
        size = torch.full_like(rms, scale * scale * max(abs(a), 1e-12))
        size[0] = scale * max(abs(a), 1e-12)
        self.heads.mul_(size / rms)
        self.head_bias.zero_()
        self.head_bias[0] = a
        self.head_bias[-1] = b


def build_net(form: str, dim: int, width: int, order: int, gen: torch.Generator) -> FactorNet:
    """A factor network of ``form`` (``dot`` or ``concat``) over ``dim``-dimensional features."""
    if form == "dot":
        return DotFactors(dim, width, order, gen)
    if form == "concat":
        return ConcatFactors(dim, width, order, gen)
    raise ValueError(f"form must be one of {', '.join(FORMS)}, got {form!r}")
