"""URL rules whose builders are compiled once a process, not once an app.

Werkzeug writes and compiles two small Python functions for every rule it binds (the URL builders behind
``url_for``): for the ~190 rules of an app that is most of the time the app takes to build, paid again by every
process start, every ``nudge`` command and every test's app. A builder depends only on the rule's parsed parts,
so rules of the same shape (the same rule in another app of this process) share the compiled function.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from flask import Flask
from werkzeug.routing import Rule


class SharedBuilderRule(Rule):
    """A :class:`werkzeug.routing.Rule` that reuses the builder compiled for an identical rule earlier."""

    _builders: ClassVar[dict[tuple[Any, ...], Callable[..., tuple[str, str]]]] = {}

    def _compile_builder(self, append_unknown: bool = True) -> Callable[..., tuple[str, str]]:
        if self.defaults:  # a default of a rule's variable is folded into its builder: compiled for this rule alone
            return super()._compile_builder(append_unknown)
        # the builder is an unbound function of the parts (the caller binds it to the rule): shared by equal parts
        key = (tuple(self._trace), append_unknown)
        builder = self._builders.get(key)
        if builder is None:
            builder = self._builders[key] = super()._compile_builder(append_unknown)
        return builder


class NudgeFlask(Flask):
    """Nudge's Flask app: its rules (the static files' one too) are :class:`SharedBuilderRule`."""

    url_rule_class = SharedBuilderRule
