"""The record ``tdabench simulate`` writes: a what-if on a user's plan, in the common envelope."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from tdabench.results.record import Record
from tdabench.scores import Score


@dataclass(frozen=True, kw_only=True)
class WhatIfResult(Record):
    """One what-if: the envelope of :class:`~tdabench.results.record.Record` and:

    Attributes:
        plan: the plan file's name (its path stays on the machine that ran it).
        plan_hash: sha256 of the plan file's bytes (part of the key).
        trajectory: what was predicted.
        steps, test_ids: the predicted steps and test examples.
        verified: whether the benchmark's model was trained on the plan; ``scores`` then
            measure the prediction against what happened, and ``reference_scores`` the zero
            line's (the batch-blind reference) against the same truth.
    """

    KIND: ClassVar[str] = "whatif"
    SCHEMA: ClassVar[str] = "tdabench.whatif/2"

    plan: str
    plan_hash: str
    trajectory: str = "loss"
    steps: tuple[int, ...] = ()
    test_ids: tuple[int, ...] = ()
    verified: bool = False
    reference_scores: Mapping[str, Score] = field(default_factory=dict)

    def _extra_to_dict(self, d: dict[str, Any]) -> dict[str, Any]:
        d["config"], d["steps"], d["test_ids"] = dict(self.config), list(self.steps), list(self.test_ids)
        d["reference_scores"] = {k: s.to_dict() for k, s in self.reference_scores.items()}
        return d

    @classmethod
    def _extra_from_dict(cls, body: dict[str, Any]) -> dict[str, Any]:
        body["reference_scores"] = {k: Score.from_dict(v) for k, v in (body.get("reference_scores") or {}).items()}
        body["steps"] = tuple(int(s) for s in body.get("steps", ()))
        body["test_ids"] = tuple(int(i) for i in body.get("test_ids", ()))
        return body
