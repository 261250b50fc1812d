"""What several test modules share, in one place: tiny random-weight BERT models with a
small word-level tokenizer, checkpoints and a data file on disk, the comparison of a
fast search with the reference, and headless Chromium. Test modules import nothing from
each other."""

from __future__ import annotations

import itertools
import json
import random
import shutil
import subprocess
from pathlib import Path

import pytest
import torch

from influence_patterns.search.fast import gpr_fast
from influence_patterns.search.full_width import gpr_full_width

# Tiny models: one thread is fastest and does not fight other processes for cores.
torch.set_num_threads(1)

WORDS = (
    "the a boy boys girl girls dog dogs cat cats teacher teachers is are was were "
    "laughs laugh likes like runs run near by that who himself herself themselves "
    "good bad movie film great awful funny very not and of to it ##s"
).split()


def make_tokenizer(tmp: Path):
    from transformers import BertTokenizer

    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + WORDS
    path = tmp / "vocab.txt"
    path.write_text("\n".join(vocab) + "\n")
    return BertTokenizer(str(path), do_lower_case=True)


def make_model(kind: str = "mlm", layers: int = 2, heads: int = 2, hidden: int = 16, seed: int = 0,
               vocab_size: int | None = None, dtype=torch.float64):
    from transformers import BertConfig, BertForMaskedLM, BertForSequenceClassification

    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=vocab_size or (len(WORDS) + 5),
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=2 * hidden,
        max_position_embeddings=64,
        num_labels=2,
    )
    config._attn_implementation = "eager"
    cls = BertForMaskedLM if kind == "mlm" else BertForSequenceClassification
    model = cls(config).eval().to(dtype)
    # Random init is small; widen the weights so that attention is not uniform and
    # scores are well separated (fewer near-ties between candidates).
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "LayerNorm" not in name and p.dim() > 1:
                p.mul_(8.0)
    return model


@pytest.fixture(scope="session")
def tokenizer(tmp_path_factory):
    return make_tokenizer(tmp_path_factory.mktemp("tok"))


@pytest.fixture
def mlm():
    return make_model("mlm", layers=3, heads=2)


@pytest.fixture
def classifier():
    return make_model("classification", layers=2, heads=3, hidden=18)


def save_checkpoint(path: Path, kind: str = "mlm", tokenizer=None, **kw) -> Path:
    """A tiny float32 checkpoint directory (model + tokenizer) usable as ``--model``."""
    model = make_model(kind, dtype=torch.float32, **kw)
    model.save_pretrained(path)
    (tokenizer or make_tokenizer(path)).save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def mlm_checkpoint(tmp_path_factory, tokenizer):
    return save_checkpoint(tmp_path_factory.mktemp("mlm"), "mlm", tokenizer, layers=2, heads=2)


@pytest.fixture(scope="session")
def classifier_checkpoint(tmp_path_factory, tokenizer):
    return save_checkpoint(tmp_path_factory.mktemp("cls"), "classification", tokenizer, layers=2, heads=2)


@pytest.fixture(scope="session")
def checkpoint(mlm_checkpoint):
    """The 2-layer masked LM checkpoint the ``run`` tests explain (``mlm_checkpoint``)."""
    return mlm_checkpoint


# --------------------------------------------------------------------------- a data file and runs

SINGULAR = {"boy": "boys", "girl": "girls", "dog": "dogs", "cat": "cats", "teacher": "teachers"}
VERBS = [("laughs", "laugh"), ("runs", "run")]


def write_data(path: Path, count: int = 12, seed: int = 0) -> Path:
    """SVA-across-a-PP instances in the tiny vocabulary (JSONL, roles as word indices)."""
    rng = random.Random(seed)
    with open(path, "w") as f:
        for _ in range(count):
            s, a = rng.sample(sorted(SINGULAR), 2)
            s_pl, a_pl = rng.random() < 0.5, rng.random() < 0.5
            good, bad = rng.choice(VERBS)
            if s_pl:
                good, bad = bad, good
            subj = SINGULAR[s] if s_pl else s
            attr = SINGULAR[a] if a_pl else a
            f.write(json.dumps({
                "text": f"the {subj} near the {attr} [MASK]",
                "targets": [good, bad],
                "task": "sva/prep",
                "condition": f"{'plur' if s_pl else 'sing'}_subj_{'plur' if a_pl else 'sing'}_attr",
                "roles": {"det": 0, "subject": 1, "prep": 2, "attractor_det": 3, "attractor": 4, "verb": 5},
            }) + "\n")
    return path


@pytest.fixture(scope="session")
def data_file(tmp_path_factory) -> Path:
    return write_data(tmp_path_factory.mktemp("data") / "tiny.jsonl")


def run_args(checkpoint: Path, data_file: Path, out: Path, *extra: str, n: int = 6) -> list[str]:
    """The ``run`` command's arguments for the tiny checkpoint and data file."""
    return ["run", "--task", "sva/prep", "--data", str(data_file), "--n", str(n), "--model", str(checkpoint),
            "--out", str(out), "--steps", "4", "--quiet", *extra]


@pytest.fixture(scope="module")
def run_dir(checkpoint, data_file, tmp_path_factory) -> Path:
    """A finished 4-instance run of the tiny checkpoint, one per test module."""
    from typer.testing import CliRunner

    from influence_patterns.cli import app

    out = tmp_path_factory.mktemp("run") / "run"
    result = CliRunner().invoke(app, run_args(checkpoint, data_file, out, n=4))
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="module")
def done_run(run_dir) -> Path:
    """The same finished run, by the name the hostile-case tests use: copy it before damaging it."""
    return run_dir


# --------------------------------------------------------------------------- searches compared


#: Every fast scorer by method name: each goes through the same comparisons with the reference.
FAST_SCORERS = {"fast": gpr_fast, "fast-full": gpr_full_width}


def assert_same_searches(fast, ref) -> None:
    """Two searches (per sentence, per source) agree: patterns, signs and every score (1e-9)."""
    assert len(fast) == len(ref)
    for fr, rr in zip(fast, ref):
        assert [s.source_index for s in fr] == [s.source_index for s in rr]
        for f, r in zip(fr, rr):
            assert (f.positions, f.heads, f.sign) == (r.positions, r.heads, r.sign)
            for a, b in [(f.g, r.g), (f.influence_token, r.influence_token), (f.influence_head, r.influence_head)]:
                assert a == pytest.approx(b, rel=1e-9, abs=1e-12)
            for fs, rs in zip(f.token_scores[:-1], r.token_scores[:-1]):
                torch.testing.assert_close(fs, rs, rtol=1e-9, atol=1e-12)
            for fs, rs in zip(f.head_scores, r.head_scores):
                torch.testing.assert_close(fs, rs, rtol=1e-9, atol=1e-12)


def assert_decomposes(search, L: int, atol: float) -> None:
    """The candidates of each layer add up to the prefix's influence (method.md, pattern influence)."""
    # Stage 1: layer-1 candidates sum to g; layer-l candidates to the prefix's score.
    total = search.g
    for l in range(1, L):
        scores = search.token_scores[l - 1]
        assert float(scores.sum()) == pytest.approx(total, abs=atol)
        total = float(scores[search.positions[l]])
    assert search.influence_token == pytest.approx(float(search.token_scores[-1][search.positions[-1]]), abs=atol)
    # Stage 2: layer-1 heads + skip sum to I(π^e); layer l to the choice at l-1.
    total = search.influence_token
    for l in range(1, L + 1):
        scores = search.head_scores[l - 1]
        assert float(scores.sum()) == pytest.approx(total, abs=atol)
        h = search.heads[l - 1]
        total = float(scores[0 if h is None else h + 1])
        if search.positions[l - 1] != search.positions[l]:
            assert float(scores[0]) == pytest.approx(0.0, abs=atol)  # a skip only continues its position
    assert search.influence_head == pytest.approx(total, abs=atol)


def assert_context_and_skip_reach_the_output(adapter, batch):
    """Zeroing a^2 or s^2 changes y, and each does so differently: the hooks are live and
    the skip is a node of its own (test_architectures, test_decoders)."""
    from influence_patterns.graph.hooks import Interceptor, intercept

    class Zero(Interceptor):
        def __init__(self, what):
            self.what = what

        def on_attn(self, layer, context, skip):
            if layer != 2:
                return context, skip
            return (context * 0, skip) if self.what == "context" else (context, skip * 0)

    with torch.no_grad():
        base = adapter.logits(batch.x, batch.attention_mask, batch.target_index)
        outs = {}
        for what in ("context", "skip"):
            with intercept(adapter, Zero(what)):
                outs[what] = adapter.logits(batch.x, batch.attention_mask, batch.target_index)
    assert not torch.allclose(outs["context"], base)
    assert not torch.allclose(outs["skip"], base)
    assert not torch.allclose(outs["context"], outs["skip"])


# --------------------------------------------------------------------------- headless Chromium


def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.skip("chromium is not installed (apt-get install chromium; .ci/run installs it)")
    return path


def browse(page: Path, profile: Path, *args: str) -> subprocess.CompletedProcess:
    """Open ``page`` in headless Chromium with its own ``profile`` directory."""
    command = [
        chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
        "--virtual-time-budget=5000", *args,
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=180)


# --------------------------------------------------------------------------- a hand-written explanation

SAMPLE_TOKENS = ["[CLS]", "the", "boys", "near", "the", "girl", "[MASK]", "funny", ".", "[SEP]"]


def sample_explanation():
    """A hand-written explanation of a 4-layer, 3-head model: three sources, one token twice."""
    from influence_patterns.result import Explanation, Pattern

    patterns = [
        Pattern(2, "boys", 1, 1.5, [2, 2, 6, 6, 6], [None, 2, None, 1], 1.0, 0.6),
        Pattern(5, "girl", -1, -0.8, [5, 5, 5, 6, 6], [None, None, 0, None], -0.5, -0.3),
        Pattern(4, "the", 1, 0.2, [4, 1, 1, 6, 6], [1, None, 2, 0], 0.1, 0.05),
    ]
    return Explanation(
        model="tiny", text="the boys near the girl [MASK] funny .", tokens=list(SAMPLE_TOKENS),
        target_index=6, num_layers=4, num_heads=3, steps=10, baseline="mask",
        qoi_name="agreement", qoi_value=1.234, qoi_baseline_value=0.0,
        patterns=patterns, targets=["are", "is"],
    )


# --------------------------------------------------------------------------- a hand-written run

ROW_TOKENS = ["[CLS]", "the", "boy", "near", "the", "girls", "[MASK]", "happy", ".", "[SEP]"]
PATTERN_A = ([2, 2, 6, 6, 6], [None, 1, None, 0])  # 6 instances
PATTERN_B = ([2, 2, 2, 6, 6], [None, None, 2, 0])  # 3 instances
PATTERN_C = ([2, 3, 6, 6, 6], [1, 1, None, 0])  # 1 instance


def sample_row(positions, heads, shift=0, task="sva_pp", qoi=1.0, sign=1) -> dict:
    """A result row of a 4-layer, 3-head model whose subject's pattern takes ``positions``
    and ``heads``; ``shift`` inserts words before the subject (sentences differ)."""
    from influence_patterns.result import Explanation, Pattern

    tokens = ROW_TOKENS[:1] + ["very"] * shift + ROW_TOKENS[1:]
    moved = [p + shift for p in positions]
    subject = Pattern(2 + shift, "boy", sign, sign * 1.0, moved, list(heads), sign * 0.8, sign * 0.5)
    other = Pattern(5 + shift, "girls", 1, 0.3, [5 + shift] * 2 + [6 + shift] * 3,
                    [None, 0, None, None], 0.2, 0.1)
    expl = Explanation(
        model="tiny", text=" ".join(tokens[1:-1]), tokens=tokens, target_index=6 + shift,
        num_layers=4, num_heads=3, steps=10, baseline="mask", qoi_name="q", qoi_value=qoi,
        qoi_baseline_value=0.0, patterns=[subject, other], targets=["is", "are"],
    )
    d = expl.to_dict()
    d.update(task=task, condition="sing_plur", correct=qoi > 0,
             roles={"subject": 2 + shift, "attractor": 5 + shift, "verb": 6 + shift})
    return d


def sample_rows() -> list[dict]:
    """Ten rows of one task: PATTERN_A six times, PATTERN_B three times (two correct), PATTERN_C once."""
    out = [sample_row(*PATTERN_A, shift=k % 2) for k in range(6)]
    out += [sample_row(*PATTERN_B, shift=k % 2, qoi=-1.0, sign=-1 if k == 0 else 1) for k in range(3)]
    out += [sample_row(*PATTERN_C)]
    return out


def write_sample_run(path: Path, data: list[dict] | None = None) -> Path:
    """A run directory (results.jsonl, run.json) of ``data`` (default: :func:`sample_rows`)."""
    path.mkdir(parents=True, exist_ok=True)
    data = sample_rows() if data is None else data
    (path / "results.jsonl").write_text("".join(json.dumps({"index": i, **r}) + "\n" for i, r in enumerate(data)))
    (path / "run.json").write_text(json.dumps({"model": "tiny", "task": "sva_pp", "seed": 0}))
    return path


# --------------------------------------------------------------------------- analysis rows
# A 3-layer, 2-head run row written by hand: row([pattern(source, positions, heads)], correct).

ANALYSIS_TOKENS = ["[CLS]", "the", "boys", "near", "the", "girl", "[MASK]", "[SEP]"]
ROLES = {"subject": 2, "attractor": 5, "verb": 6}


def pattern(source, positions, heads, infl=1.0):
    return {"source_index": source, "source_token": ANALYSIS_TOKENS[source], "sign": 1, "g": infl,
            "positions": positions, "heads": heads, "influence_token": infl, "influence_head": infl}


_INDEX = itertools.count()  # row indices, unique across a session


def row(patterns, correct=True, roles=ROLES):
    return {"index": next(_INDEX), "text": "the boys near the girl [MASK]", "steps": 4, "baseline": "mask",
            "tokens": ANALYSIS_TOKENS, "target_index": 6, "num_layers": 3, "num_heads": 2,
            "qoi": {"name": "agreement", "value": 1.0 if correct else -1.0, "baseline_value": 0.0},
            "patterns": patterns, "roles": dict(roles), "correct": correct, "task": "sva/prep", "model": "m"}


def four_source_explanation():
    """Four source tokens (boys, girl, near, funny) with hand-written patterns of a 4-layer, 3-head model."""
    from influence_patterns.result import Explanation, Pattern

    patterns = [
        Pattern(2, "boys", 1, 1.5, [2, 2, 6, 6, 6], [None, 2, None, 1], 1.0, 0.6),
        Pattern(5, "girl", -1, -0.8, [5, 5, 5, 6, 6], [None, None, 0, None], -0.5, -0.3),
        Pattern(3, "near", 1, 0.2, [3, 2, 2, 6, 6], [1, None, 2, 0], 0.1, 0.05),
        Pattern(7, "funny", 1, 0.1, [7, 7, 7, 7, 6], [None, None, None, 2], 0.05, 0.02),
    ]
    return Explanation(
        model="tiny", text="the boys near the girl [MASK] funny .", tokens=list(SAMPLE_TOKENS),
        target_index=6, num_layers=4, num_heads=3, steps=10, baseline="mask",
        qoi_name="logit[are] - logit[is]", qoi_value=1.234, qoi_baseline_value=0.0,
        patterns=patterns, targets=["are", "is"],
    )


def by_gid(fig, prefix: str) -> dict[str, object]:
    """The figure's artists whose gid starts with ``prefix``, by gid."""
    return {a.get_gid(): a for a in fig.findobj(lambda a: (a.get_gid() or "").startswith(prefix))}
