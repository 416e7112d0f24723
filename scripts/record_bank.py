"""Record the built-in bank and pack it into tdabench/bank/ (archives + index.json).

    python scripts/record_bank.py                      # every benchmark (resumes what is recorded)
    python scripts/record_bank.py --only ft-neox-1m-sentiment
    python scripts/record_bank.py --jobs 2             # two runs at once (or --executor ray)
    python scripts/record_bank.py --pretrain           # also regenerate the base checkpoints first
    python scripts/record_bank.py --pack-only          # pack finished recordings, record nothing

Recordings go to --build-dir (resumable per run); each finished one is packed to
``tdabench/bank/benchmarks/<name>.tar.xz`` and listed in ``tdabench/bank/index.json``.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tdabench.sources.bank import ARCHIVES, INDEX, pack, read_index
from tdabench.recorder.designs import DesignSpec
from tdabench.run.executors import add_executor_arguments, make_executor
from tdabench.recorder.record import RecordSpec, record
from tdabench.recorder.train import Schedule


#: The peak learning rate per (model, task): the choice of ``scripts/lr_search.py`` on its own search
#: runs (seeds from 10,000), by its rule fixed in advance: among the rates at which the mean test loss
#: never rose more than 5% above its step-0 value, the one that ended lowest; where none did
#: (never, after the grids of the mixtures and entailment were extended downwards), the smallest
#: peak. docs/benchmarks.md, "Recording protocol", has every grid point.
LEARNING_RATES: dict[tuple[str, str], float] = {
    ("neox-1m", "sentiment"): 2e-4, ("neox-1m", "entailment"): 5e-5, ("neox-1m", "boolq"): 1e-4,
    ("neox-1m", "webnlg"): 5e-4, ("neox-1m", "wmt"): 5e-4, ("neox-1m", "mixture"): 2e-5,
    ("neox-0.2m", "mixture"): 1e-4, ("neox-4m", "mixture"): 1e-5,
    # The mislabel tier is not searched: its test set is its own noisy pool and its question is which
    # labels are wrong. At bank v1's 1e-3 the flipped labels are partly learned (accuracy drops and
    # fixing them brings it back); the search's 1e-4 on the clean test set leaves the base untouched.
    ("neox-1m-sentiment", "sentiment"): 1e-3,
}
#: Linear warmup over the first 10% of the steps, then linear decay (transformers' schedule).
WARMUP = 0.1


@dataclass(frozen=True)
class Entry:
    """One benchmark of the bank: the uniform tier's settings unless a field says otherwise."""

    name: str
    id: str
    model: str
    task: str
    default: bool = False
    design: DesignSpec = DesignSpec()
    runs: int = 32
    eval_runs: int | None = None
    n_test: int = 128
    sample: int = 128
    shot: int | None = None
    epochs: int = 3
    unseen_runs: int | None = None
    metric_every: int | None = None
    test_set: str = "test"
    question: str = ""
    warmup: float = WARMUP
    note: str = ""

    @property
    def lr(self) -> float:
        """The peak learning rate of its model size and task (:data:`LEARNING_RATES`)."""
        return LEARNING_RATES[(self.model, self.task)]


_NOT_LEARNED = ("the 1M model does not learn this task from 128 examples in 96 steps (answering needs a fact of the passage matched against the question; label accuracy stays near chance at every rate searched, and 1,000 steps of batches of 16 over 1,000 of its examples reach only 0.56 on boolq and 0.7 on entailment), so what moves is each batch's label mix")

#: The bank, in recording order (the default slice first). Every benchmark: 32 runs on pool A,
#: 3 on pool B, 128 of 200 examples, batch 4, 3 epochs (96 steps); BLEU / ROUGE-L every 8 steps
#: for generation tasks and the mixture.
BANK: tuple[Entry, ...] = (
    Entry("ft-neox-1m-sentiment", "builtin/ft/neox-1m/sentiment", "neox-1m", "sentiment", default=True),
    Entry("it-neox-0.2m-mixture", "builtin/it/neox-0.2m/mixture", "neox-0.2m", "mixture"),
    Entry("it-neox-1m-mixture", "builtin/it/neox-1m/mixture", "neox-1m", "mixture"),
    Entry("ft-neox-1m-entailment", "builtin/ft/neox-1m/entailment", "neox-1m", "entailment", note=_NOT_LEARNED),
    Entry("ft-neox-1m-boolq", "builtin/ft/neox-1m/boolq", "neox-1m", "boolq", note=_NOT_LEARNED),
    Entry("ft-neox-1m-webnlg", "builtin/ft/neox-1m/webnlg", "neox-1m", "webnlg"),
    Entry("ft-neox-1m-wmt", "builtin/ft/neox-1m/wmt", "neox-1m", "wmt"),
    Entry("it-neox-4m-mixture", "builtin/it/neox-4m/mixture", "neox-4m", "mixture"),
)

#: The counterfactual tier: runs that differ the way users' what-if questions do (docs/benchmarks.md).
#: 44 runs on pool A (26 fit / 2 validation / 16 evaluation, enough for across-run scores) and 3 on
#: pool B, 64 test examples (13 per task in a mixture), loss (BLEU / ROUGE-L only at both ends, in each
#: run's summary). webnlg drop-group samples 96 of 200 (72 steps): without its largest template group 101
#: examples remain; its other designs sample 128, as every fine-tuning benchmark (bank v1 sampled 96 for all
#: three, which at v2's rate leaves too few steps to learn the task).
_CF = dict(runs=44, eval_runs=16, n_test=64, metric_every=0)
CF_BANK: tuple[Entry, ...] = (
    Entry("cf-it-neox-0.2m-mixture", "builtin/cf/it/neox-0.2m/mixture-dirichlet", "neox-0.2m", "mixture",
          design=DesignSpec("mixture", alpha=0.7), question="what if the task mixture were different?", **_CF),
    Entry("cf-it-neox-1m-mixture", "builtin/cf/it/neox-1m/mixture-dirichlet", "neox-1m", "mixture",
          design=DesignSpec("mixture", alpha=0.7), question="what if the task mixture were different?", **_CF),
    Entry("cf-it-neox-4m-mixture", "builtin/cf/it/neox-4m/mixture-dirichlet", "neox-4m", "mixture",
          design=DesignSpec("mixture", alpha=0.7), question="what if the task mixture were different?", **_CF),
    # Bank v1 dropped a label-and-template group: the run then learns "this template means the other label" and the
    # dropped group's test loss explodes (v2 at 2e-4: the mean test loss ends at 1.82x its start). Dropping a whole
    # template leaves both labels in every run. Without one template 91 examples remain (pool B), so runs sample 88.
    Entry("cf-ft-neox-1m-sentiment-drop", "builtin/cf/ft/neox-1m/sentiment-drop-group", "neox-1m", "sentiment", default=True, sample=88,
          design=DesignSpec("drop-group", group_by="template"), question="what if one kind of review (plain or quoted) were left out?", **_CF),
    Entry("cf-ft-neox-1m-sentiment-dup", "builtin/cf/ft/neox-1m/sentiment-duplicate", "neox-1m", "sentiment",
          design=DesignSpec("duplicate", k=16, m=4), question="what if 16 examples of one group were repeated 4 times?", **_CF),
    # Ordered by label and template, half the runs end on one label and forget the other (v2: ends at 0.74x, not
    # learned); ordered by template, every stretch holds both labels.
    Entry("cf-ft-neox-1m-sentiment-curriculum", "builtin/cf/ft/neox-1m/sentiment-curriculum", "neox-1m", "sentiment",
          design=DesignSpec("curriculum", group_by="template"), question="what if the kinds of review came one after another instead of shuffled?", **_CF),
    Entry("cf-ft-neox-1m-webnlg-drop", "builtin/cf/ft/neox-1m/webnlg-drop-group", "neox-1m", "webnlg", sample=96,
          design=DesignSpec("drop-group", group_by="template"), question="what if one kind of input (1, 2 or 3 triples) were left out?", **_CF),
    Entry("cf-ft-neox-1m-webnlg-dup", "builtin/cf/ft/neox-1m/webnlg-duplicate", "neox-1m", "webnlg",
          design=DesignSpec("duplicate", group_by="template", k=16, m=4), question="what if 16 examples of one kind were repeated 4 times?", **_CF),
    Entry("cf-ft-neox-1m-webnlg-curriculum", "builtin/cf/ft/neox-1m/webnlg-curriculum", "neox-1m", "webnlg",
          design=DesignSpec("curriculum", group_by="template"), question="what if the kinds of input came one after another?", **_CF),
)

#: Mislabel identification (GPTfluence's use case): 40% of a 128-example sentiment pool flipped,
#: fine-tuned from a base that already solves the task (as Pythia knew sentiment); the test
#: examples are the pool's own examples as trained, so self-influence is defined for every method.
MISLABEL_BANK: tuple[Entry, ...] = (
    Entry("mislabel-ft-neox-1m-sentiment", "builtin/mislabel/ft/neox-1m/sentiment", "neox-1m-sentiment", "sentiment",
          design=DesignSpec("label-noise", fraction=0.4), runs=24, shot=128, sample=96, unseen_runs=0, test_set="pool",
          question="which training labels are wrong?"),
)
ALL_BANK: tuple[Entry, ...] = BANK + CF_BANK + MISLABEL_BANK


def spec_of(e: Entry) -> RecordSpec:
    """The recording settings of a bank entry."""
    return RecordSpec(model=e.model, task=e.task, runs=e.runs, schedule=Schedule(lr=e.lr, sample=e.sample, epochs=e.epochs, warmup=e.warmup),
                      bench_id=e.id, design=e.design, eval_runs=e.eval_runs, n_test=e.n_test, shot=e.shot,
                      unseen_runs=e.unseen_runs, metric_every=e.metric_every, test_set=e.test_set)


def _with_groups(root: Path, e: Entry) -> None:
    """Add a mixture's test groups (its tasks) to a manifest recorded before the recorder wrote them."""
    from tdabench.formats.manifest import MANIFEST
    from tdabench.recorder.tasks import load_task

    obj = json.loads((root / MANIFEST).read_text(encoding="utf-8"))
    if e.task == "mixture" and "test_groups" not in obj:
        test_ids = set(json.loads(line)["id"] for line in (root / "runs").rglob("all_loss_trajectory.out").__next__().open())
        groups = {g: [i for i in ids if i in test_ids] for g, ids in load_task("mixture").test_groups().items()}
        obj["test_groups"] = {g: ids for g, ids in groups.items() if ids}
        (root / MANIFEST).write_text(json.dumps(obj, indent=1) + "\n", encoding="utf-8")


def headroom_of(bench: object) -> dict[str, float | None]:
    """The seen split's headroom: the mean trajectory of the fit runs against holding the value."""
    from tdabench.methods.zero_line import ZeroLine
    from tdabench.scores import headroom
    from tdabench.run.views import fit_data, split_view

    view = split_view(bench, "seen", "loss", seed=0)  # type: ignore[arg-type]
    mean = ZeroLine.fit(fit_data(bench, "loss", seed=0, with_model=False, cache_dir=None, device="cpu"))  # type: ignore[arg-type]
    return {k: (round(v, 6) if v is not None else None) for k, v in headroom(view.truth, mean.predict(view.query)).items()}


def properties_of(bench: object, root: Path) -> dict[str, object]:
    """The bank's targets on the fit runs (tdabench.recorder.properties), with the label
    accuracy, BLEU / ROUGE-L at both ends and the recording time per run."""
    from tdabench.recorder.properties import curve_properties, fit_curve, summarize

    fit = set(bench.split.fit_runs)  # type: ignore[attr-defined]
    runs = [r for r in bench.runs if r.name in fit]  # type: ignore[attr-defined]
    loss = np.stack([r.trajectories["loss"].values for r in runs])
    out: dict[str, object] = {
        "targets": curve_properties(loss).as_dict(),
        # What the benchmark asks a method to predict, at a glance (the pages draw it).
        "fit_curve": fit_curve(loss, runs[0].trajectories["loss"].steps.tolist()),
    }
    run_dirs = [p for p in (root / "runs").glob("*/*") if p.name in fit]
    out.update(summarize(run_dirs))
    for metric in ("bleu", "rougeL"):
        if metric in bench.trajectories:  # type: ignore[attr-defined]
            m = np.stack([r.trajectories[metric].values for r in runs])
            out.setdefault("text_scores", {"steps": [0, int(bench.runs[0].n_steps)]})[metric] = [  # type: ignore[attr-defined, index]
                round(float(m[:, :, 0].mean()), 4), round(float(m[:, :, -1].mean()), 4)]
    return out


def not_ranked(targets: dict[str, object], setting: str, note: str) -> str:
    """Why a benchmark is left out of the tier summaries ('' when it meets the bank's targets):
    a transient anywhere; for fine-tuning, a task not learned. ``note`` says why, where known."""
    from tdabench.recorder.properties import LEARNING_LIMIT, TRANSIENT_LIMIT

    fails = []
    if not targets["no_transient"]:
        fails.append(f"its mean test loss rises to {targets['max_over_step0']:.2f}x its step-0 value (target <= {TRANSIENT_LIMIT}x)")
    if setting == "ft" and not targets["learned"]:
        fails.append(f"it ends at {targets['final_over_step0']:.2f}x its step-0 value (target <= {LEARNING_LIMIT}x)")
    return "; ".join(fails) + (f": {note}" if fails and note else "")


def tier_of(e: Entry) -> str:
    """uniform, cf or mislabel."""
    return "cf" if e in CF_BANK else "mislabel" if e in MISLABEL_BANK else "uniform"


def pack_entry(e: Entry, root: Path) -> None:
    """Pack a finished recording and update the index."""
    from tdabench.formats.gptdynamics_load import load_benchmarks

    _with_groups(root, e)
    bench = load_benchmarks(root)[0]
    archive = ARCHIVES / f"{e.name}.tar.xz"
    sha = pack(root, archive)
    loss = bench.runs[0].trajectories["loss"].values
    curves = np.stack([r.trajectories["loss"].values for r in bench.runs])
    entries = [x for x in read_index() if x["id"] != e.id]
    mine = {
        "id": e.id, "archive": archive.name, "sha256": sha, "model": e.model, "task": e.task, "tier": tier_of(e),
        "design": e.design.name, "question": e.question,
        "description": bench.meta.description, "default": e.default, "n_runs": len(bench.runs),
        "n_eval_runs": len(bench.split.eval_runs), "n_unseen_runs": len(bench.split.unseen_train_runs),
        "n_steps": int(bench.runs[0].n_steps), "n_test": int(loss.shape[0]), "trajectories": list(bench.trajectories),
        "content_hash": bench.content_hash, "mean_test_loss_start": round(float(curves[:, :, 0].mean()), 4),
        "mean_test_loss_end": round(float(curves[:, :, -1].mean()), 4), "archive_bytes": archive.stat().st_size,
        "headroom": headroom_of(bench), **properties_of(bench, root), "learning_rate": e.lr, "warmup": e.warmup,
    }
    why = not_ranked(mine["targets"], bench.meta.setting, e.note)  # type: ignore[arg-type]
    if why:
        mine["not_ranked"] = why
    for metric in ("bleu", "rougeL"):
        if metric in bench.trajectories:
            m = np.stack([r.trajectories[metric].values for r in bench.runs])
            mine[f"mean_{metric}_start"], mine[f"mean_{metric}_end"] = round(float(m[:, :, 0].mean()), 4), round(float(m[:, :, -1].mean()), 4)
    entries.append(mine)
    order = [b.id for b in ALL_BANK]
    entries.sort(key=lambda x: order.index(x["id"]) if x["id"] in order else len(order))
    INDEX.write_text(json.dumps({"schema_version": 1, "benchmarks": entries}, indent=1) + "\n", encoding="utf-8")
    print(f"packed {e.id}: {archive.stat().st_size / 1e6:.2f} MB, loss {mine['mean_test_loss_start']} -> {mine['mean_test_loss_end']}, "
          f"headroom {mine['headroom']}")


def repack(e: Entry) -> None:
    """Pack a shipped benchmark again from its own archive (to add what the packer now adds)."""
    import tarfile
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        with tarfile.open(ARCHIVES / f"{e.name}.tar.xz", "r:xz") as tar:
            tar.extractall(tmp, filter="data")
        pack_entry(e, Path(tmp))


def docs_table() -> str:
    """The Markdown table of docs/benchmarks.md, from index.json."""
    rows = ["| id | model | task | steps | runs (A + B) | test | metrics | test loss start -> end | BLEU / ROUGE-L start -> end | archive | content hash |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for e in read_index():
        runs, unseen = e["n_runs"], e.get("n_unseen_runs", 3)
        rows.append(
            f"| `{e['id']}`{' (default)' if e['default'] else ''} | {e['model']} | {e['task']} | {e['n_steps']} | {runs - unseen} + {unseen} | "
            f"{e['n_test']} | {', '.join(e.get('trajectories', e.get('metrics', [])))} | {e['mean_test_loss_start']} -> {e['mean_test_loss_end']} | "
            + (f"{e['mean_bleu_start']} -> {e['mean_bleu_end']} / {e['mean_rougeL_start']} -> {e['mean_rougeL_end']} | " if "mean_bleu_start" in e else "- | ")
            + f"{int(e['archive_bytes']) / 1e6:.2f} MB, sha256 `{str(e['sha256'])[:16]}` | `{str(e['content_hash'])[7:23]}` |"
        )
    return "\n".join(rows)


def targets_table() -> str:
    """The Markdown table of the bank's measured properties (docs/benchmarks.md), from index.json."""
    rows = ["| benchmark | lr | step 1 / step 0 | max / step 0 | final / step 0 | targets | accuracy or BLEU / ROUGE-L, step 0 -> end | headroom | s / run |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for e in read_index():
        t = e.get("targets")
        if not isinstance(t, dict):
            continue
        setting = str(e["id"]).split("/")[-3]
        met = ("no transient" if t["no_transient"] else "**transient**") + (
            "" if setting != "ft" else (", learned" if t["learned"] else ", **not learned**"))
        ends = []
        for key in ("label_accuracy", "text_scores"):
            part = e.get(key) or {}
            ends += [f"{g} {v[0]:.3g} -> {v[1]:.3g}" for g, v in part.items() if g != "steps"]
        h = (e.get("headroom") or {}).get("reference_over_constant")
        rows.append(f"| `{e['id']}` | {e.get('learning_rate', float('nan')):g} | {t['step1_over_step0']:.3f} | {t['max_over_step0']:.3f} | "
                    f"{t['final_over_step0']:.3f} | {met} | {'; '.join(ends) or '-'} | {'-' if h is None else f'{h:.2f}'} | "
                    f"{e.get('run_seconds_per_run', float('nan')):.1f} |")
    return "\n".join(rows)


def search_table(path: Path) -> str:
    """The Markdown table of ``scripts/lr_search.py``'s grid points and choices (docs/benchmarks.md)."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    rows = ["| model | task | lr | max / step 0 | final / step 0 | accuracy at the end | chosen |", "| --- | --- | --- | --- | --- | --- | --- |"]
    for key, d in data.items():
        model, task = key.split(":")
        for lr, pt in sorted(d["points"].items(), key=lambda kv: float(kv[0])):
            acc = pt.get("label_accuracy", {})
            acc_s = "; ".join(f"{g} {v[-1]:.2f}" for g, v in acc.items() if g != "steps") or "-"
            rows.append(f"| {model} | {task} | {lr} | {pt['max_over_step0']:.3f} | {pt['final_over_step0']:.3f} | {acc_s} | "
                        f"{'**yes**' if float(lr) == float(d['chosen']) else ''} |")
    return "\n".join(rows)


def main() -> None:
    """Record (resuming) and pack the selected bank entries."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", action="append", default=[], choices=[e.name for e in ALL_BANK])
    ap.add_argument("--tier", action="append", default=[], choices=("uniform", "cf", "mislabel"), help="record only these tiers")
    ap.add_argument("--build-dir", type=Path, default=Path("bank_build"))
    ap.add_argument("--pretrain", action="store_true", help="regenerate the base checkpoints first")
    ap.add_argument("--pack-only", action="store_true")
    ap.add_argument("--repack", action="store_true", help="pack the shipped archives again (no recording, no build dir)")
    ap.add_argument("--device", default="cpu")
    add_executor_arguments(ap, "runs")
    ap.add_argument("--docs", action="store_true", help="print the docs/benchmarks.md tables of the packed bank and exit")
    ap.add_argument("--search", type=Path, help="with --docs: also the table of this scripts/lr_search.py result file")
    args = ap.parse_args()
    if args.docs:
        print(docs_table() + "\n\n" + targets_table())
        if args.search is not None:
            print("\n" + search_table(args.search))
        return
    if args.pretrain:
        from tdabench.recorder.models import SIZES, TUNED
        from tdabench.recorder.pretrain import pretrain, tune

        for size in SIZES:
            pretrain(size)
        for name in TUNED:
            tune(name)
    tiers = {"uniform": BANK, "cf": CF_BANK, "mislabel": MISLABEL_BANK}
    chosen = [e for t in (args.tier or tiers) for e in tiers[t]]
    for e in chosen:
        if args.only and e.name not in args.only:
            continue
        if args.repack:
            repack(e)
            continue
        root = args.build_dir / e.name
        if not args.pack_only:
            t0 = time.perf_counter()
            record(spec_of(e), root, device=args.device, executor=make_executor(args.executor, args.jobs, args.ray_address))
            print(f"recorded {e.name} in {time.perf_counter() - t0:.0f} s")
        if (root / "tdabench.json").is_file():
            pack_entry(e, root)


if __name__ == "__main__":
    main()
