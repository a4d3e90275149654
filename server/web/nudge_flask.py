"""Nudge's Flask app class: what every app of a process compiles once and shares.

Building an app and rendering its first pages are mostly compiling: Werkzeug writes and compiles two small Python
functions for every URL rule it binds (the builders behind ``url_for``, ~190 rules an app), and Jinja compiles each
page template the first time an app renders it. Paid once an app, that is most of the time a process start, a
``nudge`` command or a test's app takes. Here rules of the same shape share one builder, and templates are compiled
once a process for each template source and environment configuration (:class:`ProcessTemplateCode`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from flask import Flask
from jinja2 import BytecodeCache, Environment
from jinja2.bccache import Bucket
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


def _configuration(env: Environment) -> tuple[Any, ...]:
    """What a template's compiled code depends on besides its source: the environment's kind, syntax, whitespace
    handling, extensions, filters and tests (a template using a filter another app lacks must not get that app's
    code)."""
    return (
        type(env),
        env.block_start_string,
        env.block_end_string,
        env.variable_start_string,
        env.variable_end_string,
        env.comment_start_string,
        env.comment_end_string,
        env.line_statement_prefix,
        env.line_comment_prefix,
        env.trim_blocks,
        env.lstrip_blocks,
        env.newline_sequence,
        env.keep_trailing_newline,
        env.optimized,
        env.is_async,
        getattr(env.autoescape, "__qualname__", env.autoescape),
        getattr(env.finalize, "__qualname__", env.finalize),
        tuple(sorted(env.extensions)),
        tuple(sorted(env.filters)),
        tuple(sorted(env.tests)),
    )


class ProcessTemplateCode(BytecodeCache):
    """Jinja's compiled templates kept in memory for the process, shared by its apps. Jinja checks a template's source
    against the checksum stored with its code, so an edited template is compiled again."""

    def __init__(self) -> None:
        self._code: dict[tuple[str, tuple[Any, ...]], bytes] = {}

    def load_bytecode(self, bucket: Bucket) -> None:
        code = self._code.get((bucket.key, _configuration(bucket.environment)))
        if code is not None:
            bucket.bytecode_from_string(code)

    def dump_bytecode(self, bucket: Bucket) -> None:
        self._code[(bucket.key, _configuration(bucket.environment))] = bucket.bytecode_to_string()

    def clear(self) -> None:
        self._code.clear()


class NudgeFlask(Flask):
    """Nudge's Flask app: its rules (the static files' one too) are :class:`SharedBuilderRule`, its templates' code
    is kept for the process (:class:`ProcessTemplateCode`)."""

    url_rule_class = SharedBuilderRule
    jinja_options = {**Flask.jinja_options, "bytecode_cache": ProcessTemplateCode()}
