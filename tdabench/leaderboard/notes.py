"""The note column of a leaderboard row: why a cell has no scores, or what a reader should know
about how its method chose its setting.

A method that chooses a setting from a grid of candidates on the validation runs (the gradient
and library methods' damping) reports each candidate's validation MSE in its fit info as
``variant_val_mse``, in the grid's order (a ``-residual`` form under ``inner``). A choice at either
end of a grid of three or more means the validation optimum may lie beyond it: the score is the
grid's, not necessarily the method's best, and the option that sets the grid is the fix.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from tdabench.leaderboard.aggregate import Row


def grid_edge(fit_info: Mapping[str, Any]) -> str:
    """``"validation chose the last of 6 grid candidates"`` when the choice sits at an end of a grid
    of three or more; ``""`` otherwise (no grid, an interior choice, or unreadable values)."""
    inner = fit_info.get("inner")
    info = inner if isinstance(inner, Mapping) and "variant_val_mse" not in fit_info else fit_info
    mses = info.get("variant_val_mse")
    if not isinstance(mses, (list, tuple)) or len(mses) < 3:
        return ""
    try:
        values = np.asarray(mses, dtype=float)
    except (TypeError, ValueError):
        return ""
    if not np.isfinite(values).any():
        return ""
    i, n = int(np.nanargmin(np.where(np.isfinite(values), values, np.nan))), len(values)
    if 0 < i < n - 1:
        return ""
    return f"validation chose the {'first' if i == 0 else 'last'} of {n} grid candidates (at the grid edge)"


def row_note(row: Row) -> str:
    """The row's note: why it is n/a or failed, or, for an ok row, a setting chosen at a grid's edge."""
    r = row.result
    if r.status == "n/a":
        return f"n/a: {r.reason}"
    if r.status == "failed":
        return f"failed: {r.error}"
    return grid_edge(r.fit_info or {})
