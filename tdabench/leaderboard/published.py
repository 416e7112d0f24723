"""Numbers published in the GPTfluence paper, shown beside (never mixed with) measured ones.

Source: Chai et al. 2024, "On Training Data Influence of GPT Models" (GPTfluence, EMNLP 2024,
arXiv 2404.07840), as transcribed in the project's protocol reference
(``shared/reference/protocol.md``, "Published numbers"). They were measured on the
GPTDynamics data with Pythia models, not by tdabench; they orient a reader, nothing more.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from tdabench.leaderboard.aggregate import MeanRank

CITATION = "Chai et al. 2024, \"On Training Data Influence of GPT Models\" (GPTfluence, EMNLP 2024, arXiv 2404.07840)"


@dataclass(frozen=True)
class Published:
    """One published row: loss-trajectory MSE / MAE / final-step Spearman rho."""

    setting: str  # "it" or "ft"
    model: str
    scope: str
    method: str
    mse: float
    mae: float | None
    rho: float


_IT5 = "average of RTE, SST-2, BoolQ, WebNLG, WMT16"
PUBLISHED: tuple[Published, ...] = (
    Published("it", "Pythia-410M", _IT5, "TracIn-CP", 0.413, 0.426, 0.421),
    Published("it", "Pythia-410M", _IT5, "Grad-Dot", 6.479, 1.608, 0.421),
    Published("it", "Pythia-410M", _IT5, "Simfluence", 0.770, 0.361, 0.779),
    Published("it", "Pythia-410M", _IT5, "GPTfluence", 0.093, 0.175, 0.860),
    Published("it", "Pythia-1B", _IT5, "Simfluence", 0.537, 0.407, 0.737),
    Published("it", "Pythia-1B", _IT5, "GPTfluence", 0.055, 0.150, 0.900),
    Published("it", "Pythia-2.8B", _IT5, "Simfluence", 0.933, 0.593, 0.880),
    Published("it", "Pythia-2.8B", _IT5, "GPTfluence", 0.066, 0.149, 0.981),
    Published("ft", "Pythia-410M", "average of five tasks", "Simfluence", 0.026, 0.116, 0.931),
    Published("ft", "Pythia-410M", "average of five tasks", "GPTfluence", 0.015, 0.084, 0.933),
)
#: Further published figures that do not fit the table's columns, quoted as text.
PUBLISHED_NOTES: tuple[str, ...] = (
    "BLEU trajectories, instruction tuning, Pythia-410M: Simfluence MSE 27.81 (rho 0.82), GPTfluence MSE 8.41 (rho 0.91).",
    "Unseen data, fine-tuning RTE, loss rho (GPTfluence): 0.913 unseen training data, -0.024 unseen test data, -0.048 both.",
    "Cost per test sample: TracIn-CP 153 s, Simfluence 0.1 s, GPTfluence 0.2 s.",
)
SETTING_NAMES = {"it": "instruction tuning", "ft": "fine-tuning"}


def _norm(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def matches(published_method: str, method: str) -> bool:
    """Whether a measured method (display or registered name) is a variant of a published one."""
    return _norm(method).startswith(_norm(published_method))


@dataclass(frozen=True)
class Ordering:
    """Published vs measured order of the methods both contain, for one setting."""

    setting: str
    published: tuple[str, ...]  # published methods, best MSE first (Pythia-410M)
    measured: tuple[str, ...]  # measured methods matching them, best mean rank first
    groups: tuple[str, ...]  # the leaderboard groups the measured order is taken over


def orderings(ranks_by_setting: Mapping[str, tuple[tuple[str, ...], Sequence[MeanRank]]]) -> list[Ordering]:
    """For each setting with measured mean ranks (seen split, loss), both orderings.

    ``ranks_by_setting`` maps ``it``/``ft`` to (groups, mean ranks over those groups' benchmarks).
    """
    out = []
    for setting, (groups, ranks) in sorted(ranks_by_setting.items()):
        rows = sorted((p for p in PUBLISHED if p.setting == setting and p.model == "Pythia-410M"), key=lambda p: p.mse)
        measured = [
            mr.method for mr in ranks
            if mr.by_split.get("seen", (None, 0, 0))[0] is not None and any(matches(p.method, mr.method) for p in rows)
        ]
        present = [p.method for p in rows if any(matches(p.method, m) for m in measured)]
        out.append(Ordering(setting, tuple(present), tuple(measured), groups))
    return out
