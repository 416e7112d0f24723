"""Write the what-if plans of docs/whatif.md, made by the recorder's own designs.

Both are for the default benchmark (``builtin/ft/neox-1m/sentiment``: pool A of 200 examples,
128 per run, 3 epochs of batches of 4 = 96 steps, as its runs):

* ``curriculum-by-label.json``: 128 examples, every negative review before any positive one,
  the same order every epoch (design ``curriculum``, groups = labels);
* ``drop-negative-review.json``: 128 examples drawn without the 54 negative examples written in
  the "review" template (design ``drop-group``, groups = label+template).

Usage: python scripts/make_example_plans.py [OUT_DIR]   (default: docs/examples/plans)
"""

from __future__ import annotations

import sys
from pathlib import Path

from tdabench.formats.gptdynamics_write import write_batches
from tdabench.recorder.designs import DesignSpec, plan_run
from tdabench.recorder.tasks import builtin_task

SAMPLE, EPOCHS, BATCH, SEED = 128, 3, 4, 2024


def main(out: Path) -> None:
    task = builtin_task("sentiment")
    by_label = task.groups("label")
    curriculum = plan_run(DesignSpec("curriculum", group_by="label"), task.pool_a, by_label, SAMPLE, EPOCHS, BATCH, 0, SEED)
    assert curriculum.params["order"] == "sorted"
    by_kind = task.groups("label+template")
    kinds = sorted({by_kind[int(i)] for i in task.pool_a})
    drop = plan_run(DesignSpec("drop-group", group_by="label+template"), task.pool_a, by_kind, SAMPLE, EPOCHS, BATCH,
                    kinds.index("negative/review"), SEED)
    out.mkdir(parents=True, exist_ok=True)
    write_batches(out / "curriculum-by-label.json", curriculum.batches)
    write_batches(out / "drop-negative-review.json", drop.batches)
    print(f"curriculum: group order {curriculum.params['group_order']}; drop-group: dropped {drop.params['dropped']}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("docs/examples/plans"))
