"""What the published GPTDynamics release and its tools contain, as data (read from the authors' code).

Everything here is a fact about the release, not a choice of tdabench: which example files a
task's runs use, which seeds the published tables evaluate on, the id ranges of the FLAN
tasks, and how out-of-distribution runs are named and where their ids live.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

#: Run folder (``runs/<folder>``) -> (example folder, train file, test file), as the authors'
#: ``train.py`` maps its dataset names. Paths are relative to ``gptdynamics/``.
EXAMPLE_FILES: dict[str, tuple[str, str, str]] = {
    "rte": ("sft_tasks/rte", "rte_0_399_train.json", "rte_0_276_eval.json"),
    "boolq": ("sft_tasks/boolq", "boolq_train_0-199.json", "boolq_validation_0-199.json"),
    "sst2": ("sft_tasks/sst2", "sst2_train_0-199.json", "sst2_validation_0-199.json"),
    "webnlg": ("sft_tasks/webnlg", "webnlg_train_0-399.json", "webnlg_dev_0-177.json"),
    "wmt16_de_en": ("sft_tasks/wmt16_de_en", "wmt16_de_en_train_0-199.json", "wmt16_de_en_test_0-199.json"),
    "flan": ("it_tasks", "flan_train_0_1599.json", "flan_eval_0_1054.json"),
    "flan_ood": ("it_tasks", "flan_train_0_1599.json", "flan_eval_0_1054.json"),
    "dataset_debug_sst2": ("sft_tasks/sst2", "sst2_flan-prompt_dataset-debug_mislabelled-0.4_train_0-127.json",
                           "sst2_flan-prompt_dataset-debug_eval_0-127.json"),
}
#: Example files that belong to the mislabel use case, never to a task's main runs.
DEBUG_WORDS = ("debug", "mislabel")
#: Evaluation seeds of the published tables (``test.py``): seeds 5-9 for WMT16 and every FLAN size.
EVAL_SEEDS: dict[str, tuple[int, ...]] = {
    "sst2": (28, 29, 30, 31, 32), "rte": (28, 29, 30, 31, 32), "boolq": (28, 29, 30, 31, 32), "webnlg": (28, 29, 30, 31, 32),
    "wmt16_de_en": (5, 6, 7, 8, 9), "flan": (5, 6, 7, 8, 9),
}
#: The validation runs: two of the remaining main runs, shuffled with this seed (as published).
VALIDATION_SEED = 42
N_VALIDATION = 2
#: FLAN's test ids share one space; the tables score each task and average them.
FLAN_TASKS: dict[str, tuple[int, int]] = {
    "sst2": (0, 199), "rte": (200, 476), "boolq": (477, 676), "webnlg": (677, 854), "wmt16_de_en": (855, 1054),
}
#: ``runs/flan_ood`` runs sample FLAN training ids shifted by this much.
FLAN_OOD_OFFSET = 1200
_OOD = re.compile(r"-ood$")


@dataclass(frozen=True)
class RunRole:
    """What a run directory is, from its folder and name.

    Attributes:
        task: the task whose benchmark it belongs to (``rte`` for ``rte-ood`` runs, ``flan``
            for ``runs/flan_ood``).
        examples: the key of :data:`EXAMPLE_FILES` for its example files (None: by role).
        ood: an out-of-distribution run: an ``unseen-train`` run of its task's benchmark.
    """

    task: str
    examples: str | None
    ood: bool


def run_role(folder: str, task: str) -> RunRole:
    """The role of a run in ``runs/<folder>`` whose name says ``task``."""
    ood = bool(_OOD.search(task)) or folder.endswith("_ood")
    if folder == "flan_ood":
        return RunRole("flan", "flan_ood", True)
    base = _OOD.sub("", task)
    if folder in EXAMPLE_FILES:
        return RunRole(base if folder != "dataset_debug_sst2" else task, folder, ood)
    return RunRole(base, None, ood)


def is_debug_file(name: str) -> bool:
    """Whether an example file belongs to the mislabel use case."""
    return any(w in name for w in DEBUG_WORDS)


def published_split(task: str, seeds: dict[str, int], ood: set[str]) -> tuple[list[str], list[str], list[str], list[str], str] | None:
    """(fit, validation, evaluation, unseen-train) run names and the rule, by the published
    protocol for ``task``; None when the task has no published protocol or lacks its seeds.

    ``seeds`` maps each run name to its seed; ``ood`` names the out-of-distribution runs.
    """
    wanted = EVAL_SEEDS.get(task)
    main = {n: s for n, s in seeds.items() if n not in ood}
    if wanted is None or not set(wanted) <= set(main.values()):
        return None
    evaluation = sorted((n for n, s in main.items() if s in wanted), key=lambda n: (main[n], n))
    rest = sorted((n for n in main if n not in evaluation), key=lambda n: (main[n], n))
    order = np.random.default_rng(VALIDATION_SEED).permutation(len(rest))
    validation = sorted((rest[i] for i in order[:N_VALIDATION]), key=lambda n: (main[n], n))
    fit = [n for n in rest if n not in validation]
    unseen = sorted(ood, key=lambda n: (seeds[n], n))
    rule = (f"published protocol: evaluation seeds {wanted[0]}-{wanted[-1]}, {len(validation)} validation runs of the rest "
            f"(numpy default_rng({VALIDATION_SEED}) permutation, first {N_VALIDATION}), {len(fit)} fit; {len(unseen)} "
            "out-of-distribution runs for unseen-train")
    return fit, validation, evaluation, unseen, rule


def flan_groups(test_ids: np.ndarray) -> dict[str, tuple[int, ...]]:
    """FLAN's five tasks among ``test_ids`` (the tables score each and average them)."""
    ids = np.asarray(test_ids, dtype=np.int64)
    out = {}
    for name, (lo, hi) in FLAN_TASKS.items():
        members = ids[(ids >= lo) & (ids <= hi)]
        if len(members):
            out[name] = tuple(int(i) for i in members)
    return out
