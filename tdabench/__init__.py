"""tdabench: a benchmark harness for training-data-attribution methods that simulate training runs.

The public API: the data model (:mod:`tdabench.data`), the Simulator contract
(:mod:`tdabench.simulator`), hook markers (:data:`hookimpl`), and the runner.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("tdabench")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

from tdabench.hookspecs import hookimpl  # noqa: E402

__all__ = ["__version__", "hookimpl"]
