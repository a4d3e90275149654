"""Machine opens and clicks (``machine: true`` in the event's props) leave rules alone unless a rule asks.

A proxy's prefetch or a scanner's click is recorded like a person's, flagged by the tracking endpoints, so
it can be counted apart. By default it starts no journey, reaches no goal and ends no ``wait for``: only a
trigger condition, goal or ``wait for`` whose ``where`` reads ``event.machine`` sees it (``when email.clicked
and event.machine == true``, or ``… and (event.machine == true or event.machine == false)`` for both). The same
holds for ``did email.clicked within …`` in a condition: it counts people's events unless its ``where`` asks.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..sqlwhere import reads_prop

__all__ = ["asks_machine", "is_machine", "reacts"]


def is_machine(props: Mapping[str, Any] | None) -> bool:
    """Whether an event with *props* was made by a machine (an image proxy, a link scanner)."""
    return bool((props or {}).get("machine"))


def asks_machine(tree: Any) -> bool:
    """Whether a compiled condition *tree* (docs/plan.md) reads ``event.machine``."""
    return reads_prop(tree, "machine")


def reacts(tree: Any, props: Mapping[str, Any] | None) -> bool:
    """Whether a trigger, goal or ``wait for`` with condition *tree* may react to an event with *props*."""
    return not is_machine(props) or asks_machine(tree)
