"""Greedy answers to prompts, and their BLEU (sacrebleu, 0-100) and ROUGE-L (rouge-score, 0-1).

GPTDynamics sampled with top-p 0.95 and temperature 0.2; the recorder decodes greedily so
that a run's metric trajectory depends on its seed alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase


@dataclass(frozen=True)
class Prompts:
    """Left-padded prompts, ready to generate from.

    Attributes:
        input_ids: int64 [n, L].
        attention_mask: int64 [n, L].
        max_new_tokens: the longest reference answer in tokens, plus room for EOS.
    """

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    max_new_tokens: int


def encode_prompts(tokenizer: PreTrainedTokenizerBase, prompts: Sequence[str], references: Sequence[str], max_length: int = 256) -> Prompts:
    """Tokenize prompts, left-padded (generation appends on the right)."""
    ids = [p[-max_length:] for p in tokenizer(list(prompts), add_special_tokens=False)["input_ids"]]
    ref_len = max((len(r) for r in tokenizer(list(references), add_special_tokens=False)["input_ids"]), default=1)
    width = max((len(p) for p in ids), default=1)
    input_ids = torch.full((len(ids), width), int(tokenizer.pad_token_id), dtype=torch.long)
    am = torch.zeros((len(ids), width), dtype=torch.long)
    for i, p in enumerate(ids):
        input_ids[i, width - len(p) :] = torch.tensor(p)
        am[i, width - len(p) :] = 1
    return Prompts(input_ids, am, ref_len + 2)


def greedy_answers(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, prompts: Prompts, *, chunk: int = 128) -> list[str]:
    """The greedy continuation of every prompt, up to EOS, decoded and stripped."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    out: list[str] = []
    with torch.inference_mode():
        for lo in range(0, len(prompts.input_ids), chunk):
            ids = prompts.input_ids[lo : lo + chunk].to(device)
            am = prompts.attention_mask[lo : lo + chunk].to(device)
            # generate comes from GenerationMixin, which causal LMs add; transformers types PreTrainedModel without it.
            gen = model.generate(  # type: ignore[operator]
                input_ids=ids,
                attention_mask=am,
                do_sample=False,
                max_new_tokens=prompts.max_new_tokens,
                eos_token_id=tokenizer.eos_token_id,
                pad_token_id=tokenizer.pad_token_id,
            )
            new = gen[:, ids.shape[1] :]
            out += [t.strip() for t in tokenizer.batch_decode(new, skip_special_tokens=True)]
    model.train(was_training)
    return out


def text_scores(hypotheses: Sequence[str], references: Sequence[str]) -> dict[str, np.ndarray]:
    """Per-example sentence BLEU (0-100) and ROUGE-L F1 (0-1)."""
    from rouge_score import rouge_scorer
    from sacrebleu.metrics import BLEU

    bleu = BLEU(effective_order=True)  # sentence-level BLEU needs effective order
    rouge = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    refs = [r.strip() for r in references]
    return {
        "bleu": np.array([bleu.sentence_score(h, [r]).score for h, r in zip(hypotheses, refs)]),
        "rougeL": np.array([rouge.score(r, h)["rougeL"].fmeasure for h, r in zip(hypotheses, refs)]),
    }
