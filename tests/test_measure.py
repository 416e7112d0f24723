"""Peak memory per unit (tdabench/run/measure.py, docs/formats.md "Peak memory")."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from tdabench.run.measure import Measure, hwm_bytes, reset_hwm
from tdabench.run.registry import Registry
from tdabench.run.views import fit_data, split_view
from tdabench.run.worker import FitTask, MethodJob, run_method
from tdabench.sources.synthetic import simfluence_benchmark


def _allocate(mb: int) -> None:
    a = np.ones(mb * 2**17)  # float64: 8 bytes each, touched
    a[::512] += 1.0
    del a


def test_peak_after_a_larger_block_is_not_zero() -> None:
    with Measure():
        _allocate(300)
    with Measure() as m:
        _allocate(40)
    assert 35 < m.peak_mb < 120, m.peak_mb


def test_nested_measure_keeps_the_outer_peak() -> None:
    with Measure() as outer:
        _allocate(120)
        with Measure() as inner:
            _allocate(20)
    assert 15 < inner.peak_mb < 80
    assert outer.peak_mb > 110, outer.peak_mb


def test_child_process_counts() -> None:
    # In a fresh interpreter: the kernel keeps one peak over all of a process's children ever
    # waited for, so a larger child of an earlier test in this process would hide this one.
    child = "import numpy as np; a = np.ones(80 * 2**17); a[::512] += 1"
    code = ("import subprocess, sys\nfrom tdabench.run.measure import Measure\n"
            f"with Measure() as m:\n    subprocess.run([sys.executable, '-c', {child!r}], check=True)\nprint(m.peak_mb)\n")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    assert float(out.strip().splitlines()[-1]) > 80, out


@pytest.mark.skipif(not sys.platform.startswith("linux") or not reset_hwm(), reason="needs Linux's resettable VmHWM")
def test_linux_uses_the_kernel_mark() -> None:
    with Measure() as m:
        _allocate(10)
    assert m.method == "hwm" and hwm_bytes() > 0


def test_several_methods_in_one_worker_each_report_a_peak() -> None:
    """After a large unit, each later unit in the same process still reports its own peak."""
    bench, _ = simfluence_benchmark(n_train=120, n_test=60, sample=64, batch=4, epochs=2, noise=0.002, seed=0)
    data = fit_data(bench, "loss", seed=0, with_model=False, cache_dir=None, device="cpu")
    queries = {"seen": split_view(bench, "seen", "loss", seed=0).query}
    reg = Registry()
    reg.load([])
    with Measure():
        _allocate(400)  # an earlier, larger unit: freed memory the allocator may keep
    peaks = {}
    for name in ("simfluence-linear", "simfluence-additive", "cluster-datamodel", "simfluence-linear"):
        spec = reg.method(name)
        job = MethodJob(spec, spec.config_cls(), (FitTask("all-test", data, queries),))
        (fitted,) = run_method(job)
        assert fitted.error is None, fitted.error
        peaks[name] = max(fitted.peak_mb, fitted.simulated["seen"].peak_mb)
        assert 0.05 < peaks[name] < 2000, (name, peaks[name])
    print(peaks)
