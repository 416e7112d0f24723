"""GPTDynamics run-directory names: parse the settings they encode, and build them.

Example: ``output_rte_bs-4_shot-200_sample-128_model-pythia-410m-deduped_lr-5e-7_
weight-decay-0.001_epoch-3_seed-28`` (an optional ``_loss-last-token`` or
``_loss-output-token`` stands before ``_seed-K``).
"""

from __future__ import annotations

import re

#: Keys in the order the published tools write them.
KEYS: tuple[str, ...] = ("bs", "shot", "sample", "model", "lr", "weight-decay", "epoch", "loss", "seed")
_KEY_RE = re.compile("_(" + "|".join(re.escape(k) for k in KEYS) + ")-")


def parse_run_name(name: str) -> dict[str, str]:
    """Settings in a run directory name; ``task`` is what stands before the first key.

    Unknown or missing keys are simply absent; a name that is not in this format gives
    ``{}``.
    """
    if not name.startswith("output_"):
        return {}
    body = name[len("output_") :]
    matches = list(_KEY_RE.finditer(body))
    if not matches:
        return {}
    out = {"task": body[: matches[0].start()]}
    for m, nxt in zip(matches, matches[1:] + [None]):
        out[m.group(1)] = body[m.end() : nxt.start() if nxt else len(body)]
    return out


def format_run_name(settings: dict[str, str]) -> str:
    """Inverse of :func:`parse_run_name` for the keys present in ``settings``."""
    parts = ["output", settings["task"]]
    parts += [f"{k}-{settings[k]}" for k in KEYS if k in settings]
    return "_".join(parts)


def model_slug(model: str) -> str:
    """``pythia-410m-deduped`` -> ``pythia-410m``: the model part of a benchmark id."""
    return re.sub(r"-deduped$", "", model.rsplit("/", 1)[-1].lower())
