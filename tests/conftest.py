"""Shared fixtures: tiny random-weight BERT models with a small word-level tokenizer."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

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
