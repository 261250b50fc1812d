"""Hostile inputs to `ablate`, `analyze` and `report` (issue 11): each gives the right
result or one line naming the problem with exit 2, and nothing is written or lost."""

from __future__ import annotations

import json
import shutil

import pytest
from typer.testing import CliRunner

from influence_patterns.cli import app

from conftest import save_checkpoint

runner = CliRunner()


def one_line_error(result, *words: str) -> None:
    out = result.output.strip()
    assert result.exit_code == 2, result.output
    assert "Traceback" not in out and len(out.splitlines()) == 1, out
    for w in words:
        assert w in out, out


@pytest.fixture
def fresh_run(run_dir, tmp_path):
    """A copy of the run that a test may damage."""
    out = tmp_path / "run"
    shutil.copytree(run_dir, out)
    for f in out.glob("ablation*.json"):
        f.unlink()
    return out


# --- ablate ---------------------------------------------------------------------------


@pytest.mark.parametrize("kind,kw,words", [
    ("mlm", {"layers": 3, "heads": 4, "hidden": 16}, ("3 layers", "2")),
    ("classification", {}, ("classification",)),
    ("mlm", {"seed": 7}, ("weights", "ablate with the run's model")),  # same shape, other weights (fingerprint)
])
def test_ablate_with_another_model_is_refused(fresh_run, tmp_path, kind, kw, words):
    other = save_checkpoint(tmp_path / "other", kind, **kw)
    js = tmp_path / "abl.json"
    result = runner.invoke(app, ["ablate", str(fresh_run), "--model", str(other), "--methods", "pattern",
                                 "--json", str(js)])
    one_line_error(result, *words)
    assert not js.exists() and not (fresh_run / "ablation.json").exists()


def test_ablate_failed_json_write_keeps_the_earlier_result(fresh_run, tmp_path):
    assert runner.invoke(app, ["ablate", str(fresh_run), "--methods", "pattern"]).exit_code == 0
    before = (fresh_run / "ablation.json").read_bytes()
    target = tmp_path / "a_directory"
    target.mkdir()
    result = runner.invoke(app, ["ablate", str(fresh_run), "--methods", "pattern,stay", "--json", str(target)])
    one_line_error(result, "cannot write", "directory")
    assert (fresh_run / "ablation.json").read_bytes() == before  # --json is written first; it failed
    assert not list(fresh_run.glob(".ablation*"))  # no temporary file left behind


def test_ablate_batch_size_zero(fresh_run):
    one_line_error(runner.invoke(app, ["ablate", str(fresh_run), "--batch-size", "0"]), "--batch-size")


@pytest.mark.parametrize("args,words", [
    (["--methods", "nosuch"], ("unknown ablation method 'nosuch'",)),
    (["--reference", "nosuch"], ("unknown reference 'nosuch'", "baseline")),
    (["--removal", "nosuch"], ("unknown removal 'nosuch'",)),
])
def test_ablate_bad_options_write_nothing(fresh_run, tmp_path, args, words):
    js = tmp_path / "abl.json"
    one_line_error(runner.invoke(app, ["ablate", str(fresh_run), *args, "--json", str(js)]), *words)
    assert not js.exists() and not (fresh_run / "ablation.json").exists()


def test_ablate_run_without_results(tmp_path):
    (tmp_path / "empty").mkdir()
    js = tmp_path / "abl.json"
    one_line_error(runner.invoke(app, ["ablate", str(tmp_path / "empty"), "--json", str(js)]), "results")
    (tmp_path / "empty" / "results.jsonl").write_text("")
    one_line_error(runner.invoke(app, ["ablate", str(tmp_path / "empty"), "--json", str(js)]), "no results")
    assert not js.exists() and not (tmp_path / "empty" / "ablation.json").exists()


# --- analyze --------------------------------------------------------------------------------


def _append(run, line: str) -> None:
    with open(run / "results.jsonl", "a") as f:
        f.write(line + "\n")


def test_analyze_empty_row(fresh_run):
    _append(fresh_run, "{}")
    one_line_error(runner.invoke(app, ["analyze", str(fresh_run)]), "line 5", "index")


def test_analyze_unknown_role_lists_the_roles(fresh_run):
    one_line_error(runner.invoke(app, ["analyze", str(fresh_run), "--role", "nosuch"]), "nosuch", "subject", "all")


def test_analyze_index_out_of_range_and_duplicate(fresh_run):
    rows = [json.loads(x) for x in (fresh_run / "results.jsonl").read_text().splitlines()]
    bad = dict(rows[0], index=99)
    _append(fresh_run, json.dumps(bad))
    one_line_error(runner.invoke(app, ["analyze", str(fresh_run)]), "index 99", "0..3")
    lines = (fresh_run / "results.jsonl").read_text().splitlines()[:-1]
    (fresh_run / "results.jsonl").write_text("\n".join(lines + [json.dumps(rows[1])]) + "\n")
    one_line_error(runner.invoke(app, ["analyze", str(fresh_run)]), "index 1 appears twice")


def test_analyze_unknown_null(fresh_run):
    one_line_error(runner.invoke(app, ["analyze", str(fresh_run), "--null", "nosuch"]), "unknown null", "random-init")


def test_analyze_json_into_a_directory(fresh_run, tmp_path):
    one_line_error(runner.invoke(app, ["analyze", str(fresh_run), "--json", str(tmp_path)]), "cannot write")


# --- report -----------------------------------------------------------------------------------


def test_report_same_run_twice_is_counted_once(fresh_run, tmp_path):
    md = tmp_path / "r.md"
    result = runner.invoke(app, ["report", str(fresh_run), str(fresh_run), "--out", str(md)])
    assert result.exit_code == 0, result.output
    assert "given twice; counted once" in result.output
    assert "n per task | sva/prep: 4 |" in md.read_text()


@pytest.mark.parametrize("content,words", [
    ("{not json", ("not valid JSON",)),
    ("[]", ("not an ablation result",)),
    (json.dumps({"methods": [{"name": "pattern", "comprehensiveness": 0.1}]}), ("older format",)),
    (json.dumps({"methods": [], "per_instance": [{"index": 0, "method": "pattern", "q": "x", "q_kept": 1,
                                                  "q_removed": 1}]}), ("not a number",)),
])
def test_report_with_a_corrupt_ablation(fresh_run, tmp_path, content, words):
    (fresh_run / "ablation.json").write_text(content)
    md = tmp_path / "r.md"
    one_line_error(runner.invoke(app, ["report", str(fresh_run), "--out", str(md)]), "ablation.json", *words)
    assert not md.exists()


def test_report_out_is_a_directory(fresh_run, tmp_path):
    one_line_error(runner.invoke(app, ["report", str(fresh_run), "--out", str(tmp_path)]), "cannot write")


def test_library_errors_name_parameters_not_flags(run_dir):
    from influence_patterns.analysis.ablation import AblationOptions
    from influence_patterns.analysis.analyze import AnalyzeOptions
    from influence_patterns.errors import InputError

    with pytest.raises(InputError, match="^batch_size must be at least 1$"):
        AblationOptions(batch_size=0).validate()
    with pytest.raises(InputError, match="^resamples must be between 1 and 100,000, got 0$"):
        AnalyzeOptions(resamples=0).validate()


def test_ablate_with_the_runs_model_moved_elsewhere_is_accepted(fresh_run, checkpoint, tmp_path):  # noqa: F811
    moved = tmp_path / "moved"
    shutil.copytree(checkpoint, moved)
    result = runner.invoke(app, ["ablate", str(fresh_run), "--model", str(moved), "--methods", "pattern"])
    assert result.exit_code == 0, result.output
    assert json.loads((fresh_run / "ablation.json").read_text())["settings"]["model_used"]
