"""One torch intra-op thread for a block: shared by fixtures, tests and benchmarks."""

from __future__ import annotations

from contextlib import AbstractContextManager

from tdabench.methods.guards import torch_threads


def one_thread() -> AbstractContextManager[None]:
    """Run the block on one torch thread (what each of 2 workers gets on 2 cores), then restore."""
    return torch_threads(1)
