"""GPTfluence training and rollout on feature matrices (no text, no encoder: testable directly).

Dynamics (n-th order Markov, ``order = n``), for a test example z and the batch c_t of step t::

    y_t = sum_{j=1..n} (sum_{i in c_t} A_{i,j}) * y_{t-j} + sum_{i in c_t} B_i

Missing history at the start is the initial value repeated: ``y_{-1} = y_{-2} = ... = y_0``.

Training is teacher-forced one-step regression over every (run, transition, test example)
triple of the fit runs. A minibatch holds about ``batch_size`` triples (more on a large fit,
so an epoch takes at most ``max_steps_per_epoch`` steps: :func:`epoch_batch`) as a block: about
sqrt(batch_size) test examples times the (run, transition) rows that fill it, every triple
once per epoch in shuffled blocks (:func:`block_shape`). A step maps each distinct example of
the block through the network once (the dominant cost) and combines them with tensor ops over
the whole block: there is no Python loop per transition.

Checkpoint interval ``k`` (the cheaper-collection ablation): only the values at recorded columns
``0, k, 2k, ...`` are used, as targets, as teacher-forced starting points and for validation.
A transition spans ``k`` recorded columns and consumes the union of their batches, applied
step by step with the model's own intermediate predictions, so the learned factors keep their
per-step meaning and the same simulator rolls out at every step. History older than the
transition's start (order > 1) is read from the recorded values, linearly interpolated between
the every-k-th points (only those points are ever read). Columns after the last multiple of
``k`` are not used.

Early stopping: after each epoch the validation runs are rolled out autoregressively from
their initial values; the state with the lowest validation rollout MSE (at the used columns)
is kept, and training stops after ``patience`` epochs without improvement. Without validation
runs the fit runs' own rollout MSE selects the state.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np
import torch

from tdabench_plugins.gptfluence._nets import ConstantFactors, FactorNet


@dataclass(frozen=True)
class TrainSettings:
    """Optimizer and schedule of one fit (see :class:`GPTfluenceConfig` for the meanings)."""

    lr: float = 0.1
    weight_decay: float = 1e-5
    batch_size: int = 1024
    epochs: int = 15
    warmup_steps: int = 200
    patience: int = 10
    interval: int = 1
    seed: int = 0
    max_steps_per_epoch: int = 500


@dataclass(frozen=True)
class RunSet:
    """Runs as tensors: batch rows per transition, values per test example (normalized scale).

    Attributes:
        pos: int64 [R, K-1, M], rows of the training feature matrix consumed by each
            transition (column-to-column), -1 padded.
        values: float32 [R, n_test, K], rows aligned with the test feature matrix.
    """

    pos: torch.Tensor
    values: torch.Tensor


@dataclass
class FitResult:
    """What training chose: the epoch of the kept state and the validation curve."""

    best_epoch: int
    best_val_mse: float
    epochs_run: int
    steps: int
    selection: str  # "validation" or "fit-rollout"
    block: tuple[int, int] = (0, 0)  # (transitions, test examples) per minibatch
    history: list[dict[str, float]] = field(default_factory=list)


def used_columns(K: int, interval: int) -> np.ndarray:
    """The recorded columns a fit with ``interval`` reads: 0, k, 2k, ... (at most K-1)."""
    return np.arange(0, K, interval)[: (K - 1) // interval + 1]


def rollout(
    net: FactorNet, tr: torch.Tensor, te: torch.Tensor, pos: torch.Tensor, initial: torch.Tensor,
    bounds: tuple[float, float] | None = None, factor_range: torch.Tensor | None = None,
) -> torch.Tensor:
    """[R, n, K] autoregressive predictions from ``initial`` [R, n]; batched over runs x tests.

    ``tr``/``te`` are the network's representations (:meth:`FactorNet.represent`); the loop
    runs over the K-1 transitions only. ``bounds`` clips every step (a guard against a
    rollout that runs away, see the ``clip`` option); ``factor_range`` [2, F] clamps each
    transition's summed factors (see :func:`factor_range`).
    """
    R, C, _ = pos.shape
    n = net.order
    out = initial.new_empty((R, initial.shape[1], C + 1))
    out[..., 0] = initial
    hist = initial.unsqueeze(-1).repeat(1, 1, n)  # [R, n_test, order]: y_{t-1}, ..., y_{t-n}
    for t in range(C):
        f = net.grid(tr, te, pos[:, t])  # [R, n_test, F]
        if factor_range is not None:
            f = torch.maximum(torch.minimum(f, factor_range[1]), factor_range[0])
        y = (f[..., :n] * hist).sum(-1) + f[..., n]
        if bounds is not None:
            y = y.clamp(bounds[0], bounds[1])
        out[..., t + 1] = y
        hist = torch.cat([y.unsqueeze(-1), hist[..., :-1]], dim=-1)
    return out


def factor_range(net: FactorNet, tr: torch.Tensor, te: torch.Tensor, pos: torch.Tensor, quantile: float = 0.01) -> torch.Tensor:
    """[2, F]: the ``quantile`` and ``1 - quantile`` of each summed factor over every transition
    of the runs ``pos`` for every test example of ``te`` (the fit runs and fitted test examples).

    Clamping a rollout's factors to it keeps the network within what it produced on the data
    it was fitted on: a test example it never saw cannot get a multiplicative factor that makes
    its rollout grow without bound.
    """
    with torch.no_grad():
        f = torch.stack([net.grid(tr, te, pos[:, t]) for t in range(pos.shape[1])], dim=1)  # [R, C, n, F]
        flat = f.reshape(-1, f.shape[-1]).double()
        if flat.shape[0] > 1_000_000:  # quantiles of a seeded sample are as good and far cheaper
            flat = flat[torch.randperm(flat.shape[0], generator=torch.Generator().manual_seed(0))[:1_000_000]]
        return torch.quantile(flat, torch.tensor([quantile, 1.0 - quantile], dtype=flat.dtype), dim=0).to(f.dtype)


def constant_factors(fit: RunSet, interval: int) -> ConstantFactors:
    """Least-squares per-pair factors shared by all pairs, from the used columns of ``fit``.

    Over every used transition (k columns), ``y_{c+k} ~ alpha * y_c + beta``; with M batch
    members per step on average, the per-step constants solve ``(a M)^k = alpha`` and
    ``b M * sum_{s<k} (a M)^s = beta``; ``a_alone`` is the same fit with ``beta = 0``.
    """
    K = fit.values.shape[-1]
    cols = used_columns(K, interval)
    x = fit.values[..., cols[:-1]].reshape(-1).double()
    y = fit.values[..., cols[1:]].reshape(-1).double()
    ok = torch.isfinite(x) & torch.isfinite(y)
    x, y = x[ok], y[ok]
    if len(x) < 2:
        raise ValueError("GPTfluence needs at least two finite recorded transitions to fit")
    members = float((fit.pos >= 0).sum(-1).double().mean().clamp_min(1.0))
    design = torch.stack([x, torch.ones_like(x)], dim=1)
    alpha, beta = (float(v) for v in torch.linalg.lstsq(design, y.unsqueeze(1)).solution.squeeze(1))
    alpha_alone = float((x * y).sum() / (x * x).sum().clamp_min(1e-24))

    def per_step(alpha: float) -> float:
        return math.copysign(abs(alpha) ** (1.0 / interval), alpha) / members

    a = per_step(alpha)
    growth = sum((a * members) ** s for s in range(interval))
    return ConstantFactors(a=a, b=beta / (members * growth), a_alone=per_step(alpha_alone))


def _history(values: torch.Tensor, interval: int, order: int) -> torch.Tensor:
    """[R, n, (order-1) + J*k + 1]: values at every column up to J*k, read from the every-k-th ones.

    Columns between recorded points are linear interpolations (used as older history only);
    ``order - 1`` copies of the initial value are prepended (the documented start rule).
    """
    K = values.shape[-1]
    cols = used_columns(K, interval)
    known = values[..., cols]  # [R, n, J+1]
    J = len(cols) - 1
    span = torch.arange(J * interval + 1, device=values.device)
    lo = span // interval
    frac = ((span % interval).to(values.dtype) / interval)
    hi = torch.clamp(lo + 1, max=J)
    full = known[..., lo] * (1 - frac) + known[..., hi] * frac
    pad = full[..., :1].expand(*full.shape[:-1], order - 1)
    return torch.cat([pad, full], dim=-1)


def epoch_batch(batch_size: int, triples: int, max_steps_per_epoch: int) -> int:
    """Triples per minibatch: ``batch_size``, grown so an epoch of ``triples`` takes at most
    ``max_steps_per_epoch`` steps (0: never grown, as before version 6).

    A step's cost is mostly mapping the block's distinct examples through the network, which
    grows far slower than the block (a block's batches draw from one pool), so on large fits
    (GPTDynamics' instruction-tuning shape: 7.6 million triples an epoch) fewer, larger steps
    do the same epoch many times faster. Fits of the bank's size stay under the cap and are
    unchanged.
    """
    if max_steps_per_epoch <= 0:
        return batch_size
    return max(batch_size, math.ceil(triples / max_steps_per_epoch))


def block_shape(batch_size: int, rows: int, n_test: int) -> tuple[int, int]:
    """(transitions, test examples) of a minibatch of about ``batch_size`` triples.

    A square-ish block: about sqrt(batch_size) test examples (at most all of them), and as many
    transitions as fill the batch. Few distinct examples per step keep the per-example network
    work small, which dominates a step's cost.
    """
    tests = max(1, min(n_test, round(math.sqrt(batch_size))))
    return max(1, min(rows, batch_size // tests)), tests


def _blocks(
    rows: int, n_test: int, row_size: int, test_size: int, gen: torch.Generator, device: torch.device,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """One epoch: every (transition, test example) triple exactly once, in shuffled blocks."""
    row_perm = torch.randperm(rows, generator=gen)
    test_perm = torch.randperm(n_test, generator=gen)
    row_blocks = row_perm.split(row_size)
    test_blocks = test_perm.split(test_size)
    order = torch.randperm(len(row_blocks) * len(test_blocks), generator=gen).tolist()
    for b in order:
        yield row_blocks[b // len(test_blocks)].to(device), test_blocks[b % len(test_blocks)].to(device)


def _block_loss(
    net: FactorNet, h_train: torch.Tensor, h_test: torch.Tensor, fit: RunSet, hist: torch.Tensor,
    r: torch.Tensor, c: torch.Tensor, z: torch.Tensor, k: int,
) -> torch.Tensor:
    """Teacher-forced MSE of transitions (r, c -> c + k) for test rows z; one forward pass."""
    n = net.order
    ids = fit.pos[r[:, None], c[:, None] + torch.arange(k, device=r.device)]  # [b, k, M]: k batches
    # Map only the examples this block touches (the network's per-example work dominates).
    uniq, local = torch.unique(ids, return_inverse=True)
    tr, te = net.represent(h_train[uniq.clamp_min(0)], h_test[z])
    local = torch.where(ids < 0, -1, local)
    f = net.grid(tr, te, local)  # [b, k, n_z, F]
    # Teacher forcing: the history ending at the recorded start value y_c.
    lags = c[:, None] + (n - 1) - torch.arange(n, device=r.device)  # [b, n]
    window = hist[r[:, None, None], z[None, :, None], lags[:, None, :]]  # [b, n_z, n]
    target = fit.values[r[:, None], z[None, :], (c + k)[:, None]]  # [b, n_z]
    ok = torch.isfinite(target) & torch.isfinite(window).all(-1)  # unrecorded values say nothing
    window = torch.nan_to_num(window)
    for s in range(k):  # k sub-steps (k = 1 by default), vectorized over the block
        y = (f[:, s, :, :n] * window).sum(-1) + f[:, s, :, n]
        window = torch.cat([y.unsqueeze(-1), window[..., :-1]], dim=-1)
    return torch.where(ok, (y - torch.nan_to_num(target)) ** 2, 0.0).sum() / ok.sum().clamp_min(1)


def _lr_lambda(warmup: int, total: int) -> Callable[[int], float]:
    """Multiplier of the base rates: linear warmup, then linear decay to 0 at ``total``."""

    def f(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return max(0.0, (total - step) / max(1, total - warmup))

    return f


def rollout_mse(
    net: FactorNet, h_train: torch.Tensor, h_test: torch.Tensor, runs: RunSet, cols: np.ndarray,
    bounds: tuple[float, float] | None = None,
) -> float:
    """Rollout MSE of ``runs`` at the recorded columns ``cols[1:]``.

    Trajectories without a finite initial value, and unrecorded (non-finite) values, are left
    out; a prediction that is not finite where the truth is counts as infinite error.
    """
    with torch.no_grad():
        tr, te = net.represent(h_train, h_test)
        pred = rollout(net, tr, te, runs.pos, runs.values[..., 0], bounds)
        idx = torch.as_tensor(cols[1:], device=pred.device)
        err = (pred[..., idx] - runs.values[..., idx]) ** 2
        ok = torch.isfinite(runs.values[..., idx]) & torch.isfinite(runs.values[..., :1])
        return float(torch.where(ok, err, 0.0).sum() / ok.sum().clamp_min(1))


def fit_factors(
    net: FactorNet,
    h_train: torch.Tensor,
    h_test: torch.Tensor,
    fit: RunSet,
    validation: RunSet | None,
    settings: TrainSettings,
    bounds: tuple[float, float] | None = None,
) -> FitResult:
    """Train ``net`` in place (teacher-forced one-step MSE) and leave it in its best state.

    Args:
        net: an initialized factor network.
        h_train: float32 [n_train, d] features of the rows ``fit.pos`` / ``validation.pos`` index.
        h_test: float32 [n_test, d] features of the test rows of ``fit.values``.
        fit: the fit runs; validation: the validation runs (None or empty: select on ``fit``).
        settings: optimizer, schedule, interval and seed.
        bounds: clip range of the selection rollouts (as in simulation), or None.
    """
    k, n = settings.interval, net.order
    R, n_test, K = fit.values.shape
    cols = used_columns(K, k)
    J = len(cols) - 1
    if J < 1:
        raise ValueError(f"interval={k} leaves no transition to fit in {K} recorded values")
    hist = _history(fit.values, k, n)  # [R, n_test, n-1 + J*k + 1]
    gen = torch.Generator().manual_seed(settings.seed)  # shuffling; the net was seeded by the caller
    batch = epoch_batch(settings.batch_size, R * J * n_test, settings.max_steps_per_epoch)
    row_size, test_size = block_shape(batch, R * J, n_test)
    steps_per_epoch = math.ceil(R * J / row_size) * math.ceil(n_test / test_size)
    total_steps = steps_per_epoch * settings.epochs
    opt = torch.optim.AdamW(net.lr_groups(settings.lr), lr=settings.lr, weight_decay=settings.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _lr_lambda(min(settings.warmup_steps, total_steps), total_steps))
    selector = validation if validation is not None and validation.values.shape[0] > 0 else fit
    best = (math.inf, -1, copy.deepcopy(net.state_dict()))
    history: list[dict[str, float]] = []
    step = stale = epoch = 0
    for epoch in range(1, settings.epochs + 1):
        loss_sum = 0.0
        for rj, z in _blocks(R * J, n_test, row_size, test_size, gen, fit.values.device):
            r, c = rj // J, (rj % J) * k  # run, first column of the k-column transition
            loss = _block_loss(net, h_train, h_test, fit, hist, r, c, z, k)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            step += 1
            loss_sum += loss.item() * len(rj) * len(z)
        val = rollout_mse(net, h_train, h_test, selector, cols, bounds)
        history.append({"epoch": epoch, "train_mse": loss_sum / (R * J * n_test), "select_mse": val})
        if not math.isfinite(val):
            break
        if val < best[0]:
            best, stale = (val, epoch, copy.deepcopy(net.state_dict())), 0
        else:
            stale += 1
            if stale >= settings.patience:
                break
    if best[1] < 0:
        raise FloatingPointError("GPTfluence training diverged: no epoch gave a finite rollout error")
    net.load_state_dict(best[2])
    return FitResult(
        best_epoch=best[1], best_val_mse=best[0], epochs_run=epoch, steps=step,
        selection="validation" if selector is validation else "fit-rollout", block=(row_size, test_size), history=history,
    )
