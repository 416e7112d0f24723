"""Models the recorder trains: built-in tiny GPT-NeoX sizes, or any causal LM.

The built-in sizes share the Pythia architecture (GPT-NeoX: rotary embeddings on a quarter
of each head, parallel residual, untied input and output embeddings) and the bank's
byte-level tokenizer. Each starts from a base checkpoint pre-trained briefly on held-out
data of the task family (:mod:`tdabench.recorder.pretrain`); attention is "eager" because
gradient methods take per-example gradients with ``torch.func.vmap``, which SDPA breaks.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, GPTNeoXConfig, GPTNeoXForCausalLM, PreTrainedModel, PreTrainedTokenizerBase
from transformers.utils import logging as hf_logging

from tdabench.errors import TDABenchError, UnknownNameError


@dataclass(frozen=True)
class Size:
    """One rung of the built-in ladder."""

    hidden: int
    layers: int
    heads: int


#: name -> shape; parameter counts with the bank tokenizer: about 0.2M, 1.1M and 4.1M.
SIZES: dict[str, Size] = {
    "neox-0.2m": Size(hidden=48, layers=2, heads=4),
    "neox-1m": Size(hidden=128, layers=3, heads=4),
    "neox-4m": Size(hidden=256, layers=4, heads=4),
}
MAX_POSITIONS = 256
BASE_DIR = Path(__file__).resolve().parents[1] / "bank" / "models"


@dataclass(frozen=True)
class TunedBase:
    """A base checkpoint trained further on one task's held-out pre-training examples, so that
    it already solves the task (as the published Pythia models knew sentiment before the
    mislabel experiment); made by :func:`tdabench.recorder.pretrain.tune`."""

    size: str
    task: str
    steps: int = 400
    batch_size: int = 16
    lr: float = 3e-3


#: name -> how it was made; stored beside the sizes under ``bank/models/<name>``.
TUNED: dict[str, TunedBase] = {"neox-1m-sentiment": TunedBase("neox-1m", "sentiment")}


def builtin_config(size: str, vocab_size: int) -> GPTNeoXConfig:
    """The GPT-NeoX config of a built-in size (no dropout, so a run depends on its seed only)."""
    s = SIZES[size]
    return GPTNeoXConfig(
        vocab_size=-(-vocab_size // 64) * 64,
        hidden_size=s.hidden,
        num_hidden_layers=s.layers,
        num_attention_heads=s.heads,
        intermediate_size=4 * s.hidden,
        max_position_embeddings=MAX_POSITIONS,
        rotary_pct=0.25,  # type: ignore[call-arg]  # a legacy name transformers still converts; its typed signature omits it
        use_parallel_residual=True,
        hidden_dropout=0.0,
        attention_dropout=0.0,
        tie_word_embeddings=False,
        bos_token_id=0,
        eos_token_id=0,
        pad_token_id=1,
    )


def fresh_model(size: str, vocab_size: int, seed: int) -> GPTNeoXForCausalLM:
    """A randomly initialized built-in model (the starting point of pre-training)."""
    torch.manual_seed(seed)
    cfg = builtin_config(size, vocab_size)
    cfg._attn_implementation = "eager"
    return GPTNeoXForCausalLM(cfg)


def n_params(model: torch.nn.Module) -> int:
    """Number of parameters."""
    return sum(p.numel() for p in model.parameters())


@dataclass
class LoadedModel:
    """A model ready to fine-tune, with where it came from.

    Attributes:
        name: the model's name in run directories (``neox-1m``, or a path's last part).
        source: a directory ``from_pretrained`` loads it from (copied to the benchmark).
        model: the model in float32 on ``device``.
        tokenizer: its tokenizer, with a pad token.
    """

    name: str
    source: Path | str
    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase


def load_model(spec: str, device: str = "cpu") -> LoadedModel:
    """A built-in size (its base checkpoint), a local directory, or a hub name."""
    source: Path | str  # a directory, or a hub name
    if spec in SIZES or spec in TUNED:
        path = BASE_DIR / spec
        if not (path / "config.json").is_file():
            raise TDABenchError(f"the base checkpoint of {spec} is missing at {path}; run `python scripts/record_bank.py --pretrain`")
        name, source = spec, path
    elif Path(spec).expanduser().exists():
        source = Path(spec).expanduser()
        if not (source / "config.json").is_file():
            raise TDABenchError(f"{source}: not a model directory (no config.json)")
        name = source.resolve().name
    elif "/" in spec and not spec.startswith((".", "/", "~")):
        name, source = spec.rsplit("/", 1)[-1], spec  # a hub name: works where a hub is reachable
    else:
        raise UnknownNameError("model", spec, [*SIZES, *TUNED])
    try:
        with quiet_loading():  # loaded once per run, per method, per worker: a bar each is noise
            tok = AutoTokenizer.from_pretrained(str(source))
            model = AutoModelForCausalLM.from_pretrained(str(source), attn_implementation="eager", dtype=torch.float32)
    except OSError as exc:
        raise TDABenchError(f"cannot load model {spec!r}: {str(exc).splitlines()[0]}") from None
    if tok.pad_token is None:  # Pythia and GPT-2 tokenizers ship without one
        tok.pad_token = tok.eos_token
    # transformers types ``to`` as a decorated method that wants the model first (it binds it).
    return LoadedModel(name, source, model.to(device), tok)  # type: ignore[arg-type]


@contextmanager
def quiet_loading() -> Iterator[None]:
    """Hide transformers' weight-loading bar (a run reloads the base model: one bar per run is noise)."""
    was = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was:
            hf_logging.enable_progress_bar()
