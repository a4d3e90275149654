"""One table says how each kind of plan step runs, in the interpreter and in the set-based path (or that only the
interpreter runs it): a step the compiler can emit cannot be missing from it, nor a set-based implementation
be left out of it."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import dsl
import dsl.compiler
from server.engine import bulk, runtime

from ..dsl.test_cases import VOCABULARY


def compiler_ops() -> set[str]:
    """Every ``"op"`` the compiler writes into a plan (read from its source, so a new one is found at once)."""
    tree = ast.parse(Path(dsl.compiler.__file__).read_text(encoding="utf-8"))
    return {
        value.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Dict)
        for key, value in zip(node.keys, node.values, strict=True)
        if isinstance(key, ast.Constant) and key.value == "op" and isinstance(value, ast.Constant)
    }


def test_every_step_the_compiler_can_emit_has_its_entry():
    ops = compiler_ops()
    assert {"send", "wait", "branch", "plugin", "stop", "exit"} <= ops  # the reading above works
    assert ops == set(runtime.STEPS)


def test_every_construct_of_the_language_compiles_to_steps_the_table_knows():
    source = (Path(__file__).parents[1] / "dsl" / "cases" / "ok_every_construct.nudge").read_text()
    built = dsl.build(source, "every.nudge", VOCABULARY)
    assert built.plan is not None, [d.message for d in built.diagnostics]
    steps = {step["op"] for rule in built.plan["rules"] for step in rule["steps"]}
    assert steps and steps <= set(runtime.STEPS)


def test_each_step_runs_set_based_or_is_marked_interpreter_only():
    group_steps = {
        name: step.group for name, step in runtime.STEPS.items() if step.group is not runtime.INTERPRETER_ONLY
    }
    assert set(group_steps) == {"send", "wait", "exit", "tag", "score"}
    # every set-based step function of bulk is reached through the table, and only through it
    functions = {
        fn
        for name, fn in inspect.getmembers(bulk, inspect.isfunction)
        if fn.__module__ == bulk.__name__ and list(inspect.signature(fn).parameters) == ["group", "op"]
    }
    assert functions == set(group_steps.values())
    assert all(runtime.STEPS[name].ends_group for name in ("wait", "exit"))
