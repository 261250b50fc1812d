"""Issue 11's hostile inputs in runs, the explainer, model loading and data files: one
test per case, each asserting the correct result or one clear line with exit 2 (or
the typed error through the API), and that nothing is lost."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from influence_patterns import Explainer
from influence_patterns.cli import app
from influence_patterns.errors import DataError, InputError, ModelError, OutputError
from influence_patterns.models import defaults
from influence_patterns.models.loading import load_model
from influence_patterns.runs import LOCK_FILE, Run, RunLock, RunOptions, lock_owner, run_dataset
from influence_patterns.tasks.loaders import load_instances, load_sst2

from conftest import WORDS, make_model, make_tokenizer, run_args
from hostile_cases import copy_run, one_line_error

runner = CliRunner()


def bert_config(**kw):
    from transformers import BertConfig

    return BertConfig(vocab_size=len(WORDS) + 5, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                      intermediate_size=32, max_position_embeddings=64, **kw)


# --- 1. two writers, duplicate rows ------------------------------------------------------


def test_two_runs_into_the_same_directory_at_once(checkpoint, data_file, tmp_path):  # noqa: F811
    """A second writer (a real process holds the lock) gets one line naming the owner's pid."""
    out = tmp_path / "run"
    out.mkdir()
    code = ("import sys, time; from influence_patterns.runs import RunLock; "
            "lock = RunLock(sys.argv[1]).acquire(); print('held', flush=True); time.sleep(60)")
    holder = subprocess.Popen([sys.executable, "-c", code, str(out)], stdout=subprocess.PIPE,
                              env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)))
    try:
        assert holder.stdout.readline().strip() == b"held"
        result = runner.invoke(app, run_args(checkpoint, data_file, out, n=2))
        one_line_error(result, f"process {holder.pid}", "being written")
        assert not (out / "results.jsonl").exists() and not (out / "run.json").exists()
    finally:
        holder.kill()
        holder.wait()
        holder.stdout.close()
    # The holder died without cleaning up: its lock file is stale and is taken over.
    assert lock_owner(out) == holder.pid
    result = runner.invoke(app, run_args(checkpoint, data_file, out, n=2))
    assert result.exit_code == 0, result.output
    assert not (out / LOCK_FILE).exists()
    assert [r["index"] for r in Run.open(out).rows] == [0, 1]


@pytest.mark.slow  # two real processes racing for one run directory: 15-30 s
def test_two_real_run_processes_write_each_index_once(checkpoint, data_file, tmp_path):  # noqa: F811
    """A real `run` writing; a second `run` into its directory is refused while the first
    goes on; the finished file holds every index exactly once."""
    out = tmp_path / "shared"
    args = ["run", "--task", "sva/prep", "--data", str(data_file), "--n", "3", "--model", str(checkpoint),
            "--out", str(out), "--steps", "8", "--method", "reference", "--batch-size", "1", "--quiet"]
    code = "import sys; from influence_patterns.cli import main; sys.argv[0] = 'influence-patterns'; main()"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=os.pathsep.join(sys.path))
    first = subprocess.Popen([sys.executable, "-c", code, *args], env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and first.poll() is None and lock_owner(out) != first.pid:
            time.sleep(0.01)
        assert first.poll() is None, "the first run ended too soon: " + first.stderr.read().decode()[-2000:]
        one_line_error(runner.invoke(app, args), f"process {first.pid}")
        assert first.wait(timeout=240) == 0, first.stderr.read().decode()[-2000:]
    finally:
        if first.poll() is None:
            first.kill()
        first.stderr.close()
    indices = [json.loads(line)["index"] for line in (out / "results.jsonl").read_text().splitlines()]
    assert sorted(indices) == list(range(3))
    assert not (out / LOCK_FILE).exists()


def test_a_held_lock_in_this_process_refuses_a_second_writer(tmp_path):
    with RunLock(tmp_path):
        assert lock_owner(tmp_path) == os.getpid()
        with pytest.raises(InputError, match=f"process {os.getpid()}"):
            RunLock(tmp_path).acquire()
    assert not (tmp_path / LOCK_FILE).exists()
    RunLock(tmp_path).acquire().release()  # free again


def test_a_stale_lock_from_a_dead_process_is_taken_over(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp_path / LOCK_FILE).write_text(f"{dead.pid}\n")
    with RunLock(tmp_path):
        assert lock_owner(tmp_path) == os.getpid()


def test_hand_inserted_duplicate_row(done_run, checkpoint, data_file, tmp_path):  # noqa: F811
    out = copy_run(done_run, tmp_path / "dup")
    lines = (out / "results.jsonl").read_text().splitlines(keepends=True)
    (out / "results.jsonl").write_text("".join(lines) + lines[1])
    with pytest.raises(DataError, match=r"line 5: index 1 appears twice \(first on line 2\)"):
        Run.open(out)
    before = (out / "results.jsonl").read_bytes()
    one_line_error(runner.invoke(app, run_args(checkpoint, data_file, out, n=4)), "line 5", "twice")
    assert (out / "results.jsonl").read_bytes() == before  # nothing appended


def test_out_of_range_index(done_run, tmp_path):
    out = copy_run(done_run, tmp_path / "range")
    row = json.loads((out / "results.jsonl").read_text().splitlines()[0])
    row["index"] = 4  # the run has 4 instances: 0..3
    with open(out / "results.jsonl", "a") as f:
        f.write(json.dumps(row) + "\n")
    with pytest.raises(DataError, match=r"line 5: index 4 is out of range \(0\.\.3\)"):
        Run.open(out)


def test_empty_object_row(done_run, tmp_path):
    out = copy_run(done_run, tmp_path / "empty")
    with open(out / "results.jsonl", "a") as f:
        f.write("{}\n")
    with pytest.raises(DataError, match=r"results.jsonl line 5: not a result row \(no 'index'\)"):
        Run.open(out)


def test_torn_last_line_still_reads(done_run, tmp_path):
    out = copy_run(done_run, tmp_path / "torn")
    with open(out / "results.jsonl", "a") as f:
        f.write('{"index": 3, "mod')
    assert len(Run.open(out)) == 4


# --- 3. rows checked against run.json ------------------------------------------------------


def test_edited_run_json_steps_then_resume(done_run, checkpoint, data_file, tmp_path):  # noqa: F811
    out = copy_run(done_run, tmp_path / "edited")
    meta = json.loads((out / "run.json").read_text())
    meta["steps"] = 5
    (out / "run.json").write_text(json.dumps(meta))
    with pytest.raises(DataError, match="line 1: steps is 4 but run.json records 5"):
        Run.open(out)
    args = run_args(checkpoint, data_file, out, n=4)
    args[args.index("--steps") + 1] = "5"
    before = (out / "results.jsonl").read_bytes()
    one_line_error(runner.invoke(app, args), "steps is 4 but run.json records 5")
    assert (out / "results.jsonl").read_bytes() == before


def test_corrupt_run_json_in_run(done_run, checkpoint, data_file, tmp_path):  # noqa: F811
    out = copy_run(done_run, tmp_path / "corrupt")
    (out / "run.json").write_text('{"model": ')
    one_line_error(runner.invoke(app, run_args(checkpoint, data_file, out, n=4)), "run.json", "not valid JSON")


# --- 14. a refused run writes nothing -------------------------------------------------------


def test_run_that_fails_validation_writes_nothing(checkpoint, data_file, tmp_path):  # noqa: F811
    out = tmp_path / "refused"
    one_line_error(runner.invoke(app, run_args(checkpoint, data_file, out, "--baseline", "noise")), "unknown baseline")
    assert not out.exists()
    one_line_error(runner.invoke(app, run_args(checkpoint, data_file, out, "--steps", "50000")), "at most 10,000")
    assert not out.exists()
    one_line_error(runner.invoke(app, run_args(tmp_path / "no-such-model", data_file, out)), "does not exist")
    assert not out.exists()
    # a classifier on an agreement task is refused before run.json is written
    from conftest import save_checkpoint

    cls = save_checkpoint(tmp_path / "cls", "classification")
    one_line_error(runner.invoke(app, run_args(cls, data_file, out)), "classifier")
    assert not out.exists()
    # the corrected command then works
    assert runner.invoke(app, run_args(checkpoint, data_file, out, n=2)).exit_code == 0


def test_run_task_sst2_on_an_agreement_tsv(tmp_path):
    tsv = tmp_path / "agree.tsv"
    tsv.write_text("text\tgood\tbad\nthe boy [MASK]\tis\tare\n")
    with pytest.raises(DataError, match="agree.tsv line 1: this is a masked-agreement file"):
        load_sst2(tsv)
    result = runner.invoke(app, ["run", "--task", "sa/sst2", "--data", str(tsv), "--model", "nowhere-model",
                                 "--out", str(tmp_path / "r"), "--quiet"])
    one_line_error(result, "masked-agreement file")
    assert not (tmp_path / "r").exists()


# --- 4. untrained heads ---------------------------------------------------------------------


@pytest.mark.parametrize("cls_name", ["BertModel", "BertForTokenClassification"])
def test_checkpoint_without_mlm_head(tmp_path, cls_name):
    import transformers

    path = tmp_path / cls_name
    getattr(transformers, cls_name)(bert_config()).save_pretrained(path)
    make_tokenizer(path).save_pretrained(path)
    with pytest.raises(ModelError, match=f"no trained masked-LM head \\(it was saved as {cls_name}; missing cls"):
        load_model(str(path))
    result = runner.invoke(app, ["explain", "the boy [MASK]", "--targets", "is,are", "--model", str(path)])
    one_line_error(result, "no trained masked-LM head")


# --- 5. targets on a classifier, a label on a masked LM ------------------------------------


def test_targets_on_a_classifier(classifier_checkpoint, classifier, tokenizer):
    result = runner.invoke(app, ["explain", "a good movie", "--targets", "xylophone,zebra",
                                 "--model", str(classifier_checkpoint)])
    one_line_error(result, "classifier", "not targets")
    with pytest.raises(InputError, match="not targets"):
        Explainer(classifier, tokenizer, steps=2).explain("a good movie", targets=("good", "bad"))


def test_label_on_a_masked_lm(mlm_checkpoint, mlm, tokenizer):
    result = runner.invoke(app, ["explain", "the boy [MASK]", "--targets", "is,are", "--label", "1",
                                 "--model", str(mlm_checkpoint)])
    one_line_error(result, "masked LM", "not a label")
    with pytest.raises(InputError, match="not a label"):
        Explainer(mlm, tokenizer, steps=2).explain("the boy [MASK]", targets=("is", "are"), label=1)


# --- 6. non-finite weights and QoI -----------------------------------------------------------


def test_nan_weights(mlm_checkpoint, tokenizer, tmp_path):
    model = make_model("mlm")
    with torch.no_grad():
        model.bert.encoder.layer[0].attention.self.query.weight[0, 0] = float("nan")
    with pytest.raises(ModelError, match=r"not finite \(NaN or inf in bert.encoder.layer.0.attention.self.query.weight"):
        Explainer(model, tokenizer)
    path = tmp_path / "nan"
    model.float().save_pretrained(path)
    tokenizer.save_pretrained(path)
    one_line_error(runner.invoke(app, ["explain", "the boy [MASK]", "--targets", "is,are", "--model", str(path)]),
                   "not finite")


def test_non_finite_qoi(tokenizer):
    model = make_model("mlm")
    good, bad = tokenizer.convert_tokens_to_ids(["is", "are"])
    with torch.no_grad():
        model.cls.predictions.bias[good] = 1.7e308  # finite weights, an infinite logit difference
        model.cls.predictions.bias[bad] = -1.7e308
    explainer = Explainer(model, tokenizer, steps=2)
    with pytest.raises(ModelError, match="quantity of interest is not finite"):
        explainer.explain("the boy [MASK]", targets=("is", "are"))


# --- 7. a checkpoint without a tokenizer -----------------------------------------------------


def test_checkpoint_without_tokenizer(tmp_path):
    path = tmp_path / "notok"
    make_model("mlm", dtype=torch.float32).save_pretrained(path)
    with pytest.raises(ModelError, match="has no tokenizer"):
        load_model(str(path))
    result = runner.invoke(app, ["explain", "the boy [MASK]", "--targets", "is,are", "--model", str(path)])
    one_line_error(result, "has no tokenizer", "tokenizer.save_pretrained")


# --- 8. influence() positions, fractional steps ----------------------------------------------


def test_influence_positions_that_do_not_end_at_the_target(mlm, tokenizer):
    explainer = Explainer(mlm, tokenizer, steps=2)
    text = "the boy [MASK]"  # [CLS] the boy [MASK] [SEP]: the target is 3
    assert explainer.influence(text, 2, positions=[2, 3, 3], targets=("is", "are")) != 0.0
    with pytest.raises(InputError, match="ends at the target position 3, but positions end at 2"):
        explainer.influence(text, 2, positions=[2, 2, 2], targets=("is", "are"))


@pytest.mark.parametrize("steps", [4.5, 0, -3, 50_000, 10**12, 1e20, "8", True])
def test_steps_outside_1_to_10000_or_fractional(mlm, tokenizer, steps):
    with pytest.raises(InputError, match="steps must be"):
        Explainer(mlm, tokenizer, steps=steps)


def test_steps_bounds_in_the_cli(mlm_checkpoint):
    for steps in ("1000000000000", "50000", "0"):
        result = runner.invoke(app, ["explain", "the boy [MASK]", "--targets", "is,are", "--model",
                                     str(mlm_checkpoint), "--steps", steps])
        one_line_error(result, "steps must be")
    for steps in ("1e20", "4.5"):  # not integers: refused by the option parser, exit 2
        result = runner.invoke(app, ["explain", "the boy [MASK]", "--targets", "is,are", "--model",
                                     str(mlm_checkpoint), "--steps", steps])
        assert result.exit_code == 2 and "Traceback" not in result.output


def test_explainer_on_a_plain_bert_with_default_attention(tokenizer):
    from transformers import BertForMaskedLM

    model = BertForMaskedLM(bert_config())  # SDPA attention by default
    explanation = Explainer(model, tokenizer, steps=2).explain("the boy [MASK]", targets=("is", "are"))
    assert model.config._attn_implementation == "eager"
    assert len(explanation.patterns) == 2


# --- 9. write errors ---------------------------------------------------------------------------


def test_write_error_in_run_keeps_earlier_rows(done_run, checkpoint, data_file, tmp_path, monkeypatch):  # noqa: F811
    out = copy_run(done_run, tmp_path / "full-disk")
    lines = (out / "results.jsonl").read_text().splitlines(keepends=True)
    (out / "results.jsonl").write_text("".join(lines[:2]))  # half done: the resume must append
    before = (out / "results.jsonl").read_bytes()
    import influence_patterns.runs.runner as runner_module

    def full(fd, data):
        raise OSError(27, "File too large")

    monkeypatch.setattr(runner_module.os, "write", full)
    one_line_error(runner.invoke(app, run_args(checkpoint, data_file, out, n=4)), "results.jsonl", "File too large")
    monkeypatch.undo()
    assert (out / "results.jsonl").read_bytes() == before
    assert not (out / LOCK_FILE).exists()


def test_run_out_under_a_file(checkpoint, data_file, tmp_path):  # noqa: F811
    blocker = tmp_path / "file"
    blocker.write_text("x")
    one_line_error(runner.invoke(app, run_args(checkpoint, data_file, blocker / "run", n=2)), "cannot write")


def test_explain_json_pointing_at_a_directory(mlm_checkpoint, tmp_path):
    (tmp_path / "old.json").write_text("earlier")
    result = runner.invoke(app, ["explain", "the boy [MASK]", "--targets", "is,are", "--model", str(mlm_checkpoint),
                                 "--steps", "2", "--json", str(tmp_path)])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert f"cannot write {tmp_path} (--json): it is a directory" in result.output
    assert (tmp_path / "old.json").read_text() == "earlier"


def test_explanation_save_error_is_typed(mlm, tokenizer, tmp_path):
    explanation = Explainer(mlm, tokenizer, steps=2).explain("the boy [MASK]", targets=("is", "are"))
    with pytest.raises(OutputError, match="is a directory"):
        explanation.save(tmp_path)


# --- 10. truncated weights, a file as --model, a corrupt cache -------------------------------


def test_truncated_model_safetensors(mlm_checkpoint, tmp_path):
    path = tmp_path / "trunc"
    path.mkdir()
    for f in mlm_checkpoint.iterdir():
        (path / f.name).write_bytes(f.read_bytes())
    weights = path / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    with pytest.raises(ModelError, match="truncated or corrupt"):
        load_model(str(path))
    one_line_error(runner.invoke(app, ["explain", "the boy [MASK]", "--targets", "is,are", "--model", str(path)]),
                   "truncated or corrupt")


def test_model_pointing_at_a_file(mlm_checkpoint):
    for name in ("config.json", "model.safetensors"):
        result = runner.invoke(app, ["explain", "the boy [MASK]", "--targets", "is,are", "--model",
                                     str(mlm_checkpoint / name)])
        one_line_error(result, "is a file", "checkpoint directory")


# (the cache-checksum cases moved to test_provenance.py)


# --- 11. non-UTF-8 data files --------------------------------------------------------------


@pytest.mark.parametrize("encoding", ["latin-1", "utf-16", "binary"])
def test_non_utf8_data_file(tmp_path, encoding):
    path = tmp_path / "data.tsv"
    text = "text\tgood\tbad\nthe garçon [MASK]\tis\tare\n"
    path.write_bytes(b"\x89\xff\x00\x13binary" if encoding == "binary" else text.encode(encoding))
    with pytest.raises(DataError, match=r"data.tsv line \d+: not (UTF-8|a text file)") as err:
        load_instances(path)
    assert "\n" not in str(err.value)


def test_utf8_bom_is_accepted(tmp_path):
    path = tmp_path / "bom.tsv"
    path.write_bytes("text\tgood\tbad\nthe boy [MASK]\tis\tare\n".encode("utf-8-sig"))
    (inst,) = load_instances(path)
    assert inst.text == "the boy [MASK]" and inst.targets == ("is", "are")


# --- 14. control characters, bytes, non-string targets --------------------------------------


def test_control_characters_are_not_echoed_raw(mlm_checkpoint):
    result = runner.invoke(app, ["explain", "the \x1b[31mboy\x07 is here", "--targets", "is,are",
                                 "--model", str(mlm_checkpoint)])
    line = one_line_error(result, "no [MASK]")
    assert "\x1b" not in result.output and "\x07" not in result.output
    assert "\\x1b[31m" in line


def test_non_integer_label_and_head(classifier, mlm, tokenizer):
    with pytest.raises(InputError, match="label must be a class index"):
        Explainer(classifier, tokenizer, steps=2).explain("a good movie", label=1.5)
    with pytest.raises(InputError, match="head 'x' at layer 1 is not one of 0..1"):
        Explainer(mlm, tokenizer, steps=2).influence("the boy [MASK]", 2, positions=[3, 3, 3], heads=["x", 0, 0],
                                                      targets=("is", "are"))


def test_explain_bytes(mlm, tokenizer):
    with pytest.raises(InputError, match="text must be a str, got bytes .*decode"):
        Explainer(mlm, tokenizer, steps=2).explain(b"the boy [MASK]", targets=("is", "are"))


def test_non_string_targets(mlm, tokenizer):
    explainer = Explainer(mlm, tokenizer, steps=2)
    with pytest.raises(InputError, match=r"targets must be two words .*\(1, 2\)"):
        explainer.explain("the boy [MASK]", targets=(1, 2))
    with pytest.raises(InputError, match="targets must be"):
        explainer.explain("the boy [MASK]", targets=7)


# --- the runs API ----------------------------------------------------------------------------


def test_run_options_api_matches_the_cli(done_run, checkpoint, data_file, tmp_path):  # noqa: F811
    """``run_dataset(RunOptions(...), out)`` writes the rows the CLI wrote; records are typed."""
    out = tmp_path / "api"
    opts = RunOptions(model=str(checkpoint), task="sva/prep", n=4, data=str(data_file), steps=4)
    run_dataset(opts, out, progress=False)
    run, cli = Run.open(out), Run.open(done_run)
    assert [r.index for r in run.records] == [0, 1, 2, 3]
    assert [r.to_dict()["patterns"] for r in run.records] == [r["patterns"] for r in cli.rows]
    assert run.records[0].roles["subject"] == 2 and run.records[0].explanation.steps == 4
    assert run.meta["instances"] == 4
