"""The tokenizer of the built-in models: byte-level BPE trained offline on the bank's tasks.

Byte-level, so it encodes any text (a user's own task too) without unknown tokens. It is
trained once by :func:`train_tokenizer` and shipped as ``tdabench/bank/tokenizer/``;
training is deterministic, so the file can be regenerated and compared.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from transformers import PreTrainedTokenizerFast

EOS, PAD = "<|endoftext|>", "<|padding|>"
VOCAB_SIZE = 2048
BANK_TOKENIZER_DIR = Path(__file__).resolve().parents[1] / "bank" / "tokenizer"


def train_tokenizer(texts: Iterable[str], vocab_size: int = VOCAB_SIZE) -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer (GPT-NeoX style) trained on ``texts``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[EOS, PAD],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(list(texts), trainer=trainer)
    return wrap(tok)


def wrap(tok: object) -> PreTrainedTokenizerFast:
    """A ``tokenizers.Tokenizer`` as a transformers tokenizer with EOS and padding set."""
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=EOS, bos_token=EOS, pad_token=PAD, unk_token=None)


def bank_tokenizer() -> PreTrainedTokenizerFast:
    """The shipped tokenizer of the built-in models."""
    return PreTrainedTokenizerFast.from_pretrained(str(BANK_TOKENIZER_DIR))


def bank_texts(tasks_dir: Path) -> list[str]:
    """Every text of every built-in task, in a fixed order: the tokenizer's training data."""
    import json

    texts: list[str] = []
    for path in sorted(tasks_dir.glob("*/*.jsonl")):
        with open(path, encoding="utf-8") as fh:
            texts += [json.loads(line)["input"] for line in fh if line.strip()]
    return texts


if __name__ == "__main__":  # python -m tdabench.recorder.tokenizer regenerates the shipped tokenizer
    tokenizer = train_tokenizer(bank_texts(BANK_TOKENIZER_DIR.parent / "tasks"))
    tokenizer.save_pretrained(str(BANK_TOKENIZER_DIR))
