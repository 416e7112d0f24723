"""Generate the built-in tasks deterministically, with FLAN-style instruction prompts.

Each task mirrors one GPTDynamics task; every example is ``(context, target)`` where
``context`` is the prompt ending in ``Answer:`` and ``target`` the answer with a leading
space. Example files are written as GPTDynamics JSON Lines (``id``, ``input``, ``context``)
by :func:`write_bank_tasks`; the shipped files under ``tdabench/bank/tasks`` were made by it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import numpy as np

from tdabench.recorder import lexicon as lx

_T = TypeVar("_T")

Example = tuple[str, str, str]  # (context, target, template: how the prompt was built)
#: Examples per part of every task: pool A + pool B of training ids, test, pretraining.
N_TRAIN, N_TEST, N_PRETRAIN = 400, 128, 1000
#: Distinct seeds per part, so the parts are independent draws.
PART_SEEDS = {"train": 11, "test": 23, "pretrain": 37}


def _pick(rng: np.random.Generator, seq: tuple[_T, ...]) -> _T:
    return seq[int(rng.integers(len(seq)))]


def _sentiment(rng: np.random.Generator) -> Example:
    a1, a2 = rng.choice(len(lx.FILM_ASPECTS), 2, replace=False)
    label = bool(rng.integers(2))
    words = lx.POSITIVE if label else lx.NEGATIVE
    if rng.random() < 0.5:  # one clause
        review = f"{lx.FILM_ASPECTS[a1]} is {_pick(rng, lx.INTENSIFIERS)}{_pick(rng, words)}"
    else:  # "X is bad, but Y is good": the clause after "but" carries the label
        other = lx.NEGATIVE if label else lx.POSITIVE
        review = f"{lx.FILM_ASPECTS[a1]} is {_pick(rng, other)}, but {lx.FILM_ASPECTS[a2]} is {_pick(rng, lx.INTENSIFIERS)}{_pick(rng, words)}"
    template = int(rng.integers(2))
    if template == 0:
        ctx = f"Review: {review}.\nIs this movie review positive or negative?\nAnswer:"
    else:
        ctx = f"\"{review}.\"\nWhat is the sentiment of this review? OPTIONS: negative, positive\nAnswer:"
    return ctx, " positive" if label else " negative", ("review", "quoted")[template]


def _a(word: str) -> str:
    """``word`` with its indefinite article."""
    return ("an " if word[0] in "aeiou" else "a ") + word


def _person(rng: np.random.Generator) -> str:
    return f"{_pick(rng, lx.FIRST_NAMES)} {_pick(rng, lx.LAST_NAMES)}"


def _entailment(rng: np.random.Generator) -> Example:
    name, job = _person(rng), _pick(rng, lx.OCCUPATIONS)
    city = _pick(rng, lx.CITIES)[0]
    verb, non_verb = _pick(rng, lx.PAST_VERBS)
    obj, adj, day = _pick(rng, lx.OBJECTS), _pick(rng, lx.OBJECT_ADJECTIVES), _pick(rng, lx.DAYS)
    premise = f"{name}, {_a(job)} from {city}, {verb} {_a(adj)} {obj} {day}."
    entailed = bool(rng.integers(2))
    kind = int(rng.integers(3))
    if entailed:
        hyp = (f"{name} {verb} {_a(obj)}.", f"{name} is {_a(job)}.", f"{name} comes from {city}.")[kind]
    else:
        other_city = next(c for c in (_pick(rng, lx.CITIES)[0] for _ in range(50)) if c != city)
        other_job = next(j for j in (_pick(rng, lx.OCCUPATIONS) for _ in range(50)) if j != job)
        hyp = (f"{name} {non_verb} {_a(obj)}.", f"{name} is {_a(other_job)}.", f"{name} comes from {other_city}.")[kind]
    ctx = f"{premise}\nBased on the paragraph above, can we conclude that \"{hyp}\"? OPTIONS: yes, no\nAnswer:"
    return ctx, " yes" if entailed else " no", ("action", "occupation", "origin")[kind]


def _boolq(rng: np.random.Generator) -> Example:
    city, country, river = _pick(rng, lx.CITIES)
    f1, f2 = rng.choice(len(lx.KNOWN_FOR), 2, replace=False)
    passage = f"{city} is a city in {country} on the river {river}. It is known for its {lx.KNOWN_FOR[f1]} and its {lx.KNOWN_FOR[f2]}."
    answer = bool(rng.integers(2))
    kind = int(rng.integers(3))
    if kind == 0:
        other = next(r for r in (_pick(rng, lx.CITIES)[2] for _ in range(50)) if r != river)
        question = f"is {city} on the river {river if answer else other}"
    elif kind == 1:
        other = next(c for c in (_pick(rng, lx.CITIES)[1] for _ in range(50)) if c != country)
        question = f"is {city} in {country if answer else other}"
    else:
        others = [k for i, k in enumerate(lx.KNOWN_FOR) if i not in (f1, f2)]
        thing = lx.KNOWN_FOR[f1 if rng.random() < 0.5 else f2] if answer else _pick(rng, tuple(others))
        question = f"is {city} known for its {thing}"
    ctx = f"{passage}\nQuestion: {question}? Answer yes or no.\nAnswer:"
    return ctx, " yes" if answer else " no", ("river", "country", "known-for")[kind]


def _webnlg(rng: np.random.Generator) -> Example:
    name, job = _person(rng), _pick(rng, lx.OCCUPATIONS)
    city, country, _ = _pick(rng, lx.CITIES)
    employer = _pick(rng, lx.COMPANIES)
    n = int(rng.integers(1, 4))
    triples = [f"{name} | birthPlace | {city}"]
    if n >= 2:
        triples.append(f"{name} | occupation | {job}")
    if n >= 3:
        triples.append(f"{name} | employer | {employer}")
    if n == 1 and rng.random() < 0.5:
        triples.append(f"{city} | country | {country}")
        text = f"{name} was born in {city}, {country}."
    elif n == 1:
        text = f"{name} was born in {city}."
    elif n == 2:
        text = f"{name} was born in {city} and works as {_a(job)}."
    else:
        text = f"{name}, who was born in {city}, works as {_a(job)} for {employer}."
    ctx = "Generate a sentence about this data: " + " ; ".join(triples) + "\nAnswer:"
    return ctx, " " + text, f"triples-{len(triples)}"


_ARTICLES = {("nom", "m"): ("der", "er"), ("nom", "f"): ("die", "e"), ("nom", "n"): ("das", "es"),
             ("acc", "m"): ("den", "en"), ("acc", "f"): ("die", "e"), ("acc", "n"): ("das", "es")}


def _np_de(rng: np.random.Generator, case: str, animate: bool) -> tuple[str, str]:
    """A noun phrase (English, German); after the definite article adjectives decline weakly."""
    choices = [n for n in lx.NOUNS_DE if (n[0] in lx.ANIMATE_DE) == animate or not animate]
    en, de, g = choices[int(rng.integers(len(choices)))]
    art = _ARTICLES[(case, g)][0]
    if rng.random() < 0.6:
        adj_en, adj_de = _pick(rng, lx.ADJECTIVES_DE)
        ending = "en" if (case, g) == ("acc", "m") else "e"
        return f"the {adj_en} {en}", f"{art} {adj_de}{ending} {de}"
    return f"the {en}", f"{art} {de}"


def _wmt(rng: np.random.Generator) -> Example:
    subj_en, subj_de = _np_de(rng, "nom", animate=True)
    obj_en, obj_de = _np_de(rng, "acc", animate=False)
    verb_en, verb_de = _pick(rng, lx.VERBS_DE)
    adv_en, adv_de = _pick(rng, lx.ADVERBS_DE)
    de = f"{subj_de} {verb_de}{' ' + adv_de if adv_de else ''} {obj_de}."
    en = f"{subj_en} {verb_en} {obj_en}{' ' + adv_en if adv_en else ''}."
    ctx = f"Translate to English:\n{de[0].upper() + de[1:]}\nAnswer:"
    return ctx, " " + en[0].upper() + en[1:], "adverb" if adv_en else "plain"


#: name -> (generator, GPTDynamics task it mirrors, kind)
GENERATORS: dict[str, tuple[Callable[[np.random.Generator], Example], str, str]] = {
    "sentiment": (_sentiment, "sst2", "classification"),
    "entailment": (_entailment, "rte", "classification"),
    "boolq": (_boolq, "boolq", "classification"),
    "webnlg": (_webnlg, "webnlg", "generation"),
    "wmt": (_wmt, "wmt16_de_en", "generation"),
}


def generate(task: str, part: str, n: int) -> list[Example]:
    """``n`` distinct examples of ``task`` for ``part`` (train/test/pretrain), deterministic."""
    gen = GENERATORS[task][0]
    rng = np.random.default_rng([PART_SEEDS[part], list(GENERATORS).index(task)])
    out: list[Example] = []
    seen: set[str] = set()
    for _ in range(n * 50):
        ex = gen(rng)
        if ex[0] not in seen:
            seen.add(ex[0])
            out.append(ex)
            if len(out) == n:
                return out
    raise RuntimeError(f"task {task}: could not draw {n} distinct examples")


def write_bank_tasks(root: Path) -> None:
    """Write ``root/<task>/{train,test,pretrain}.jsonl`` for every task; prompts never repeat across parts."""
    for task in GENERATORS:
        parts = {"train": N_TRAIN, "test": N_TEST, "pretrain": N_PRETRAIN}
        taken: set[str] = set()
        for part, n in parts.items():
            exs = [e for e in generate(task, part, n + 200) if e[0] not in taken][:n]
            if len(exs) < n:
                raise RuntimeError(f"task {task}: not enough distinct {part} examples")
            taken |= {e[0] for e in exs}
            lines = [json.dumps({"id": i, "input": c + t, "context": c, "template": k}) for i, (c, t, k) in enumerate(exs)]
            (root / task).mkdir(parents=True, exist_ok=True)
            (root / task / f"{part}.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")


if __name__ == "__main__":  # python -m tdabench.recorder.taskgen regenerates the shipped files
    write_bank_tasks(Path(__file__).resolve().parents[1] / "bank" / "tasks")
