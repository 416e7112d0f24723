"""The context object: settings and the plugin manager of one tdabench session.

There are no globals: the CLI builds one :class:`Context` and passes it down; tests build
their own.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from tdabench.run.registry import Registry


def default_cache_dir() -> Path:
    """``TDABENCH_CACHE`` when set to a folder, else ``~/.cache/tdabench``.

    An empty (or blank) ``TDABENCH_CACHE=`` counts as unset: it never means the working directory.
    """
    env = os.environ.get("TDABENCH_CACHE", "").strip()
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "tdabench"


@dataclass
class Context:
    """One session's settings and registry.

    Attributes:
        data_dir: a local GPTDynamics copy (``--data-dir`` / ``TDABENCH_GPTDYNAMICS``).
        cache_dir: where methods cache derived data (embeddings, gradients), the bank is extracted
            and cell locks live (``TDABENCH_CACHE``; empty or unset: ``~/.cache/tdabench``).
        device: torch device for methods that use torch.
        seed: the seed passed to every simulator.
        progress: show progress bars (on a terminal).
        registry: methods and benchmark sources, filled from plugins.
    """

    data_dir: Path | None = None
    cache_dir: Path = field(default_factory=default_cache_dir)
    device: str = "cpu"
    seed: int = 0
    progress: bool = True
    registry: Registry = field(default_factory=Registry)

    @classmethod
    def create(
        cls,
        *,
        data_dir: str | Path | None = None,
        plugins: list[str] | None = None,
        autoload: bool | None = None,
        **kwargs: object,
    ) -> Context:
        """A context with plugins loaded (entry points unless disabled, then ``-p`` modules).

        ``plugins`` holds ``-p`` values: ``MODULE`` loads a module as a plugin, ``no:NAME``
        blocks the plugin (entry point) named NAME.
        """
        if data_dir is None and os.environ.get("TDABENCH_GPTDYNAMICS"):
            data_dir = os.environ["TDABENCH_GPTDYNAMICS"]
        ctx = cls(data_dir=Path(data_dir) if data_dir else None, **kwargs)  # type: ignore[arg-type]
        if autoload is None:
            autoload = os.environ.get("TDABENCH_DISABLE_PLUGIN_AUTOLOAD", "") in ("", "0")
        ctx.registry.load(plugins or [], autoload=autoload)
        return ctx
