"""RoBERTa with a real byte-level BPE tokenizer (trained here, offline): the user writes
``[MASK]`` and plain target words; the library finds ``<mask>``, the in-sentence pieces
``Ġare`` / ``Ġis``, the roles' word pieces, and explains with fast == reference."""

from __future__ import annotations

import pytest
import torch

from influence_patterns import Explainer, Query
from influence_patterns.attribution.quadrature import make_quadrature
from influence_patterns.errors import InputError
from influence_patterns.runs import role_token_indices
from influence_patterns.search.fast import gpr_fast
from influence_patterns.search.full_width import gpr_full_width
from influence_patterns.search.reference import gpr_reference

from conftest import assert_same_searches

CORPUS = [
    "the dog is bad", "the dogs are bad", "the author is tall", "the authors are tall",
    "the guard likes the author", "the guards like the authors", "a cat is here", "the cats are here",
    "the pilot that the guards like is tall", "the pilots near the house are tall",
]


@pytest.fixture(scope="module")
def bpe_files(tmp_path_factory):
    from tokenizers import ByteLevelBPETokenizer

    out = tmp_path_factory.mktemp("bpe")
    trainer = ByteLevelBPETokenizer()
    trainer.train_from_iterator(CORPUS * 20, vocab_size=1000, min_frequency=1,
                                special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"])
    trainer.save_model(str(out))
    return str(out / "vocab.json"), str(out / "merges.txt")


def _mask_token():
    from tokenizers import AddedToken

    # as roberta-base's: <mask> swallows the space before it
    return AddedToken("<mask>", lstrip=True, rstrip=False, normalized=False, special=True)


@pytest.fixture(scope="module")
def bpe_tokenizer(bpe_files):
    from transformers import RobertaTokenizerFast

    return RobertaTokenizerFast(*bpe_files, mask_token=_mask_token())


@pytest.fixture(scope="module")
def bpe_roberta(bpe_tokenizer):
    from transformers import RobertaConfig, RobertaForMaskedLM

    torch.manual_seed(0)
    config = RobertaConfig(
        vocab_size=len(bpe_tokenizer), hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=32, max_position_embeddings=40, pad_token_id=1, bos_token_id=0, eos_token_id=2,
        type_vocab_size=1,
    )
    config._attn_implementation = "eager"
    model = RobertaForMaskedLM(config).eval().to(torch.float64)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" not in name.lower() and p.dim() > 1:
                p.mul_(8.0)
    return model


def test_tokenizer_is_byte_level(bpe_tokenizer):
    assert bpe_tokenizer.tokenize(" are") == ["Ġare"]
    assert bpe_tokenizer.tokenize("are") != ["Ġare"]  # the bare word is not the in-sentence piece
    assert bpe_tokenizer.mask_token == "<mask>"


def test_targets_are_in_sentence_pieces_and_mask_is_mapped(bpe_tokenizer, bpe_roberta):
    ex = Explainer(bpe_roberta, bpe_tokenizer, steps=4)
    batch = ex.prepare([Query("the dogs [MASK] bad", ("are", "is"))])
    good, bad = batch.classes[0].tolist()
    assert bpe_tokenizer.convert_ids_to_tokens([good, bad]) == ["Ġare", "Ġis"]
    ids = batch.input_ids[0].tolist()
    assert ids[int(batch.target_index[0])] == bpe_tokenizer.mask_token_id
    # the pieces the model sees: <s> the Ġdogs <mask> Ġbad </s>
    assert bpe_tokenizer.convert_ids_to_tokens(ids) == ["<s>", "the", "Ġdogs", "<mask>", "Ġbad", "</s>"]
    expl = ex.explain("the dogs [MASK] bad", ("are", "is"))
    assert [p.source_token for p in expl.patterns] == ["the", "Ġdogs", "Ġbad"]
    assert all(p.positions[-1] == 3 for p in expl.patterns)


def test_fast_equals_reference_with_bpe(bpe_tokenizer, bpe_roberta):
    ex = Explainer(bpe_roberta, bpe_tokenizer)
    batch = ex.prepare([Query("the pilots near the house [MASK] tall", ("are", "is")),
                        Query("the guard likes the [MASK]", ("author", "authors"))])
    quad = make_quadrature(6)
    ref = gpr_reference(ex.adapter, batch, quad, ex.qoi)
    assert_same_searches(gpr_full_width(ex.adapter, batch, quad, ex.qoi), ref)
    assert_same_searches(gpr_fast(ex.adapter, batch, quad, ex.qoi), ref)


def test_multi_piece_target_named(bpe_tokenizer, bpe_roberta):
    ex = Explainer(bpe_roberta, bpe_tokenizer, steps=2)
    with pytest.raises(InputError, match="not a single word piece"):
        ex.explain("the dogs [MASK] bad", ("are", "zebras"))


class _NoOffsets:
    """The same tokenizer seen as a slow one (no offsets): words are placed one by one."""

    is_fast = False

    def __init__(self, tok):
        self._tok = tok

    def __getattr__(self, name):
        return getattr(self._tok, name)


@pytest.mark.parametrize("fast", [True, False])
def test_roles_map_to_bpe_pieces(bpe_tokenizer, fast):
    tok = bpe_tokenizer if fast else _NoOffsets(bpe_tokenizer)
    text = "the pilots near the house [MASK] tall"
    tokens = bpe_tokenizer.convert_ids_to_tokens(bpe_tokenizer(text.replace("[MASK]", "<mask>"))["input_ids"])
    roles = role_token_indices(tok, text, {"det": 0, "subject": 1, "attractor": 4, "verb": 5}, tokens)
    assert {r: tokens[i] for r, i in roles.items()} == {
        "det": "the", "subject": "Ġpilots", "attractor": "Ġhouse", "verb": "<mask>",
    }
