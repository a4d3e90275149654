"""``nudge check`` and ``nudge fmt`` through click, registered into a local group, with no instance around."""

from __future__ import annotations

from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from server.cli import check, lang

GOOD = 'rule "Welcome"\nwhen member.joined then\n  send email welcome\nend\n'
UGLY = 'when form.submitted and tag != "vip" then send email welcome; wait 3d; send sms reminder\n'
BROKEN = "when member.joined then\n  tag vip\n  wait 3\n"


@pytest.fixture
def cli() -> click.Group:
    @click.group()
    def group() -> None:
        """A stand-in for `nudge`."""

    lang.register(group)
    check.register(group)
    return group


@pytest.fixture(autouse=True)
def no_instance(tmp_path, monkeypatch):
    """Run from an empty folder: no instance is found, so the installed plugins give the names."""
    monkeypatch.chdir(tmp_path)


def run(cli, *args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_register_adds_check_and_fmt(cli):
    assert {"check", "fmt"} <= set(cli.commands)


def test_check_clean_files_prints_a_summary_and_exits_0(cli, tmp_path):
    a = write(tmp_path, "a.nudge", GOOD)
    b = write(tmp_path, "b.nudge", GOOD.replace("Welcome", "Other") + UGLY)
    result = run(cli, "check", str(a), str(b))
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[-1] == "2 files, 3 rules: no problems (1 warning)"
    assert "warning: `send sms` in a rule without `quiet hours`" in result.output


def test_check_without_warnings(cli, tmp_path):
    result = run(cli, "check", str(write(tmp_path, "a.nudge", GOOD.replace("member.joined", "form.submitted"))))
    assert result.exit_code == 0
    assert result.output == "1 file, 1 rule: no problems\n"


def test_check_warns_on_an_event_nothing_raises(cli, tmp_path):
    result = run(cli, "check", str(write(tmp_path, "a.nudge", GOOD)))
    assert result.exit_code == 0
    assert 'a.nudge:2:6: warning: nothing raises event "member.joined"' in result.output
    assert result.output.endswith("1 file, 1 rule: no problems (1 warning)\n")


def test_check_reports_every_error_with_source_and_caret_and_exits_1(cli, tmp_path):
    path = write(tmp_path, "bad.nudge", BROKEN)
    result = run(cli, "check", str(path))
    assert result.exit_code == 1
    assert f"{path}:2:7: expected a quoted string, found `vip`\n  tag vip\n      ^~~\nhint: " in result.output
    assert f"{path}:3:8: expected a duration such as `3d`" in result.output
    assert "1 file, 0 rules: 2 errors, 0 warnings" in result.output


def test_check_reports_checker_errors(cli, tmp_path):
    path = write(tmp_path, "names.nudge", "when member.joined then\n  send emial welcome\n")
    result = run(cli, "check", str(path))
    assert result.exit_code == 1
    assert f'{path}:2:8: unknown channel "emial" — did you mean "email"?' in result.output


def test_check_expands_folders(cli, tmp_path):
    write(tmp_path, "rules/a.nudge", GOOD)
    write(tmp_path, "rules/deep/b.nudge", GOOD.replace("Welcome", "B"))
    write(tmp_path, "rules/notes.txt", "not rules")
    result = run(cli, "check", str(tmp_path / "rules"))
    assert result.exit_code == 0
    assert result.output.startswith("2 files, 2 rules: no problems")


def test_check_uses_templates_next_to_the_file(cli, tmp_path):
    write(tmp_path, "templates/email/welcome.subject", "Hi")
    write(tmp_path, "templates/email/welcome.html", "<p>Hi</p>")
    write(tmp_path, "templates/webhook/billing_sync.toml", 'url = "https://example.com"')
    path = write(
        tmp_path,
        "rules.nudge",
        "when member.joined then\n  send email welcome\n"
        "  send email welcom\n  send webhook billing_sync\n  send sms anything\n",
    )
    result = run(cli, "check", str(path))
    assert result.exit_code == 1
    headlines = [line for line in result.output.splitlines() if line.startswith(str(path)) and "warning:" not in line]
    assert headlines == [f'{path}:3:14: unknown email template "welcom" — did you mean "welcome"?']


def test_check_templates_option_points_elsewhere(cli, tmp_path):
    write(tmp_path, "elsewhere/email/hello.txt", "Hi")
    path = write(tmp_path, "rules.nudge", "when member.joined then send email goodbye")
    result = run(cli, "check", "--templates", str(tmp_path / "elsewhere"), str(path))
    assert result.exit_code == 1
    assert 'unknown email template "goodbye"' in result.output


def test_check_reports_invalid_utf8(cli, tmp_path):
    path = tmp_path / "bin.nudge"
    path.write_bytes(b'when a.b then note "\xff"\n')
    result = run(cli, "check", str(path))
    assert result.exit_code == 1
    assert f"{path}:1:21: invalid UTF-8 (byte 0xff)" in result.output


def test_fmt_prints_canonical_text(cli, tmp_path):
    result = run(cli, "fmt", str(write(tmp_path, "a.nudge", UGLY)))
    assert result.exit_code == 0
    assert result.output == (
        'when form.submitted and tag != "vip" then\n  send email welcome\n  wait 3d\n  send sms reminder\nend\n'
    )


def test_fmt_check_lists_files_that_would_change(cli, tmp_path):
    good = write(tmp_path, "good.nudge", GOOD)
    ugly = write(tmp_path, "ugly.nudge", UGLY)
    result = run(cli, "fmt", "--check", str(good), str(ugly))
    assert result.exit_code == 1
    assert result.output == f"{ugly}\n"
    assert ugly.read_text() == UGLY
    assert run(cli, "fmt", "--check", str(good)).exit_code == 0


def test_fmt_write_rewrites_in_place(cli, tmp_path):
    ugly = write(tmp_path, "ugly.nudge", UGLY)
    result = run(cli, "fmt", "--write", str(ugly))
    assert result.exit_code == 0
    assert ugly.read_text().startswith('when form.submitted and tag != "vip" then\n  send email welcome\n')
    assert run(cli, "fmt", "--check", str(ugly)).exit_code == 0


def test_fmt_refuses_broken_files(cli, tmp_path):
    broken = write(tmp_path, "broken.nudge", BROKEN)
    result = CliRunner().invoke(cli, ["fmt", "--write", str(broken)])
    assert result.exit_code == 1
    assert "expected a quoted string" in result.output
    assert broken.read_text() == BROKEN


def test_fmt_check_and_write_are_exclusive(cli, tmp_path):
    path = write(tmp_path, "a.nudge", GOOD)
    result = CliRunner().invoke(cli, ["fmt", "--check", "--write", str(path)])
    assert result.exit_code == 2
    assert "either --check or --write" in result.output


def test_fmt_module_needs_only_click_and_dsl():
    import ast as python_ast

    tree = python_ast.parse(Path(lang.__file__).read_text())
    roots = set()
    for node in python_ast.walk(tree):
        if isinstance(node, python_ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, python_ast.ImportFrom) and node.level == 0:
            roots.add(node.module.split(".")[0])
    assert roots <= {"__future__", "pathlib", "click", "dsl"}
