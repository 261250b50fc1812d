"""Loaders: Marvin & Linzen TSV, SST-2, generic JSONL / TSV, and round trips."""

from __future__ import annotations

import gzip
import warnings
from importlib import resources
from pathlib import Path

import pytest

from influence_patterns.errors import DataError
from influence_patterns.tasks.instance import Instance
from influence_patterns.tasks.loaders import (
    load_instances,
    load_marvin_linzen,
    load_sst2,
    map_ml_task,
    save_instances,
)
from influence_patterns.data import marvin_linzen_path
from influence_patterns.tasks.templates import TEMPLATE_TASKS, TEMPLATES, generate

ML_HEADER = "task\tcondition\tgood\tbad\n"


@pytest.fixture(scope="module")
def ml_sample() -> Path:
    """The sample shipped with the package."""
    return marvin_linzen_path()


def _read_lines(path: Path) -> list[str]:
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as f:
        return [line.rstrip("\n") for line in f if line.strip()]


def test_marvin_linzen_sample(ml_sample):
    rows = _read_lines(ml_sample)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no row is skipped, so no warning
        result = load_marvin_linzen(ml_sample)
    instances, skipped = result
    assert skipped == []
    assert len(instances) == len(rows) - 1
    # every template task with Marvin & Linzen counterparts; the new ones have none
    assert {i.task for i in instances} == {t.name for t in TEMPLATES if t.ml_names or t.ml_prefixes}
    assert {i.task for i in instances} < set(TEMPLATE_TASKS)
    for inst, row in zip(instances, rows[1:]):
        orig_task, orig_cond, good, bad = row.split("\t")
        assert inst.condition == f"{orig_task}:{orig_cond}"
        words = inst.text.split()
        mask = words.index("[MASK]")
        assert words.count("[MASK]") == 1
        role = "reflexive" if inst.task.startswith("ra/") else "verb"
        assert inst.roles[role] == mask
        assert inst.text.replace("[MASK]", inst.targets[0]) == " ".join(good.split())
        assert inst.text.replace("[MASK]", inst.targets[1]) == " ".join(bad.split())
        # The inferred subject agrees with the good target (M&L plurals end in -s).
        subject = words[inst.roles["subject"]]
        assert words[inst.roles["det"]] == "the"
        if inst.task.startswith("ra/"):
            plural_good = inst.targets[0] == "themselves"
        else:
            plural_good = not inst.targets[0].endswith("s")
        assert subject.endswith("s") == plural_good, inst


def test_marvin_linzen_roles_examples(ml_sample):
    by_text = {i.text: i for i in load_marvin_linzen(ml_sample).instances}
    inst = by_text["the pilots that the skaters love [MASK] young"]
    assert inst.task == "sva/obj_rel_across" and inst.targets == ("are", "is")
    w = inst.text.split()
    assert (w[inst.roles["subject"]], w[inst.roles["attractor"]]) == ("pilots", "skaters")
    inst = by_text["the senators that the security guard [MASK] smile"]
    w = inst.text.split()
    assert (w[inst.roles["subject"]], w[inst.roles["attractor"]]) == ("guard", "senators")
    assert w[inst.roles["det"]] == "the"


def test_map_ml_task_names():
    assert map_ml_task("obj_rel_no_comp_within_inanim") == "sva/obj_rel_no_that_within"
    assert map_ml_task("obj_rel_across_anim") == "sva/obj_rel_across"
    assert map_ml_task("prep_inanim") == "sva/prep"
    assert map_ml_task("reflexives_across") == "ra/across_rel"
    assert map_ml_task("npi_across_anim") == "npi_across_anim"


def test_marvin_linzen_skips_rows_differing_in_more_than_one_word(tmp_path):
    path = tmp_path / "ml.tsv"
    path.write_text(
        ML_HEADER
        + "simple_agrmt\tsing_MS_MV\tthe cook is tall\tthe cook are tall\n"
        + "simple_agrmt\tsing_MS_MV\tthe cook is tall\tthe cooks are tall\n"
        + "\n"
        + "simple_agrmt\tsing_MS_MV\tthe cook is tall\tthe cook are very tall\n"
        + "some_new_task\tx\tthe cooks laugh\tthe cooks laughs\n",
        encoding="utf-8",
    )
    with pytest.warns(UserWarning, match="skipped 2 row"):
        instances, skipped = load_marvin_linzen(path)
    assert [n for n, _ in skipped] == [3, 5]
    assert "2 words" in skipped[0][1] and "length" in skipped[1][1]
    assert [i.text for i in instances] == ["the cook [MASK] tall", "the cooks [MASK]"]
    assert instances[0].roles == {"verb": 2, "det": 0, "subject": 1}
    assert instances[1].task == "some_new_task"
    assert instances[1].condition == "some_new_task:x"


@pytest.mark.parametrize(
    "bad_line, message",
    [
        ("simple_agrmt\tsing\tthe cook is tall\n", "line 3: expected 4 tab-separated fields"),
        ("simple_agrmt\tsing\t\tthe cook are tall\n", "line 3: empty"),
    ],
)
def test_marvin_linzen_malformed_row(tmp_path, bad_line, message):
    path = tmp_path / "broken.tsv"
    path.write_text(
        ML_HEADER + "simple_agrmt\tsing\tthe cook is tall\tthe cook are tall\n" + bad_line,
        encoding="utf-8",
    )
    with pytest.raises(DataError, match=message) as exc:
        load_marvin_linzen(path)
    assert "broken.tsv" in str(exc.value)


def test_marvin_linzen_bad_header(tmp_path):
    path = tmp_path / "nohead.tsv"
    path.write_text("simple_agrmt\tsing\tthe cook is tall\tthe cook are tall\n", encoding="utf-8")
    with pytest.raises(DataError, match="nohead.tsv line 1: expected header"):
        load_marvin_linzen(path)
    empty = tmp_path / "empty.tsv"
    empty.write_text("", encoding="utf-8")
    with pytest.raises(DataError, match="empty"):
        load_marvin_linzen(empty)


# --- SST-2 -----------------------------------------------------------------------


def test_sst2_load_and_round_trip(tmp_path):
    path = tmp_path / "dev.tsv"
    path.write_text(
        "text\tlabel\nit 's a charming film . \t1\nunflinchingly bleak \t0\na b\t1\n",
        encoding="utf-8",
    )
    insts = load_sst2(path)
    assert [(i.text, i.label, i.condition) for i in insts] == [
        ("it 's a charming film .", 1, "pos"),
        ("unflinchingly bleak", 0, "neg"),
        ("a b", 1, "pos"),
    ]
    assert all(i.task == "sa/sst2" and i.targets is None for i in insts)
    assert load_sst2(path, limit=2) == insts[:2]
    out = tmp_path / "dev.jsonl"
    save_instances(out, insts)
    assert load_instances(out) == insts


def test_sst2_packaged_dev_file():
    path = resources.files("influence_patterns") / "data" / "sst2_dev.tsv.gz"
    with resources.as_file(path) as p:
        insts = load_sst2(p, limit=50)
    assert len(insts) == 50 and {i.label for i in insts} == {0, 1}


@pytest.mark.parametrize(
    "row, message",
    [("great\tyes\n", "line 3: label must be an integer"),
     ("great\t2\n", "line 3: label must be 0 or 1"),
     ("no tab here\n", "line 3: expected 2 tab-separated fields"),
     (" \t1\n", "line 3: empty text")],
)
def test_sst2_malformed(tmp_path, row, message):
    path = tmp_path / "sst.tsv"
    path.write_text("text\tlabel\nfine\t1\n" + row, encoding="utf-8")
    with pytest.raises(DataError, match=message) as exc:
        load_sst2(path)
    assert "sst.tsv" in str(exc.value)


# --- generic files -----------------------------------------------------------------


def test_jsonl_round_trip(tmp_path):
    insts = generate("sva/obj_rel_within", 6, seed=0) + generate("ra/across_rel", 4, seed=0)
    insts.append(Instance(text="a fine movie", label=1, task="sa/sst2", condition="pos"))
    path = tmp_path / "data.jsonl"
    save_instances(path, insts)
    assert load_instances(path) == insts
    gz = tmp_path / "data.jsonl.gz"
    save_instances(gz, insts)
    assert load_instances(gz) == insts


@pytest.mark.parametrize(
    "line, message",
    [
        ('{"text": "the cats [MASK]", "targets": ["run"', "line 2: bad JSON"),
        ('{"text": "the [MASK] cats [MASK]", "targets": ["run", "runs"]}', "line 2, column 'text': text must contain at most one"),
        ('{"text": "", "label": 1}', "line 2, column 'text': missing or empty text"),
        ('{"text": "nice"}', "line 2: needs targets"),
        ('{"text": "nice", "label": "pos"}', "line 2, column 'label': label must be a class index"),
        ('{"text": "the [MASK]", "targets": ["a"]}', "line 2, column 'targets': 'targets' must be"),
        ('{"text": "the [MASK]", "targets": ["a", "b"], "roles": {"verb": 5}}',
         "line 2, column 'roles.verb': role 'verb': word index 5 is out of range"),
        ('{"text": "the [MASK]", "targets": ["a", "b"], "roles": {"verb": "runs"}}',
         "line 2, column 'roles.verb': role 'verb': the word 'runs' is not in the sentence"),
        ('{"text": "the [MASK]", "targets": ["a", "b"], "subject": "the"}',
         "line 2, column 'subject': unknown key"),
        ('{"text": "the [MASK]", "targets": ["a", "b"], "label": 1}', "line 2, column 'label': give targets"),
        ('[1, 2]', "line 2: expected a JSON object"),
    ],
)
def test_jsonl_malformed(tmp_path, line, message):
    path = tmp_path / "user.jsonl"
    path.write_text('{"text": "the cat [MASK]", "targets": ["runs", "run"]}\n' + line + "\n",
                    encoding="utf-8")
    with pytest.raises(DataError, match=message) as exc:
        load_instances(path)
    assert "user.jsonl" in str(exc.value)


def test_tsv_generic_targets_and_labels(tmp_path):
    path = tmp_path / "mine.tsv"
    path.write_text(
        "task\ttext\tgood\tbad\tcondition\n"
        "sva/custom\tthe keys to the cabinet [MASK] here\tare\tis\tplur\n",
        encoding="utf-8",
    )
    (inst,) = load_instances(path)
    assert inst == Instance(text="the keys to the cabinet [MASK] here", targets=("are", "is"),
                            task="sva/custom", condition="plur")
    path = tmp_path / "labels.tsv"
    path.write_text("text\tlabel\ngood\t1\nbad\t0\n", encoding="utf-8")
    assert [i.label for i in load_instances(path)] == [1, 0]


@pytest.mark.parametrize(
    "body, message",
    [
        ("text\tgood\tbad\nthe [MASK] runs [MASK]\truns\trun\n", "line 2, column 'text': text must contain at most one"),
        ("text\tgood\tbad\nthe cat [MASK]\truns\n", "line 2: expected 3 tab-separated fields"),
        ("text\tlabel\n\t1\n", "line 2, column 'text': missing or empty text"),
        ("text\tlabel\nnice\tpositive\n", "line 2, column 'label': label must be an integer"),
        ("sentence\tscore\nnice\t1\n", "line 1, column 'sentence': unknown column \\(did you mean text"),
        ("words\tscore\nnice\t1\n", "line 1: header must have 'text'"),
        ("text\tlabel\tconditon\nnice\t1\tpos\n", "line 1, column 'conditon': unknown column \\(did you mean condition"),
        ("text\tgood\tbad\tsubject\nthe cat [MASK]\truns\trun\tdog\n",
         "line 2, column 'subject': role 'subject': the word 'dog' is not in the sentence"),
    ],
)
def test_tsv_generic_malformed(tmp_path, body, message):
    path = tmp_path / "user.tsv"
    path.write_text(body, encoding="utf-8")
    with pytest.raises(DataError, match=message) as exc:
        load_instances(path)
    assert "user.tsv" in str(exc.value)


def test_load_instances_detects_marvin_linzen(tmp_path, ml_sample):
    assert load_instances(ml_sample) == load_marvin_linzen(ml_sample).instances


def test_load_instances_unsupported_extension(tmp_path):
    path = tmp_path / "data.txt"
    path.write_text("text,label\n", encoding="utf-8")
    with pytest.raises(DataError, match="unsupported"):
        load_instances(path)


# --- one format, three spellings (docs/data.md) -------------------------------------------

AGREEMENT = [
    ("the keys to the cabinet [MASK] here", "are", "is", "keys", "cabinet", "the key to the cabinets [MASK] here"),
    ("the author near the giraffes [MASK] here", "is", "are", "author", "giraffes", None),
]


def _spelled(tmp_path: Path, spelling: str) -> Path:
    import csv as csv_module
    import json

    if spelling == "jsonl":
        path = tmp_path / "mine.jsonl"
        lines = []
        for text, good, bad, subj, attr, cf in AGREEMENT:
            row = {"text": text, "targets": [good, bad], "task": "my/agr", "condition": "c",
                   "roles": {"subject": subj, "attractor": attr, "det": 0}}
            if cf:
                row["counterfactual"] = cf
            lines.append(json.dumps(row))
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        return path
    delimiter = "," if spelling == "csv" else "\t"
    path = tmp_path / f"mine.{spelling}"
    with open(path, "w", encoding="utf-8", newline="") as f:
        w = csv_module.writer(f, delimiter=delimiter, lineterminator="\n")
        w.writerow(["text", "good", "bad", "task", "condition", "counterfactual", "subject", "attractor", "det"])
        for text, good, bad, subj, attr, cf in AGREEMENT:
            w.writerow([text, good, bad, "my/agr", "c", cf or "", subj, attr, "the@1"])
    return path


@pytest.mark.parametrize("spelling", ["csv", "tsv", "jsonl"])
def test_three_spellings_read_the_same(tmp_path, spelling):
    insts = load_instances(_spelled(tmp_path, spelling))
    assert [i.text for i in insts] == [a[0] for a in AGREEMENT]
    assert insts[0].targets == ("are", "is") and insts[0].task == "my/agr"
    assert insts[0].roles == {"subject": 1, "attractor": 4, "det": 0}
    assert insts[1].roles == {"subject": 1, "attractor": 4, "det": 0}
    assert insts[0].counterfactual == "the key to the cabinets [MASK] here"
    assert insts[1].counterfactual is None
    first_line = 1 if spelling == "jsonl" else 2  # after the header
    assert insts[0].origin.endswith(f"mine.{spelling} line {first_line}")
    # saved and read back as JSONL: the same instances, counterfactual included
    save_instances(tmp_path / "back.jsonl", insts)
    assert load_instances(tmp_path / "back.jsonl") == insts


def test_role_words_resolve():
    from influence_patterns.tasks.loaders import resolve_role

    words = "the keys to the cabinet , said the man .".split()
    assert resolve_role(words, "the") == 0
    assert resolve_role(words, "the@2") == 3
    assert resolve_role(words, "the@3") == 7
    assert resolve_role(words, "Keys") == 1  # case-insensitive when there is no exact match
    assert resolve_role(words, 4) == 4
    with pytest.raises(ValueError, match="occurs 3 time"):
        resolve_role(words, "the@4")
    with pytest.raises(ValueError, match="ambiguous"):
        resolve_role(words, "the keys")
    with pytest.raises(ValueError, match="not in the sentence"):
        resolve_role(words, "door")
    with pytest.raises(ValueError, match="out of range"):
        resolve_role(words, 10)


def test_csv_quotes_and_errors(tmp_path):
    path = tmp_path / "s.csv"
    path.write_text('text,label,task\n"a fine, warm movie",1,my/sent\n"dull",0,my/sent\n', encoding="utf-8")
    insts = load_instances(path)
    assert [(i.text, i.label, i.task) for i in insts] == [("a fine, warm movie", 1, "my/sent"), ("dull", 0, "my/sent")]
    path.write_text('text,label\n"a fine movie",1,extra\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"s.csv line 2: expected 2 comma-separated fields"):
        load_instances(path)
    path.write_text('text,good,bad,counterfactual\nthe cat [MASK],runs,run,the cats run\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"s.csv line 2, column 'counterfactual': the text is masked"):
        load_instances(path)


def test_ml_sample_name():
    assert load_instances("ml-sample") == load_marvin_linzen(marvin_linzen_path()).instances
