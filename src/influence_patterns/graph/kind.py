"""Which head a Hugging Face model carries (a masked LM, a causal LM or a sequence
classifier), and
how texts write the masked LM's ``[MASK]``.

The one place that decides it (by class name); torch-free, so model loading can
check a checkpoint's class before torch is imported.
"""

from __future__ import annotations

from typing import Any

#: How texts write the masked word, whatever the tokenizer's own mask token (``<mask>``
#: for RoBERTa: swapped in by ``attribution.inputs.with_mask_token``).
MASK = "[MASK]"

#: The two heads an explanation is about, by the class-name suffix Hugging Face gives them.
HEAD_KINDS = {"ForMaskedLM": "mlm", "ForSequenceClassification": "classification",
              "ForCausalLM": "causal", "LMHeadModel": "causal"}


def head_kind(model: Any) -> str | None:
    """``"mlm"`` for a ``*ForMaskedLM``, ``"classification"`` for a
    ``*ForSequenceClassification``, ``"causal"`` for a ``*ForCausalLM`` or
    ``*LMHeadModel`` (GPT-2), ``None`` for anything else (decided by class name,
    the one place that does)."""
    name = type(model).__name__
    return next((kind for suffix, kind in HEAD_KINDS.items() if name.endswith(suffix)), None)
