"""Hashed bag-of-words features: a tiny, dependency-free text encoder."""

from __future__ import annotations

import re
import zlib
from collections.abc import Sequence

import numpy as np

_WORD = re.compile(r"\w+")


def hashed_features(texts: Sequence[str], dim: int) -> np.ndarray:
    """float64 [n, dim], L2-normalized counts of words hashed into ``dim`` signed buckets.

    crc32 (not Python's salted ``hash``) keeps features identical across processes.
    """
    out = np.zeros((len(texts), dim))
    for row, text in enumerate(texts):
        for word in _WORD.findall(text.lower()):
            h = zlib.crc32(word.encode())
            out[row, h % dim] += 1.0 if (h >> 31) & 1 else -1.0
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    return out / np.where(norms > 0, norms, 1.0)


def nearest(queries: np.ndarray, pool: np.ndarray, k: int) -> np.ndarray:
    """int [n_queries, k]: rows of ``pool`` with the highest cosine similarity (ties by row)."""
    sims = queries @ pool.T
    k = min(k, pool.shape[0])
    return np.argsort(-sims, axis=1, kind="stable")[:, :k]
