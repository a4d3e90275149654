"""``nudge simulate``: a throwaway instance (in-memory database, every installed plugin) for the engine's simulation.

The engine never builds an app (:mod:`server.engine.simulate` is handed one); this is where one is built.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from .app import create_app
from .engine.simulate import SIMULATION_SETTINGS, throwaway_instance
from .engine.simulate import simulate as run


def simulation_app(config: dict[str, Any] | None = None) -> Any:
    """A throwaway app for a simulation; *config* adds or overrides settings (``HOME`` must be given)."""
    return create_app({**SIMULATION_SETTINGS, **(config or {})})


def simulate(
    sources: list[tuple[str, str]],
    timeline: list[str],
    until: str | None = None,
    trace: bool = False,
    config: dict[str, Any] | None = None,
    timeline_name: str = "timeline",
    funnels: list[dict[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """Run *sources* against *timeline* (named *timeline_name* in errors); return the effects in time order
    (and every rule's funnel into *funnels*, when given)."""
    with throwaway_instance(partial(create_app, web=False), config) as app:
        return run(app, sources, timeline, until=until, trace=trace, timeline_name=timeline_name, funnels=funnels)


__all__ = ["simulate", "simulation_app"]
