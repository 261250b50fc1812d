"""The one registry helper."""

from __future__ import annotations

import pytest

from influence_patterns.errors import InputError
from influence_patterns.registry import Registry


def test_register_lookup_and_messages():
    reg: Registry[int] = Registry("colour")
    reg.register("red", 1, "warm")
    reg.register("blue", 2)
    assert reg.lookup("red") == 1 and list(reg) == ["red", "blue"]
    assert reg.check("blue") == "blue"
    with pytest.raises(InputError, match=r"unknown colour 'green'; choose one of red, blue"):
        reg.lookup("green")
    with pytest.raises(InputError, match="already registered"):
        reg.register("red", 3)
    reg.register("red", 3, "warm", replace=True)
    assert reg["red"] == 3
    assert reg.help("The colour:") == "The colour: red (warm); blue."


def test_a_registry_words_its_own_error():
    from influence_patterns.errors import ModelError

    reg: Registry[int] = Registry("architecture", ModelError, "unsupported {kind} {name!r}; supported: {sorted}")
    reg.register("bert", 1)
    reg.register("albert", 2)
    with pytest.raises(ModelError, match=r"^unsupported architecture 'gpt2'; supported: albert, bert$"):
        reg.check("gpt2")


def test_unhashable_name_is_one_line():
    reg: Registry[int] = Registry("rule")
    with pytest.raises(InputError, match="unknown rule"):
        reg.lookup(["x"])  # type: ignore[arg-type]


# --------------------------------------------------------------------------- the registries in use

import ast  # noqa: E402
from pathlib import Path  # noqa: E402

from typer.testing import CliRunner  # noqa: E402

from influence_patterns.registry import Lazy  # noqa: E402


def test_a_lazy_item_is_imported_on_first_lookup():
    reg: Registry[object] = Registry("thing")
    reg.register("join", Lazy("os.path:join"), "joins paths")
    assert isinstance(reg["join"], Lazy) and reg.help() == "join (joins paths)."
    import os.path

    assert reg.lookup("join") is os.path.join and reg["join"] is os.path.join


@pytest.fixture
def negated_qoi():
    """A third QoI, added with one register call (and removed after the test)."""
    from influence_patterns.attribution.qoi import QOIS, LogitDifference, register_qoi

    class Negated(LogitDifference):
        def __call__(self, logits, classes):
            return -super().__call__(logits, classes)

    register_qoi(Negated("negated", "logit[bad] - logit[good]"))
    yield "negated"
    del QOIS["negated"]
    del QOIS.descriptions["negated"]


def test_one_register_call_adds_a_qoi_everywhere(negated_qoi, mlm, tokenizer):
    from influence_patterns import Explainer
    from influence_patterns.models.loading import LoadedModel
    from influence_patterns.tasks.accuracy import qoi as accuracy_qoi
    from influence_patterns.tasks.instance import Instance

    text, targets = "the boy near the girls [MASK] good", ("is", "are")
    default = Explainer(mlm, tokenizer, steps=2).explain(text, targets=targets, sources=[2])
    chosen = Explainer(mlm, tokenizer, steps=2, qoi=negated_qoi).explain(text, targets=targets, sources=[2])
    assert default.qoi_name == "agreement" and chosen.qoi_name == "negated"
    assert chosen.qoi_value == pytest.approx(-default.qoi_value, rel=1e-6)
    assert chosen.patterns[0].g == pytest.approx(-default.patterns[0].g, rel=1e-5)
    # task accuracy reads the same registry, and agrees with the explainer's QoI
    loaded = LoadedModel(model=mlm, tokenizer=tokenizer, name="tiny", kind="mlm")
    inst = [Instance(text=text, targets=targets, task="t")]
    assert accuracy_qoi(loaded, inst)[0] == pytest.approx(default.qoi_value, rel=1e-5)
    assert accuracy_qoi(loaded, inst, qoi_name=negated_qoi)[0] == pytest.approx(-default.qoi_value, rel=1e-5)


def test_an_unknown_qoi_is_one_line(mlm, tokenizer):
    from influence_patterns import Explainer

    with pytest.raises(InputError, match=r"unknown QoI 'margin'; choose one of agreement, classification"):
        Explainer(mlm, tokenizer, qoi="margin")


def test_the_cli_lists_every_registered_choice():
    from influence_patterns.attribution.baselines import BASELINES
    from influence_patterns.attribution.qoi import QOIS
    from influence_patterns.attribution.quadrature import QUADRATURES
    from influence_patterns.cli import app
    from influence_patterns.search.methods import GPR_METHODS
    from influence_patterns.runs.backends import BACKENDS

    runner = CliRunner()
    explain = " ".join(runner.invoke(app, ["explain", "--help"], env={"COLUMNS": "200"}).output.split())
    run = " ".join(runner.invoke(app, ["run", "--help"], env={"COLUMNS": "200"}).output.split())
    for registry in (QOIS, BASELINES, QUADRATURES, GPR_METHODS):
        for name in registry:
            assert name in explain, (registry.kind, name)
    for registry in (BASELINES, QUADRATURES, GPR_METHODS, BACKENDS):
        for name in registry:
            assert name in run, (registry.kind, name)


def test_no_hand_written_choice_lists_in_the_cli():
    """Choices such as ``"mask | zero | pad"`` come from the registries, not from help strings."""
    cli = Path(__file__).resolve().parents[1] / "src" / "influence_patterns" / "cli"
    bad = []
    for path in sorted(cli.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.keyword) and node.arg == "help":
                for s in ast.walk(node.value):
                    if isinstance(s, ast.Constant) and isinstance(s.value, str) and " | " in s.value:
                        bad.append(f"{path.name}:{node.value.lineno}: {s.value[:50]!r}")
    assert not bad, "\n".join(bad)


# ------------------------------------------- new entries registered from outside the package, end to end


@pytest.fixture
def registered():
    """Registers an entry in a registry for one test and removes it afterwards."""
    added = []

    def register(registry, name, item, description=""):
        registry.register(name, item, description)
        added.append((registry, name))
        return name

    yield register
    for registry, name in added:
        registry.pop(name, None)
        registry.descriptions.pop(name, None)


def test_a_new_ig_baseline_runs_end_to_end(registered, mlm, tokenizer):
    """A baseline is its function: one register call and ``baseline=`` accepts it."""
    import torch

    from influence_patterns import Explainer, Query
    from influence_patterns.attribution.baselines import BASELINES

    def half_mask(inputs):
        row = inputs.word_embeddings.weight[inputs.mask_id].detach().to(inputs.embeddings.dtype)
        return 0.5 * row.expand_as(inputs.embeddings) + 0.5 * inputs.embeddings

    name = registered(BASELINES, "half-mask", half_mask, "halfway between [MASK] and the text")
    ex = Explainer(mlm, tokenizer, steps=16, baseline=name, keep_special=True)  # [CLS], [SEP] stay real
    batch = ex.prepare([Query("the boy [MASK] good", ("is", "are"))])
    mask_row = mlm.get_input_embeddings().weight[tokenizer.mask_token_id]
    torch.testing.assert_close(batch.baseline[0, 1], 0.5 * mask_row.detach() + 0.5 * batch.x[0, 1])
    e = ex.explain("the boy [MASK] good", targets=("is", "are"))
    assert e.baseline == name
    # completeness on the new baseline ([MASK]'s row is its own): Σ g = q(x) - q(b)
    total = sum(p.g for p in e.patterns)
    assert total == pytest.approx(e.qoi_value - e.qoi_baseline_value, rel=0.05, abs=1e-3)


def test_a_new_quadrature_runs_end_to_end(registered, mlm, tokenizer):
    """A quadrature rule holds its points and its default size."""
    import numpy as np

    from influence_patterns import Explainer
    from influence_patterns.attribution.quadrature import QUADRATURES, Rule

    def midpoint(steps):
        return (np.arange(steps) + 0.5) / steps, np.full(steps, 1.0 / steps)

    name = registered(QUADRATURES, "midpoint", Rule(midpoint, 24), "the midpoint rule")
    ex = Explainer(mlm, tokenizer, quadrature=name)
    assert ex.config.steps == 24  # the rule's own default size
    e = ex.explain("the boy near the girls [MASK] good", targets=("is", "are"), sources=[2])
    ref = Explainer(mlm, tokenizer, steps=64).explain("the boy near the girls [MASK] good", targets=("is", "are"),
                                                      sources=[2])
    assert e.quadrature == name and e.steps == 24
    assert e.patterns[0].g == pytest.approx(ref.patterns[0].g, rel=0.05, abs=1e-3)


def test_a_new_ablation_method_runs_end_to_end(registered, mlm, tokenizer):
    """An ablation method is one class and one line; ``ablate_rows`` runs it beside the built-ins."""
    import math

    from influence_patterns import Explainer
    from influence_patterns.analysis import Method, NodePath, register_method
    from influence_patterns.analysis.ablation import AblationOptions, ablate_rows
    from influence_patterns.analysis.methods import ABLATION_METHODS

    class LastHeadOnly(Method):
        name = "test-last-head"
        description = "skips on the source, head 0 at the last layer"
        group = "control"

        def paths(self, ctx):
            L = ctx.num_layers
            return [[NodePath(i, (i,) * L + (int(ctx.batch.target_index[b]),), (None,) * (L - 1) + (0,))
                     for i in ctx.batch.sources[b]] for b in range(len(ctx.batch))]

    register_method(LastHeadOnly)
    registered(ABLATION_METHODS, "test-last-head", ABLATION_METHODS.pop("test-last-head"))
    ex = Explainer(mlm, tokenizer, steps=4)
    rows = []
    for i, (text, targets) in enumerate([("the boy [MASK] good", ("is", "are")), ("the dogs [MASK] good", ("are", "is"))]):
        e = ex.explain(text, targets=targets)
        rows.append({"index": i, **e.to_dict(), "roles": {"subject": 2}, "correct": e.correct})
    out = ablate_rows(ex, rows, AblationOptions(methods=("stay", "test-last-head"), resamples=50), progress=False)
    assert [m["name"] for m in out["methods"]] == ["stay", "test-last-head"]
    mine = [r for r in out["per_instance"] if r["method"] == "test-last-head"]
    assert len(mine) == len(rows) and all(r["nodes"] > 0 and math.isfinite(r["q_kept"]) for r in mine)
