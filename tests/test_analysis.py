"""Analyses: skip vs heads and consistency on hand-written rows (exact numbers), the
correlation, and the `analyze` / `report` commands on tiny real runs."""

from __future__ import annotations

import itertools
import json
import math
import re

import pytest
from typer.testing import CliRunner

from influence_patterns.analysis.analyze import analyze_rows, analyze_runs
from influence_patterns.analysis.consistency import entropy, key_text, pattern_key
from influence_patterns.analysis.correlation import consistency_accuracy_correlation
from influence_patterns.analysis.report import findings
from influence_patterns.viz.report_html import markdown
from influence_patterns.cli import app
from influence_patterns.result import Pattern
from influence_patterns.runs import RunRecord

from conftest import ANALYSIS_TOKENS as TOKENS, ROLES, pattern, row, run_args, save_checkpoint  # noqa: F401


runner = CliRunner()

def test_skip_statistics_exact():
    rows = [
        row([pattern(2, [2, 2, 2, 6], [None, None, 1], infl=2.0),   # 2 skips, 1 head
             pattern(5, [5, 6, 6, 6], [0, None, None], infl=1.0)]),  # 2 skips, 1 head
        row([pattern(2, [2, 6, 6, 6], [1, 0, 1], infl=1.0)], correct=False),  # 3 heads
    ]
    a = analyze_rows(rows)
    assert a["accuracy"] == 0.5
    assert (a["skip_steps"], a["head_steps"]) == (4, 5)
    assert a["skip_share"] == pytest.approx(4 / 9)
    assert a["skip_to_head_ratio"] == pytest.approx(4 / 5)
    # weighted: skips 2*2 + 1*2 = 6; heads 2*1 + 1*1 + 1*3 = 6
    assert a["skip_to_head_ratio_weighted"] == pytest.approx(1.0)
    assert [x["skip_share"] for x in a["per_layer"]] == pytest.approx([1 / 3, 2 / 3, 1 / 3])
    assert a["per_layer"][0]["skip_share_weighted"] == pytest.approx(2 / 4)


def test_ratio_is_none_without_heads():
    a = analyze_rows([row([pattern(2, [2, 2, 2, 6], [None, None, None])])])
    assert a["skip_to_head_ratio"] is None and a["skip_share"] == 1.0


def test_pattern_key_names_moves():
    r = RunRecord.from_dict(row([]))
    # stay, move to the attractor (a role), move to the target
    assert pattern_key(r, Pattern.from_dict(pattern(2, [2, 2, 5, 6], [None, 1, 0]))) == (("skip", "stay"), ("H1", "attractor"), ("H0", "verb"))
    # a special token and an unnamed token
    assert pattern_key(r, Pattern.from_dict(pattern(2, [2, 0, 3, 6], [1, 1, 0]))) == (("H1", "[CLS]"), ("H1", "other"), ("H0", "verb"))
    assert key_text((("skip", "stay"), ("H1", "verb"))) == "L1 skip → L2 H1@verb"
    assert key_text((("skip", "stay"), ("skip", "stay"), ("H1", "verb"))) == "L1–2 skip → L3 H1@verb"


def test_consistency_frequency_and_entropy():
    same = pattern(2, [2, 2, 6, 6], [None, 1, None])
    other = pattern(2, [2, 6, 6, 6], [0, None, None])
    rows = [row([same]), row([same]), row([same]), row([other])]
    c = analyze_rows(rows)["consistency"]
    assert c["subject"]["n"] == 4 and c["subject"]["distinct"] == 2
    assert c["subject"]["top_frequency"] == 0.75
    assert c["subject"]["entropy"] == pytest.approx(-(0.75 * math.log2(0.75) + 0.25 * math.log2(0.25)))
    assert c["subject"]["top_pattern"] == "L1 skip → L2 H1@verb → L3 skip"
    assert "attractor" not in c  # no pattern for the attractor's token
    assert c["all"]["n"] == 4
    assert entropy([5]) == 0.0 and entropy([1, 1]) == pytest.approx(1.0)


def test_correlation_spearman():
    def fake(cons, acc):
        return {"task": f"t{cons}", "accuracy": acc, "consistency": {"subject": {"top_frequency": cons}, "all": {"top_frequency": 0.1}}}

    c = consistency_accuracy_correlation([fake(0.2, 0.5), fake(0.5, 0.7), fake(0.9, 0.95)])
    assert c["role"] == "subject" and c["spearman_rho"] == pytest.approx(1.0)
    c = consistency_accuracy_correlation([fake(0.2, 0.9), fake(0.5, 0.7), fake(0.9, 0.5)])
    assert c["spearman_rho"] == pytest.approx(-1.0)
    # mean QoI as a graded stand-in: consistency rises with the margin
    runs = [dict(fake(0.2, 1.0), mean_qoi=1.0), dict(fake(0.5, 1.0), mean_qoi=2.0), dict(fake(0.9, 1.0), mean_qoi=3.0)]
    c = consistency_accuracy_correlation(runs)
    assert c["spearman_rho"] is None and c["spearman_rho_qoi"] == pytest.approx(1.0)
    # constant consistency: no correlation to report
    assert consistency_accuracy_correlation([fake(0.5, 0.1), fake(0.5, 0.9)])["spearman_rho"] is None
    # a run without the role falls back to all
    runs = [fake(0.2, 0.5), {"task": "x", "accuracy": 0.3, "consistency": {"all": {"top_frequency": 0.4}}}]
    assert consistency_accuracy_correlation(runs)["role"] == "all"


@pytest.fixture(scope="module")
def two_runs(checkpoint, data_file, tmp_path_factory):  # noqa: F811
    base = tmp_path_factory.mktemp("runs")
    other = save_checkpoint(base / "ckpt2", "mlm", seed=3)
    dirs = []
    for name, ckpt in (("a", checkpoint), ("b", other)):
        out = base / name
        result = runner.invoke(app, run_args(ckpt, data_file, out, "--batch-size", "6", n=6))
        assert result.exit_code == 0, result.output
        dirs.append(out)
    return dirs


def test_analyze_command(two_runs, tmp_path):
    out = tmp_path / "analysis.json"
    result = runner.invoke(app, ["analyze", *map(str, two_runs), "--json", str(out)])
    assert result.exit_code == 0, result.output
    assert "Consistency" in result.output and "Spearman" in result.output
    data = json.loads(out.read_text())
    assert len(data["runs"]) == 2
    for a in data["runs"]:
        assert 0 <= a["accuracy"] <= 1 and 0 <= a["skip_share"] <= 1
        assert len(a["per_layer"]) == 2
        assert {"all", "subject", "attractor"} <= set(a["consistency"])
        assert a["consistency"]["subject"]["n"] == 6
        total = a["skip_steps"] + a["head_steps"]
        assert total == 2 * sum(len(r["patterns"]) for r in [json.loads(l) for l in (two_runs[0] / "results.jsonl").read_text().splitlines()])
    assert data["correlation"]["role"] == "subject"
    pooled = data["pooled"]
    assert pooled["skip_steps"] == sum(a["skip_steps"] for a in data["runs"])


def test_analyze_errors(tmp_path):
    result = runner.invoke(app, ["analyze", str(tmp_path / "nope")])
    assert result.exit_code == 2 and "no such run" in result.output
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "results.jsonl").write_text("")
    result = runner.invoke(app, ["analyze", str(tmp_path / "empty")])
    assert result.exit_code == 2 and "no results" in result.output


def test_report_markdown_and_html(two_runs, tmp_path):
    md, page = tmp_path / "report.md", tmp_path / "report.html"
    result = runner.invoke(app, ["report", *map(str, two_runs), "--out", str(md), "--html", str(page)])
    assert result.exit_code == 0, result.output
    text = md.read_text()
    assert text.index("## Verdicts") < text.index("## Settings") < text.index("## 1. Skip connections vs heads")
    for heading in ("## 2. Consistency tracks accuracy", "## 3. Compression"):
        assert heading in text
    a = analyze_runs(two_runs)
    assert f"{a['pooled']['skip_share']:.3f}" in text  # measured numbers, not the paper's
    assert "ceiling L−1 = 1" in text  # 2-layer models
    assert "not measurable: needs at least three tasks" in text  # two runs are too few; said so
    assert "too few instances" not in text or "6 instances (< 30)" in text
    assert "6 instances (< 30)" in text  # small-n warning
    assert "no null" in text  # without --null the skip finding stays inconclusive
    assert "<html" in page.read_text() and "Verdicts" in page.read_text()


def test_report_html_alone(two_runs, tmp_path):
    page = tmp_path / "only.html"
    result = runner.invoke(app, ["report", *map(str, two_runs), "--html", str(page)])
    assert result.exit_code == 0, result.output
    assert "<html" in page.read_text() and not list(tmp_path.glob("*.md"))
    nothing = runner.invoke(app, ["report", *map(str, two_runs)])
    assert nothing.exit_code == 2 and "--out FILE.md, --html FILE.html" in nothing.output


def test_report_html_has_the_interactive_view_once_per_run(two_runs, tmp_path):
    from influence_patterns.runs import Run
    from influence_patterns.viz.report_html import representative

    page = tmp_path / "view.html"
    result = runner.invoke(app, ["report", *map(str, two_runs), "--html", str(page)])
    assert result.exit_code == 0, result.output
    text = page.read_text()
    section = text[text.index('<section id="interactive-pattern-view"'):]
    assert "Interactive pattern view" in section
    assert text.count("plotly.js (basic - minified) v") == 1  # the library embedded once for the page
    assert section.count('class="plotly-graph-div"') == 2  # one view per run
    assert "http://" not in section.split("plotly.js (basic - minified) v")[0] and "<script src=" not in text  # no network
    for d in two_runs:
        record = representative(Run.open(d))
        assert f"instance {record.index} (" in section
        assert record.explanation.tokens[1] in section  # the view names its tokens
    assert "data-highlighted" in section  # the hover script that highlights a token's paths


@pytest.mark.slow  # headless Chromium: 10-16 s
def test_report_interactive_view_hovers_in_headless_chromium(two_runs, tmp_path):
    from conftest import browse, chromium

    from influence_patterns.runs import Run
    from influence_patterns.viz.report_html import representative

    chromium()  # skips without it
    page = tmp_path / "report.html"
    assert runner.invoke(app, ["report", *map(str, two_runs), "--html", str(page)]).exit_code == 0
    source = representative(Run.open(two_runs[0])).patterns[-1].source_index
    uri = page.resolve().as_uri()
    still = browse(page, tmp_path / "p1", "--dump-dom", uri).stdout
    assert still.count('class="main-svg"') >= 2 and 'data-highlighted=""' in still  # both views drawn
    hovered = browse(page, tmp_path / "p2", "--dump-dom", uri + f"#hover={source}").stdout
    assert f'data-highlighted="{source}"' in hovered  # a hover highlights that token's paths
    assert re.search(rf'trace(?:nodes|head|skip)-(?!{source}\b)\d+" style="[^"]*opacity: 0\.12', hovered)


def test_representative_is_the_first_correct_instance():
    from influence_patterns.runs import Run
    from influence_patterns.viz.report_html import representative

    rows = [row([], correct=False), row([], correct=True), row([], correct=True)]
    assert representative(Run.from_rows(rows)).index == rows[1]["index"]
    wrong = [row([], correct=False), row([], correct=False)]
    assert representative(Run.from_rows(wrong)).index == wrong[0]["index"]
    assert representative(Run.from_rows([])) is None


def test_report_verdicts_follow_the_numbers(two_runs):
    f = findings(two_runs)
    compression = [r for r in f["summary"] if "recover more" in r["finding"]]
    assert compression[0]["verdict"].startswith("not measured")  # no ablation.json yet
    f["analysis"]["pooled"]["skip_to_head_ratio_ci"] = {"value": 3.1, "ci": [2.5, 3.6]}
    text = markdown(f)
    assert "3.10 [2.50, 3.60]" in text


def test_report_with_the_null(two_runs, tmp_path):
    md = tmp_path / "report.md"
    result = runner.invoke(app, ["report", str(two_runs[0]), "--out", str(md), "--null", "random-init",
                                 "--stay-share"])
    assert result.exit_code == 0, result.output
    text = md.read_text()
    assert "random-init null" in text and "model − null" in text and "decided in advance" in text
    assert "nearly silent" in result.output  # the warning
    assert "influence share of the skip on steps that stay (every token)" in text
    result = runner.invoke(app, ["report", str(two_runs[0]), "--out", str(md), "--null", "norm-matched"])
    assert result.exit_code == 0, result.output
    text = md.read_text()
    assert "more than the norm-matched null" in text and "uniform 1/(H+1)" in text


def test_random_init_copy_is_seeded_and_leaves_the_model_alone():
    import torch

    from conftest import make_model
    from influence_patterns.analysis.null import random_init_copy

    model = make_model("mlm", layers=2, heads=2)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    a, b, c = random_init_copy(model, 0), random_init_copy(model, 0), random_init_copy(model, 1)
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k])  # the original is untouched
    w = "bert.encoder.layer.0.attention.self.query.weight"
    assert torch.equal(a.state_dict()[w], b.state_dict()[w]) and not torch.equal(a.state_dict()[w], c.state_dict()[w])
    assert not torch.equal(a.state_dict()[w], model.state_dict()[w])
    assert float(a.state_dict()[w].std()) == pytest.approx(model.config.initializer_range, rel=0.3)


def test_analyze_null_and_stay_share(two_runs, tmp_path):
    from influence_patterns.analysis.analyze import AnalyzeOptions

    out = analyze_runs([two_runs[0]], AnalyzeOptions(null="random-init", stay_share=True, resamples=200))
    a = out["runs"][0]
    assert a["ceiling"] == 1 and a["null"]["kind"] == "random-init"
    assert a["null"]["skip_steps"] + a["null"]["head_steps"] == a["skip_steps"] + a["head_steps"]
    lo, hi = a["skip_to_head_ratio_ci"]["ci"]
    assert lo <= a["skip_to_head_ratio"] <= hi
    share = a["stay_skip_share"]
    stays = sum(p["positions"][l + 1] == p["positions"][l]
                for r in [json.loads(x) for x in (two_runs[0] / "results.jsonl").read_text().splitlines()]
                for p in r["patterns"] for l in range(len(p["heads"])))
    assert share["steps_all"] == stays and 0 <= share["all"] <= 1
    assert share["steps_subject"] <= stays


def test_correlation_permutation_p_value():
    from influence_patterns.analysis.correlation import _spearman

    # five points in perfect rank order: exact permutation p = 2/120
    rho, p = _spearman([1, 2, 3, 4, 5], [2, 4, 5, 7, 9])
    assert rho == pytest.approx(1.0) and p == pytest.approx(2 / 120, rel=1e-6)
    assert _spearman([1, 2], [1, 2]) == (None, None)  # too few points for a test


def test_the_null_is_computed_once_per_key(two_runs, monkeypatch):
    """The random-init null's GPR is kept in the run directory and reused while its key
    (model weights, settings, seed, instances) is the same; another seed or a corrupt
    file recomputes it."""
    from influence_patterns.analysis import null as null_module
    from influence_patterns.analysis.analyze import AnalyzeOptions

    run = two_runs[1]
    for f in run.glob("null-*.json"):
        f.unlink()
    first = analyze_runs([run], AnalyzeOptions(null="random-init", resamples=100))["runs"][0]["null"]
    cache = run / null_module.null_file("random-init", 0)
    assert cache.is_file()
    calls = []
    real = null_module.null_records

    def counted(*args, **kwargs):
        calls.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(null_module, "null_records", counted)
    again = analyze_runs([run], AnalyzeOptions(null="random-init", resamples=100))["runs"][0]["null"]
    assert calls == [] and again == first  # read back, the same numbers
    analyze_runs([run], AnalyzeOptions(null="random-init", null_seed=1, resamples=100))
    assert len(calls) == 1 and (run / null_module.null_file("random-init", 1)).is_file()
    cache.write_text("{not json", encoding="utf-8")
    assert analyze_runs([run], AnalyzeOptions(null="random-init", resamples=100))["runs"][0]["null"] == first
    assert len(calls) == 2 and json.loads(cache.read_text())["key"]["seed"] == 0
    # another model (one weight nudged) is another key
    import copy

    import torch

    from conftest import make_model

    model = make_model("mlm", layers=2, heads=2)
    nudged = copy.deepcopy(model)
    with torch.no_grad():
        next(nudged.parameters()).view(-1)[0] += 1e-6
    assert null_module.model_sha256(model) == null_module.model_sha256(copy.deepcopy(model))
    assert null_module.model_sha256(nudged) != null_module.model_sha256(model)
