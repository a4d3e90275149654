"""The split arms a stats counter is kept under (``stat_counters.arm``): made by the rollup, read by the funnel.

A rule version with one split keys its counters by the name of the arm a journey took there (``"B"``; "" before
the split). With two splits or more, the arm taken at a later split must not hide the one taken at an earlier
split (a goal reached after the second split counts for the arm taken at the first as well), so the key holds
every arm taken so far: one character per split of the version's plan, in the plan's order, the arm's name
(``A`` to ``Z``) where the journey took that split and ``-`` where it has not (``"B-"`` after the first split,
``"BA"`` after both). The column holds 64 characters: a plan's splits past its 64th have no place in the key, and
their arms are not compared. A send's outcomes (sent, clicked, conversions …) count under the arms taken before
the send: a split taken after it changed nothing the message did.

Counters of a version with two splits or more stored before these keys (docs/stats.md, "Split arms") hold the name
of the last arm the journey had taken: they are read as the arm of the split nearest before their step.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: in a key of several splits: a split the journey has not taken (or not yet)
NOT_TAKEN = "-"
#: the splits of a plan a key has room for (``stat_counters.arm`` holds 64 characters)
MAX_SPLITS = 64


class ArmKeys:
    """How the counters of one rule version key their split arms, from its plan (docs/stats.md, "Split arms")."""

    def __init__(self, plan: Mapping[str, Any] | None) -> None:
        ops = (plan or {}).get("steps", [])
        #: the plan's step ids by position (``pc``)
        self.steps = [str(op.get("id", pc)) for pc, op in enumerate(ops)]
        self._pc = {ident: pc for pc, ident in enumerate(self.steps)}
        #: the split steps' ids, in the plan's order
        self.splits = [self.steps[pc] for pc, op in enumerate(ops) if op.get("op") == "split"]
        self._index = {ident: index for index, ident in enumerate(self.splits)}
        #: the length of a key of several splits; 0: the plan has one split or none (its keys are arm names)
        self.width = min(len(self.splits), MAX_SPLITS) if len(self.splits) > 1 else 0

    def took(self, key: str, data: Mapping[str, Any]) -> str:
        """The key of a journey keyed *key* once it took a split: the data of its trace line (``arm``, and the
        split's ``step`` id or, in lines written before it was recorded, its ``pc``)."""
        name = str(data.get("arm", ""))
        if not self.width:
            return name
        index = self._split_at(data)
        if index is None or index >= self.width or len(name) != 1 or name == NOT_TAKEN:
            return key  # no place for it in the key (a split past the 64th, or not of this plan): the rest holds
        chars = list(key) if len(key) == self.width else [NOT_TAKEN] * self.width
        chars[index] = name
        return "".join(chars)

    def _split_at(self, data: Mapping[str, Any]) -> int | None:
        step, pc = data.get("step"), data.get("pc")
        if isinstance(step, str):
            return self._index.get(step)
        if isinstance(pc, int) and 0 <= pc < len(self.steps):
            return self._index.get(self.steps[pc])
        return None

    def before(self, key: str, step: str) -> str:
        """The arms of *key* taken before step *step* (all of them for a step not in the plan): those a message
        that step sent was sent under; "" when none."""
        at = self._pc.get(step)
        if at is None or not key or not self.splits:
            return key
        if not self.width:
            return key if self._pc[self.splits[0]] < at else ""
        if len(key) != self.width:
            return key  # stored before these keys: as it was
        kept = "".join(c if self._pc[ident] < at else NOT_TAKEN for c, ident in zip(key, self.splits, strict=False))
        return kept if kept.strip(NOT_TAKEN) else ""

    def read(self, key: str, step: str) -> tuple[str, dict[str, str]]:
        """What a counter of step *step* kept under *key* says: the arm of the latest split taken (its step's row
        shows the counter under it), and the arm taken at each split (split step id → arm name)."""
        if not key:
            return "", {}
        if not self.width:
            return key, ({self.splits[0]: key} if self.splits else {})
        if len(key) == self.width:
            taken = {ident: c for c, ident in zip(key, self.splits, strict=False) if c != NOT_TAKEN}
            return key.rstrip(NOT_TAKEN)[-1:], taken
        # stored before these keys: the last arm taken, at the split nearest before the step (a step not in the
        # plan, such as the end: the last split)
        at = self._pc.get(step, len(self.steps))
        nearest = [ident for ident in self.splits if self._pc[ident] <= at]
        return key, ({nearest[-1]: key} if nearest else {})

    def kept(self, split: str) -> bool:
        """Whether the keys hold the arms of split *split* (one of the plan's first :data:`MAX_SPLITS` splits)."""
        return self._index.get(split, 0) < MAX_SPLITS


__all__ = ["MAX_SPLITS", "NOT_TAKEN", "ArmKeys"]
