"""`make bench`'s runner: every module in bench/ registers with it, and the one table renders from rows (no timing)."""

import inspect
import json
import math
import re
import sys
import tempfile

import pytest

from bench import run
from bench.table import Row, failed, ratio_at_least, render, under


def test_every_bench_module_registers_with_the_runner():
    names = run.discover()
    assert {
        "bench_admin_pages",
        "bench_contacts_page",
        "bench_dsl",
        "bench_e2e",
        "bench_import",
        "bench_matching",
        "bench_signin",
        "bench_steps",
        "bench_waits",
    } <= set(names)
    for name in names:
        module = run.load(name)
        assert list(inspect.signature(module.rows).parameters) == ["full"], name


def test_a_module_without_rows_is_refused_by_name(tmp_path, monkeypatch):
    (tmp_path / "bench_broken.py").write_text('"""Measures nothing."""\n')
    monkeypatch.setattr(run, "HERE", tmp_path)
    with pytest.raises(run.NotABench, match=r"there is no bench/bench_missing\.py") as missing:
        run.load("bench_missing")
    assert "bench_broken" in str(missing.value)  # the error lists what there is
    monkeypatch.setitem(sys.modules, "bench.bench_broken", type(sys)("bench.bench_broken"))
    with pytest.raises(run.NotABench, match=r"bench/bench_broken.py has no rows\(full\) function"):
        run.load("bench_broken")


def test_the_table_renders_from_rows():
    rows = [
        under("admin page: Dashboard", 42.5, "ms", 0.5, "GET /admin/login", 300),
        under("admin page: Rules", 420.0, "ms", 0.5, "GET /admin/login", 300),
        ratio_at_least("matching: 10,000 rules", 600, "events/s", 650, "the same with 10 rules", 0.5),
        failed("bench_waits", "the bench exited with status 1"),
    ]
    text = render(rows, "Machine: 2 cores")
    lines = text.splitlines()
    assert lines[0] == "Machine: 2 cores"
    assert [c.strip() for c in lines[1].strip("|").split("|")] == [
        "path",
        "figure",
        "baseline (same run)",
        "ratio",
        "target",
        "verdict",
    ]
    dashboard = [c.strip() for c in lines[3].strip("|").split("|")]
    assert dashboard == ["admin page: Dashboard", "42.5 ms", "0.50 ms (GET /admin/login)", "85x", "< 300 ms", "met"]
    assert lines[4].rstrip(" |").endswith("MISSED")
    assert "0.923x" in lines[5] and ">= 0.5x baseline" in lines[5] and lines[5].rstrip(" |").endswith("met")
    assert "ERROR: the bench exited with status 1" in lines[6]
    assert lines[-1] == "2 of 4 figures meet their target; 2 do not (MISSED or ERROR)"
    assert len({len(line) for line in lines[1:-1]}) == 1  # the columns line up


def test_rows_survive_the_json_between_processes():
    row = under("contacts page: tag vip", 12.0, "ms", 0.2, "primary-key range scan", 200)
    back = Row.from_dict(json.loads(json.dumps(row.as_dict())))
    assert back == row and back.verdict == "met" and back.ratio == pytest.approx(60)
    broken = Row.from_dict(json.loads(json.dumps(failed("bench_x", "boom").as_dict())))
    assert broken.verdict == "ERROR" and math.isnan(broken.figure)


def test_a_failing_bench_becomes_an_error_row_and_the_run_is_saved(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(run, "RESULTS", tmp_path)
    monkeypatch.setattr(
        run,
        "run_one",
        lambda name, full: (
            [failed(name, "the bench exited with status 1")]
            if name == "bench_waits"
            else [under(f"{name}: figure", 1.0, "ms", 2.0, "base", 5)]
        ),
    )
    assert run.main(["bench_dsl", "bench_waits"]) == 1
    out = capsys.readouterr().out
    assert "| bench_waits" in out and "ERROR" in out and "1 of 2 figures meet their target" in out
    saved = json.loads((tmp_path / "last.json").read_text())
    assert [r["verdict"] for r in saved["rows"]] == ["met", "ERROR"] and saved["machine"]["cores"] >= 1


def test_the_table_header_shows_cores_load_and_an_fsync_rate(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(run, "RESULTS", tmp_path)
    monkeypatch.setattr(run, "FSYNC_SECONDS", 0.05)  # a short measurement: the figure is not under test, its place is
    monkeypatch.setattr(run, "run_one", lambda name, full: [under(f"{name}: figure", 1.0, "ms", 2.0, "base", 5)])
    assert run.main(["bench_dsl"]) == 0
    header = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("Machine:"))
    match = re.match(
        r"Machine: (\d+) cores, load (\d+(?:\.\d+)?) (\d+(?:\.\d+)?) \(1 and 5 min\), ([\d,]+) fsyncs/s \((.+?)\), ",
        header,
    )
    assert match, header
    assert int(match[1]) >= 1 and int(match[4].replace(",", "")) > 0 and match[5] == tempfile.gettempdir()
    saved = json.loads((tmp_path / "last.json").read_text())["machine"]
    assert saved["cores"] == int(match[1]) and saved["fsync"] == int(match[4].replace(",", "")) and saved["load"]


def test_the_fsync_rate_is_measured_on_the_given_directory_and_leaves_nothing(tmp_path):
    assert run.fsync_rate(str(tmp_path), seconds=0.02) > 0
    assert list(tmp_path.iterdir()) == []
