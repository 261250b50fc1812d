"""Analysis and ablation tables as DataFrames and CSV (`analyze --csv`, `ablate --csv`),
the `--quiet` flags, and the progress callable of the ablation."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from typer.testing import CliRunner

from influence_patterns.analysis import ablation_frame, analysis_frame
from influence_patterns.analysis.ablation import AblationOptions, ablate_run, summarise
from influence_patterns.analysis.frames import ABLATION_COLUMNS, ANALYSIS_COLUMNS
from influence_patterns.cli import app


runner = CliRunner()


def test_ablation_frame_from_a_summary():
    per = [{"index": i, "task": "t", "method": m, "q": 1.0, "q_kept": k, "q_removed": 0.5, "nodes": 3}
           for i in range(4) for m, k in (("pattern", 1.0), ("stay", -1.0))]
    summary = summarise(per, {"pattern": "pattern", "stay": "control"}, resamples=50)
    df = ablation_frame(summary)
    assert list(df.columns) == list(ABLATION_COLUMNS)
    methods = df[df["kind"] == "method"]
    assert len(methods) == 2 * 7  # two methods × seven metrics (no interchange)
    row = methods[(methods["method"] == "stay") & (methods["metric"] == "accuracy_retained")].iloc[0]
    assert row["value"] == 0.0 and row["group"] == "control" and row["nodes"] == 3 and row["n"] == 4
    row = methods[(methods["method"] == "pattern") & (methods["metric"] == "qoi_retained")].iloc[0]
    assert (row["value"], row["ci_low"], row["ci_high"]) == (1.0, 1.0, 1.0)
    comps = df[df["kind"] == "comparison"]
    assert set(comps["method"]) == {"stay"} and len(comps) == 7
    acc = comps[comps["metric"] == "accuracy_retained"].iloc[0]
    assert acc["value"] == pytest.approx(1.0) and acc["verdict"] == "too few instances"


def test_analyze_csv(run_dir, tmp_path):
    csv, js = tmp_path / "a.csv", tmp_path / "a.json"
    result = runner.invoke(app, ["analyze", str(run_dir), "--csv", str(csv), "--json", str(js)])
    assert result.exit_code == 0, result.output
    assert f"Wrote {csv}" in result.output
    df = pd.read_csv(csv)
    assert list(df.columns) == list(ANALYSIS_COLUMNS)
    data = json.loads(js.read_text())
    a = data["runs"][0]
    mine = df[df["run"] == str(run_dir)]
    acc = mine[mine["metric"] == "accuracy"].iloc[0]
    assert acc["value"] == pytest.approx(a["accuracy"]) and acc["n"] == 4
    ratio = mine[(mine["metric"] == "skip_to_head_ratio") & mine["layer"].isna()].iloc[0]
    est = a["skip_to_head_ratio_ci"]
    if est["value"] is not None:
        assert ratio["value"] == pytest.approx(est["value"])
        assert (ratio["ci_low"], ratio["ci_high"]) == pytest.approx(tuple(est["ci"]))
    layers = mine[(mine["metric"] == "skip_share") & mine["layer"].notna()]
    assert sorted(layers["layer"]) == [1.0, 2.0]
    top = mine[(mine["metric"] == "consistency_top_frequency") & (mine["role"] == "subject")].iloc[0]
    assert top["value"] == pytest.approx(a["consistency"]["subject"]["top_frequency"])
    assert (df["run"] == "pooled").any()
    assert analysis_frame(data).shape == df.shape  # the DataFrame is the CSV


def test_ablate_csv_and_quiet(run_dir, tmp_path):
    csv, js = tmp_path / "abl.csv", tmp_path / "abl.json"
    result = runner.invoke(app, ["ablate", str(run_dir), "--methods", "pattern,stay", "--csv", str(csv),
                                 "--json", str(js), "--quiet", "--resamples", "50"])
    assert result.exit_code == 0, result.output
    assert f"Wrote {csv}" in result.output and "ablating" not in result.output
    df = pd.read_csv(csv)
    data = json.loads(js.read_text())
    assert list(df.columns) == list(ABLATION_COLUMNS)
    for m in data["methods"]:
        for metric in ("accuracy_retained", "qoi_retained", "comprehensiveness", "accuracy_after_removal"):
            row = df[(df["kind"] == "method") & (df["method"] == m["name"]) & (df["metric"] == metric)]
            assert len(row) == 1
            if m[metric]["value"] is not None:
                assert row.iloc[0]["value"] == pytest.approx(m[metric]["value"])
    assert ((df["method"] == "(no node kept)") & (df["group"] == "floor")).sum() == 2
    # pattern − stay, every metric (accuracy retained only for a model above chance, the
    # recovered metrics only where the model is above the floor)
    no_headroom = sum(h["ci"][0] <= 0 for h in data["headroom"].values())
    assert (df["kind"] == "comparison").sum() == 7 - (0 if data["above_chance"] else 1) - no_headroom


def test_ablate_csv_into_a_directory_is_one_line(run_dir, tmp_path):
    result = runner.invoke(app, ["ablate", str(run_dir), "--methods", "pattern", "--csv", str(tmp_path),
                                 "--quiet", "--resamples", "20"])
    assert result.exit_code == 2 and "cannot write" in result.output and "Traceback" not in result.output


def test_ablation_progress_counts_instances_times_methods(run_dir, tmp_path):
    steps: list[int] = []
    ablate_run(run_dir, AblationOptions(methods=("pattern", "stay"), batch_size=3, resamples=20), save=False,
               progress=steps.append)
    assert sum(steps) == 4 * 2 and steps == [3, 3, 1, 1]


def test_report_quiet_flag(run_dir, tmp_path):
    md = tmp_path / "r.md"
    result = runner.invoke(app, ["report", str(run_dir), "--out", str(md), "--quiet", "--resamples", "50"])
    assert result.exit_code == 0, result.output
    assert md.is_file()


def test_null_and_stay_share_progress_count_instances(run_dir, checkpoint):  # noqa: F811
    from influence_patterns import Explainer
    from influence_patterns.analysis.analyze import stay_skip_share
    from influence_patterns.analysis.null import null_records
    from influence_patterns.runs import Run

    run = Run.open(run_dir)
    ex = Explainer.from_pretrained(str(checkpoint), device="cpu", steps=4)
    steps: list[int] = []
    null = null_records(ex, run.records, batch_size=3, progress=steps.append)
    assert steps == [3, 1] and [r.index for r in null] == [r.index for r in run.records]
    assert all(r.roles == o.roles and r.task == o.task for r, o in zip(null, run.records))
    steps.clear()
    stay_skip_share(ex, run.records[:2], progress=steps.append)
    assert steps == [1, 1]


def test_analyze_quiet_prints_no_step_messages(run_dir):
    result = runner.invoke(app, ["analyze", str(run_dir), "--stay-share", "--quiet", "--resamples", "20"])
    assert result.exit_code == 0, result.output
    assert "skip share on steps that stay" not in result.output
    loud = runner.invoke(app, ["analyze", str(run_dir), "--stay-share", "--resamples", "20"])
    assert "skip share on steps that stay" in loud.output
