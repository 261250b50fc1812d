"""Adapters for the BERT family beyond BERT: RoBERTa (XLM-R, CamemBERT), ELECTRA,
DistilBERT and ALBERT (docs/method.md#the-graph; docs/architectures.md has the node mapping), and the
registry :data:`ADAPTERS` with :func:`adapter_for`, the one look-up by ``model_type``.

RoBERTa and ELECTRA lay their layers out like BERT (an attention-output module
called as ``f(context, skip)``), so they subclass ``BertAdapter`` with their own
``base_name``, position ids and MLM head. DistilBERT and
ALBERT apply ``W_O`` and the residual sum inside their attention code; for those the
context is hooked at the input of ``W_O`` and the skip is made a node of its own by
re-forming the LayerNorm's input as ``W_O(context) + skip`` from the hooked tensors
(same values, separate gradient paths). ALBERT runs one shared layer module L
times, so its hooks count calls to know the layer.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from influence_patterns.errors import ModelError
from influence_patterns.graph.adapters import Adapter, BertAdapter, removed_on_error
from influence_patterns.graph.decoders import DECODER_ADAPTERS
from influence_patterns.graph.kind import head_kind
from influence_patterns.registry import Registry


# --- RoBERTa, XLM-RoBERTa, CamemBERT: BERT's layout ------------------------------------
class RobertaAdapter(BertAdapter):
    """Same modules as BERT under ``model.roberta``. Position ids start at
    ``padding_idx + 1`` and padded positions get ``padding_idx``; the model derives
    them from ``input_ids``, which the IG path does not have, so they are passed
    explicitly from the attention mask (identical for right-padded batches)."""

    model_types = ("roberta", "xlm-roberta", "camembert")
    base_name = "roberta"

    @property
    def max_length(self) -> int:
        return int(self.config.max_position_embeddings) - int(self.config.pad_token_id) - 1

    def _encoder_kwargs(self, attention_mask):
        mask = attention_mask.long()
        return {"position_ids": torch.cumsum(mask, dim=1) * mask + int(self.config.pad_token_id)}

    def _mlm_head(self, rows):
        return self.model.lm_head(rows)


# --- ELECTRA: BERT's layout, optional embedding projection -------------------------------
class ElectraAdapter(BertAdapter):
    """BERT's layout under ``model.electra``. When ``embedding_size != hidden_size`` the
    embeddings are projected by ``embeddings_project``; h^0 is the projected output,
    and x stays the (embedding_size-wide) word-piece row. MLM means the generator
    (``ElectraForMaskedLM``); the discriminator has neither head and is refused."""

    model_types = ("electra",)
    base_name = "electra"

    def embeddings(self) -> nn.Module:
        base = self.base()
        return base.embeddings_project if hasattr(base, "embeddings_project") else base.embeddings

    def _mlm_head(self, rows):
        return self.model.generator_lm_head(self.model.generator_predictions(rows))


# --- DistilBERT and ALBERT: W_O and the residual sum inside the attention module ---------
class _InnerResidualAdapter(Adapter):
    """Hooks for layers whose attention code computes ``LN(W_O(context) + h^{l-1})`` itself.

    Per layer call: a pre-hook on the layer keeps its input h^{l-1} (the skip's value);
    a pre-hook on ``W_O`` passes ``(context, h^{l-1})`` through the interceptor and
    feeds ``W_O`` the returned context; a hook on the module whose output is the
    projected context as added (``W_O`` or the dropout after it) keeps that tensor; a
    pre-hook on the LayerNorm replaces its input ``W_O(context) + h^{l-1}`` by the same
    sum formed from the kept tensors, with the interceptor's skip in place of
    h^{l-1}. The layer number is counted from the h^0 hook, so a module that runs
    several times (ALBERT) gets a new number at every call.
    """

    def blocks(self) -> list[nn.Module]:
        """Distinct modules whose outputs are layer outputs h^l (each hooked once)."""
        raise NotImplementedError

    def block_parts(self, block: nn.Module) -> tuple[nn.Module, nn.Module, nn.Module]:
        """(``W_O``, the module whose output is the projected context as added, the
        LayerNorm whose input is that plus the skip)."""
        raise NotImplementedError

    def attention_output(self, layer: nn.Module) -> nn.Module:
        raise NotImplementedError(
            f"{type(self).__name__}: the attention module applies W_O and the residual itself; "
            "use install_hooks, which hooks W_O's input and re-forms the LayerNorm's input"
        )

    def install_hooks(self, interceptor: Any) -> list[Any]:
        num_layers = self.num_layers
        state: dict[str, Any] = {"layer": 0}

        def h0_hook(module, args, output):
            state.clear()
            state["layer"] = 0
            return interceptor.on_h(0, output)

        def block_pre(module, args, kwargs):
            state["layer"] += 1
            if state["layer"] > num_layers:
                raise RuntimeError(f"{type(self).__name__}: more layer calls than the {num_layers} layers")
            state["input"] = args[0] if args else kwargs["hidden_states"]  # h^{l-1}, as the layer sees it

        def block_post(module, args, output):
            return interceptor.on_h(state["layer"], output)

        def w_o_pre(module, args):
            context, skip = interceptor.on_attn(state["layer"], args[0], state.pop("input"))
            state["skip"] = skip
            return (context,) + tuple(args[1:])

        def projected_post(module, args, output):
            state["projected"] = output

        def norm_pre(module, args):
            # The model's own sum has the same value; only this one carries the gradient.
            return (state.pop("projected") + state.pop("skip"),) + tuple(args[1:])

        handles = []
        with removed_on_error(handles):
            handles.append(self.embeddings().register_forward_hook(h0_hook))
            for block in self.blocks():
                w_o, projected, norm = self.block_parts(block)
                handles.append(block.register_forward_pre_hook(block_pre, with_kwargs=True))
                handles.append(w_o.register_forward_pre_hook(w_o_pre))
                handles.append(projected.register_forward_hook(projected_post))
                handles.append(norm.register_forward_pre_hook(norm_pre))
                handles.append(block.register_forward_hook(block_post))
        return handles


class DistilBertAdapter(_InnerResidualAdapter):
    """``TransformerBlock``: ``sa_layer_norm(attention.out_lin(context) + h^{l-1})``. No
    segment embeddings: h^0 = ``LN(x + pos)``."""

    model_types = ("distilbert",)
    base_name = "distilbert"

    def layers(self) -> list[nn.Module]:
        return list(self.base().transformer.layer)

    def blocks(self) -> list[nn.Module]:
        return self.layers()

    def block_parts(self, block):
        return block.attention.out_lin, block.attention.out_lin, block.sa_layer_norm

    def _self_attention(self, layer):
        return layer.attention

    def attention_projections(self, layer):
        return layer.attention.q_lin, layer.attention.k_lin, layer.attention.v_lin

    def after_attention(self, layer, context, skip):
        u = layer.sa_layer_norm(layer.attention.out_lin(context) + skip)
        return layer.output_layer_norm(layer.ffn(u) + u)

    def _mlm_head(self, rows):
        m = self.model
        return m.vocab_projector(m.vocab_layer_norm(m.activation(m.vocab_transform(rows))))


class AlbertAdapter(_InnerResidualAdapter):
    """``AlbertAttention``: ``LayerNorm(h^{l-1} + dropout(dense(context)))``. The
    embeddings (``embedding_size`` wide) are mapped up by
    ``encoder.embedding_hidden_mapping_in``, whose output is h^0. Layers share
    parameters: layer l runs ``albert_layer_groups[g].albert_layers[k]``, the same
    module for many l."""

    model_types = ("albert",)
    base_name = "albert"

    def embeddings(self) -> nn.Module:
        return self.base().encoder.embedding_hidden_mapping_in

    def layers(self) -> list[nn.Module]:
        """The module that computes each h^l, l = 1..L, in call order (repeats allowed)."""
        cfg = self.config
        groups = self.base().encoder.albert_layer_groups
        out = []
        for i in range(cfg.num_hidden_layers):
            g = int(i / (cfg.num_hidden_layers / cfg.num_hidden_groups))  # as AlbertTransformer does
            out.extend(groups[g].albert_layers)
        return out

    def blocks(self) -> list[nn.Module]:
        return [layer for group in self.base().encoder.albert_layer_groups for layer in group.albert_layers]

    def block_parts(self, block):
        attn = block.attention
        return attn.dense, attn.output_dropout, attn.LayerNorm

    def _self_attention(self, layer):
        return layer.attention

    def attention_projections(self, layer):
        return layer.attention.query, layer.attention.key, layer.attention.value

    def after_attention(self, layer, context, skip):
        attn = layer.attention
        u = attn.LayerNorm(skip + attn.output_dropout(attn.dense(context)))
        return layer.full_layer_layer_norm(layer.ff_chunk(u) + u)

    def _mlm_head(self, rows):
        return self.model.predictions(rows)


# --- the registry: model_type → adapter class ---------------------------------------
ADAPTERS: Registry[type[Adapter]] = Registry(
    "architecture", ModelError, "unsupported {kind} {name!r}; supported model types: {sorted}")


def register_adapter(cls: type[Adapter]) -> type[Adapter]:
    """Register an adapter class for each of its ``model_types``."""
    for model_type in cls.model_types:
        ADAPTERS.register(model_type, cls, (cls.__doc__ or "").strip().split("\n")[0], replace=True)
    return cls


for _cls in (BertAdapter, RobertaAdapter, ElectraAdapter, DistilBertAdapter, AlbertAdapter, *DECODER_ADAPTERS):
    register_adapter(_cls)


def adapter_for(model: Any) -> Adapter:
    """The adapter for ``model``, or a ``ModelError`` listing the supported types."""
    cls = ADAPTERS.lookup(getattr(getattr(model, "config", None), "model_type", None))
    kind = head_kind(model)
    if kind is None or kind not in cls.kinds:
        heads = {"mlm": "masked-LM", "classification": "sequence-classification", "causal": "causal-LM"}
        served = " or ".join(heads[k] for k in cls.kinds)
        raise ModelError(f"{type(model).__name__} has no {served} head")
    return cls(model)
