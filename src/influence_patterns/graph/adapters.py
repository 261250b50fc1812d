"""Architecture adapters: map a Hugging Face model's own modules onto the graph nodes.

An adapter names, for a loaded model, the module whose output is ``h^0`` (the
embedding output), the word-embedding table (``x``), per layer the module whose
inputs are the heads' context vectors ``a^{l,·}`` (before ``W_O``) and the skip
``s^l``, the module whose output is ``h^l``, and how to get the logits ``y`` at the
target position. The graph code and the search code only talk to adapters.

This module holds the base class and BERT's adapter; graph/architectures.py adds
the rest of the family and the registry (:func:`adapter_for`), so imports point
one way: architectures → adapters.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Callable, Iterator

import torch
from torch import nn

from influence_patterns.graph.kind import head_kind


def h_hook(interceptor: Any, layer: int) -> Callable[..., Any]:
    """A forward hook that passes a module's output, h^``layer`` (the first element where
    the module returns a tuple), through ``interceptor.on_h``."""

    def hook(module, args, output):
        if isinstance(output, tuple):
            return (interceptor.on_h(layer, output[0]),) + tuple(output[1:])
        return interceptor.on_h(layer, output)

    return hook


@contextmanager
def removed_on_error(handles: list[Any]) -> Iterator[list[Any]]:
    """Hooks registered into ``handles`` inside the block are removed again if the block
    fails (a model is never left half hooked)."""
    try:
        yield handles
    except Exception:
        for h in handles:
            h.remove()
        raise


class Adapter:
    """Base class. Subclasses set ``model_types`` and ``base_name`` and implement the
    module look-ups the defaults here do not fit."""

    model_types: tuple[str, ...] = ()
    #: The model's attribute holding the encoder without heads (``model.bert``, ...).
    base_name: str = ""
    #: Causal attention (a decoder: graph.decoders); positions of a pattern never decrease.
    causal: bool = False
    #: The head kinds (graph.kind) the adapter serves.
    kinds: tuple[str, ...] = ("mlm", "classification")

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.config = model.config
        self.kind = head_kind(model) or "mlm"

    # --- sizes -----------------------------------------------------------------
    @property
    def num_layers(self) -> int:
        return len(self.layers())

    @property
    def num_heads(self) -> int:
        return int(self.config.num_attention_heads)

    @property
    def hidden_size(self) -> int:
        return int(self.config.hidden_size)

    @property
    def max_length(self) -> int:
        return int(self.config.max_position_embeddings)

    # --- modules ---------------------------------------------------------------
    def base(self) -> nn.Module:
        """The encoder without heads: ``model.<base_name>``."""
        return getattr(self.model, self.base_name)

    def word_embeddings(self) -> nn.Embedding:
        """The word-piece table x is read from (``base().embeddings.word_embeddings``)."""
        return self.base().embeddings.word_embeddings

    def embeddings(self) -> nn.Module:
        """Module whose output is h^0 (by default ``base().embeddings``)."""
        return self.base().embeddings

    def layers(self) -> list[nn.Module]:
        """Modules whose outputs are h^1..h^L."""
        raise NotImplementedError

    def attention_output(self, layer: nn.Module) -> nn.Module:
        """Module called as ``f(context, skip)``: its first two inputs are a^{l,·} and s^l."""
        raise NotImplementedError

    # --- position-wise parts (search.fast) ---------------------------------------
    def attention_projections(self, layer: nn.Module) -> tuple[nn.Linear, nn.Linear, nn.Linear]:
        """Layer l's ``(W_Q, W_K, W_V)``: the model's own linear maps reading h^{l-1}
        (heads are contiguous ``head_dim`` slices of their outputs)."""
        raise NotImplementedError

    def attention_scaling(self, layer: nn.Module) -> float:
        """The factor on ``q·k`` in layer l's attention scores (``1/sqrt(head_dim)``)."""
        head_dim = self.hidden_size // self.num_heads
        return float(getattr(self._self_attention(layer), "scaling", head_dim**-0.5))

    def _self_attention(self, layer: nn.Module) -> nn.Module:
        """The module that owns the attention's Q/K/V maps (and ``scaling``)."""
        raise NotImplementedError

    def after_attention(self, layer: nn.Module, context: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        """h^l from (a^l, s^l), position by position, through the model's own modules:
        ``W_O``, the residual sum, LayerNorm, the FFN with its residual, LayerNorm.
        ``context`` and ``skip`` are (rows, seq, hidden); any rows/positions will do."""
        raise NotImplementedError

    def single_position_unsupported(self) -> str | None:
        """Why the single-position scorer cannot run on this model, or ``None`` when it
        can (attention of the plain ``softmax(q·k·scaling) v`` form, eval mode)."""
        if self.model.training:
            return "the model is in training mode (dropout on)"
        kind = getattr(self.config, "position_embedding_type", "absolute")
        if kind not in (None, "absolute"):
            return f"position_embedding_type={kind!r} adds position terms to the attention scores"
        return None

    # --- hooks -------------------------------------------------------------------
    def install_hooks(self, interceptor: Any) -> list[Any]:
        """Register hooks that pass h^0..h^L and (a^l, s^l) through ``interceptor``;
        return the handles. This default fits models whose ``attention_output(layer)``
        module is called as ``f(context, skip)`` (BERT, RoBERTa, ELECTRA). Adapters for
        other module layouts override it."""

        def attn_hook(layer: int):
            def hook(module, args, kwargs):
                context, skip = interceptor.on_attn(layer, args[0], args[1])
                return (context, skip) + tuple(args[2:]), kwargs

            return hook

        handles = [self.embeddings().register_forward_hook(h_hook(interceptor, 0))]
        with removed_on_error(handles):
            for l, layer in enumerate(self.layers(), start=1):
                handles.append(
                    self.attention_output(layer).register_forward_pre_hook(attn_hook(l), with_kwargs=True)
                )
                handles.append(layer.register_forward_hook(h_hook(interceptor, l)))
        return handles

    # --- forward -----------------------------------------------------------------
    def _encoder_kwargs(self, attention_mask: torch.Tensor) -> dict[str, Any]:
        """Extra keyword arguments for the forward pass (e.g. position ids)."""
        return {}

    def _mlm_head(self, rows: torch.Tensor) -> torch.Tensor:
        """Vocabulary logits (rows, V) from final hidden states (rows, d)."""
        raise NotImplementedError

    def final_hidden(self, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """h^L (rows, n, d): the pass of :meth:`logits` without the head (the same hooks
        fire), for callers that read only the nodes."""
        return self.base()(inputs_embeds=inputs_embeds, attention_mask=attention_mask,
                           **self._encoder_kwargs(attention_mask)).last_hidden_state

    def logits(self, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor, target_index: torch.Tensor) -> torch.Tensor:
        """``y``: logits (rows, C) of the classifier on the whole model, or of the MLM
        head (``_mlm_head``) on each row's final hidden state at its target position."""
        kwargs = self._encoder_kwargs(attention_mask)
        if self.kind == "classification":
            return self.model(inputs_embeds=inputs_embeds, attention_mask=attention_mask, **kwargs).logits
        hidden = self.base()(inputs_embeds=inputs_embeds, attention_mask=attention_mask, **kwargs).last_hidden_state
        rows = hidden[torch.arange(hidden.shape[0], device=hidden.device), target_index]  # (rows, hidden)
        return self._mlm_head(rows)


class BertAdapter(Adapter):
    """BERT's layout under ``model.bert``: ``encoder.layer[l]`` with ``attention.self``
    (Q/K/V) and ``attention.output`` called as ``f(context, skip)``. RoBERTa and ELECTRA
    subclass it with their own ``base_name``."""

    model_types = ("bert",)
    base_name = "bert"

    def layers(self) -> list[nn.Module]:
        return list(self.base().encoder.layer)

    def attention_output(self, layer: nn.Module) -> nn.Module:
        return layer.attention.output

    def _self_attention(self, layer: nn.Module) -> nn.Module:
        return layer.attention.self

    def attention_projections(self, layer):
        sa = self._self_attention(layer)
        return sa.query, sa.key, sa.value

    def after_attention(self, layer, context, skip):
        return layer.feed_forward_chunk(layer.attention.output(context, skip))

    def _mlm_head(self, rows):
        return self.model.cls(rows)
