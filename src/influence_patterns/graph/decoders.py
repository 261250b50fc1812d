"""Adapters for causal decoders (docs/decoders.md): GPT-2, GPT-NeoX/Pythia, the Llama
family (Llama, Qwen2, Mistral) and the first Gemma, hooked on the real Hugging Face modules.

The graph of a pre-norm decoder, per layer l and position t (docs/decoders.md, "The graph"):

    sequential (GPT-2, Llama, Qwen2, Mistral, Gemma):
        u_t = s^l_t + W_O [a^{l,1}_t; ...] (+ b_O),   h^l_t = u_t + MLP(N2(u_t))
    parallel residual (GPT-NeoX with use_parallel_residual, i.e. Pythia):
        h^l_t = s^l_t + W_O [a^{l,·}_t] + MLP(N2(s^l_t))

``s^l_t`` is h^{l-1}_t on the residual; in the parallel form it is the position-wise
route (the skip and the MLP, which reads the same h^{l-1}_t), so every path still
passes, in each layer, through exactly one of s^l_t or a^{l,j}_t, and one h^l_t.

How the hooks make s^l a node of its own. The layer reads its input h^{l-1} twice:
as the residual and through the first norm into the attention. The layer's
pre-hook hands the layer ``h.detach()`` (same values, no gradient) and a pre-hook on
the first norm gives it the real h (the attention route). A pre-hook on ``W_O``
passes ``(context, h)`` through the interceptor; a hook on ``W_O``'s output adds
``skip − h.detach()`` to it (exactly zero in value unless the interceptor changed
the skip), so the residual sum ``h.detach() + W_O(a) + (skip − h.detach())`` has the
model's value and carries the gradient of the skip alone. In the parallel form a
pre-hook on the MLP's norm feeds it the skip too. h^0 (the embedding output: token +
learned position for GPT-2, token alone where positions are rotary) is the first
layer's input.

Llama, Qwen2, Mistral, Gemma and GPT-NeoX compute the attention softmax in float32 even
for float64 weights (and so does the RMSNorm of the Llama family and Gemma, see
``LlamaAdapter``); their attention runs here through :func:`eager_attention`, the
same eager attention with the softmax in the wider of float32 and the model's dtype
(identical to ``eager`` in float32, bfloat16 and float16; exact in float64).
"""

from __future__ import annotations

import functools
import sys
from typing import Any

import torch
from torch import nn

from influence_patterns.errors import ModelError
from influence_patterns.graph.adapters import Adapter, h_hook, removed_on_error

#: The attention implementation name these adapters give decoders that need it.
ATTENTION = "influence-patterns-eager"


def eager_attention(module: nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                    attention_mask: torch.Tensor | None, scaling: float | None = None, dropout: float = 0.0,
                    **kwargs: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """Hugging Face's eager attention (GQA by repeating key/value heads to their query
    heads), softmax in ``promote_types(float32, dtype)``."""
    groups = int(getattr(module, "num_key_value_groups", 1) or 1)
    if groups > 1:
        key = key.repeat_interleave(groups, dim=1)
        value = value.repeat_interleave(groups, dim=1)
    if scaling is None:
        scaling = query.shape[-1] ** -0.5
    weights = torch.matmul(query, key.transpose(2, 3)) * scaling
    if attention_mask is not None:
        weights = weights + attention_mask[..., : key.shape[-2]]
    wide = torch.promote_types(torch.float32, query.dtype)
    weights = nn.functional.softmax(weights, dim=-1, dtype=wide).to(query.dtype)
    weights = nn.functional.dropout(weights, p=dropout, training=module.training)
    out = torch.matmul(weights, value).transpose(1, 2).contiguous()
    return out, weights


def _wide_rms_norm(self: nn.Module, hidden_states: torch.Tensor) -> torch.Tensor:
    """Llama's RMSNorm with its float32 upcast widened to ``promote_types(float32, dtype)``
    (the same operations: identical in float32 and below, exact in float64)."""
    input_dtype = hidden_states.dtype
    hidden_states = hidden_states.to(torch.promote_types(torch.float32, input_dtype))
    variance = hidden_states.pow(2).mean(-1, keepdim=True)
    hidden_states = hidden_states * torch.rsqrt(variance + self.variance_epsilon)
    return self.weight * hidden_states.to(input_dtype)


def _wide_gemma_rms_norm(self: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Gemma's RMSNorm (``(1 + weight)``) with its float32 upcast widened as in
    :func:`_wide_rms_norm`."""
    wide = torch.promote_types(torch.float32, x.dtype)
    output = self._norm(x.to(wide))
    return (output * (1.0 + self.weight.to(wide))).type_as(x)


def _register_attention() -> None:
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, eager_mask

    AttentionInterface.register(ATTENTION, eager_attention)
    ALL_MASK_ATTENTION_FUNCTIONS.register(ATTENTION, eager_mask)


_register_attention()


class DecoderAdapter(Adapter):
    """A pre-norm causal decoder. Subclasses name the modules of their layout."""

    causal = True
    kinds = ("causal", "classification")
    #: Run the attention through :func:`eager_attention` (models whose eager softmax is float32).
    wide_softmax = False
    #: The layer form, for outputs and docs: "sequential" or "parallel".
    form = "sequential"

    def __init__(self, model: nn.Module) -> None:
        super().__init__(model)
        if self.wide_softmax:
            _set_attention(model, ATTENTION)
        heads, head_dim = self.num_heads, self.head_dim
        if heads * head_dim != self.hidden_size:
            raise ModelError(
                f"{type(model).__name__}: {heads} heads × head_dim {head_dim} ≠ hidden size {self.hidden_size}; "
                "attention wider or narrower than the residual stream is not supported yet"
            )

    @property
    def max_length(self) -> int:
        """The longest text: the position limit, and within a sliding attention window
        (Mistral, Qwen2), where the window's mask equals the plain causal mask."""
        longest = int(getattr(self.config, "max_position_embeddings", None) or self.config.n_positions)
        window = getattr(self.config, "sliding_window", None)
        if window and getattr(self.config, "use_sliding_window", True):
            longest = min(longest, int(window))
        return longest

    @property
    def head_dim(self) -> int:
        return int(getattr(self.config, "head_dim", None) or self.hidden_size // self.num_heads)

    @property
    def num_kv_heads(self) -> int:
        return int(getattr(self.config, "num_key_value_heads", None) or self.num_heads)

    @property
    def parallel(self) -> bool:
        return False

    # --- modules (layout) --------------------------------------------------------
    def word_embeddings(self) -> nn.Embedding:
        return self.model.get_input_embeddings()

    def embeddings(self) -> nn.Module:
        raise NotImplementedError("a decoder's h^0 is the first layer's input (see install_hooks)")

    def layers(self) -> list[nn.Module]:
        return list(self.base().layers)

    def attention(self, layer: nn.Module) -> nn.Module:
        """The layer's attention module."""
        raise NotImplementedError

    def output_projection(self, layer: nn.Module) -> nn.Module:
        """W_O: called on the heads' contexts a^{l,·} (heads concatenated)."""
        raise NotImplementedError

    def norms(self, layer: nn.Module) -> tuple[nn.Module, nn.Module]:
        """(the norm before the attention, the norm before the MLP)."""
        raise NotImplementedError

    def mlp(self, layer: nn.Module) -> nn.Module:
        return layer.mlp

    def attention_output(self, layer: nn.Module) -> nn.Module:
        raise NotImplementedError(f"{type(self).__name__}: the residual sum is in the layer's code; see install_hooks")

    def _self_attention(self, layer):
        return self.attention(layer)

    def _projected(self, layer: nn.Module, context: torch.Tensor) -> torch.Tensor:
        """W_O(context) as the layer adds it (dropout after it is off in eval mode)."""
        return self.output_projection(layer)(context)

    def after_attention(self, layer, context, skip):
        """h^l from (a^l, s^l) position by position, through the layer's own modules."""
        _, norm2 = self.norms(layer)
        mlp = self.mlp(layer)
        if self.parallel:
            return mlp(norm2(skip)) + self._projected(layer, context) + skip
        u = self._projected(layer, context) + skip
        return u + mlp(norm2(u))

    def single_position_unsupported(self) -> str | None:
        if self.model.training:
            return "the model is in training mode (dropout on)"
        return None

    # --- the attention's inputs, position by position (search.fast) ----------------
    def _qkv(self, layer: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """q (R, H, m, d_h), k and v (R, H_kv, m, d_h) from the normed input x (R, m, d), before rotary."""
        raise NotImplementedError

    def _rotate(self, q: torch.Tensor, k: torch.Tensor, x: torch.Tensor, positions: torch.Tensor):
        """Rotary embeddings at ``positions`` (R, m), through the model's own code (none for GPT-2)."""
        return q, k

    def attention_inputs(self, layer: nn.Module, h: torch.Tensor, positions: torch.Tensor
                         ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The queries, keys and values (R, H, m, d_h) that layer l's attention reads from
        h^{l-1} = ``h`` (R, m, d) at ``positions`` (R, m): the first norm, the model's own
        projections, rotary at each row's position, key/value heads repeated to their
        query heads (GQA). Position-wise: each row depends on its own h and position only."""
        norm1, _ = self.norms(layer)
        x = norm1(h)
        q, k, v = self._qkv(layer, x)
        q, k = self._rotate(q, k, x, positions)
        groups = self.num_heads // k.shape[1]
        if groups > 1:
            k, v = k.repeat_interleave(groups, dim=1), v.repeat_interleave(groups, dim=1)
        return q, k, v

    # --- hooks -------------------------------------------------------------------
    def install_hooks(self, interceptor: Any) -> list[Any]:
        state: dict[str, Any] = {}

        def layer_pre(l: int):
            def hook(module, args, kwargs):
                h = args[0] if args else kwargs["hidden_states"]
                if l == 1:
                    h = interceptor.on_h(0, h)
                state.clear()
                state["l"], state["h"] = l, h
                if args:
                    return (h.detach(),) + tuple(args[1:]), kwargs
                return args, {**kwargs, "hidden_states": h.detach()}

            return hook

        def norm1_pre(module, args):
            return (state["h"],) + tuple(args[1:])

        def w_o_pre(module, args):
            context, skip = interceptor.on_attn(state["l"], args[0], state["h"])
            state["skip"] = skip
            return (context,) + tuple(args[1:])

        def w_o_post(module, args, output):
            return output + (state["skip"] - state["h"].detach())

        def norm2_pre(module, args):
            return (state["skip"],) + tuple(args[1:])

        handles = []
        with removed_on_error(handles):
            for l, layer in enumerate(self.layers(), start=1):
                norm1, norm2 = self.norms(layer)
                w_o = self.output_projection(layer)
                handles.append(layer.register_forward_pre_hook(layer_pre(l), with_kwargs=True))
                handles.append(norm1.register_forward_pre_hook(norm1_pre))
                handles.append(w_o.register_forward_pre_hook(w_o_pre))
                handles.append(w_o.register_forward_hook(w_o_post))
                if self.parallel:
                    handles.append(norm2.register_forward_pre_hook(norm2_pre))
                handles.append(layer.register_forward_hook(h_hook(interceptor, l)))
        return handles

    # --- forward -----------------------------------------------------------------
    def head(self) -> nn.Module:
        """The map from final hidden states to ``y``: the unembedding, or the classifier's ``score``."""
        return self.model.score if self.kind == "classification" else self.model.get_output_embeddings()

    def final_hidden(self, inputs_embeds, attention_mask):
        return self.base()(inputs_embeds=inputs_embeds, attention_mask=attention_mask, use_cache=False).last_hidden_state

    def logits(self, inputs_embeds, attention_mask, target_index):
        """``y`` at each row's target position (the last real token): the next-token
        logits, or the classifier's (which reads the last token)."""
        hidden = self.final_hidden(inputs_embeds, attention_mask)
        rows = hidden[torch.arange(hidden.shape[0], device=hidden.device), target_index]
        return self.head()(rows)


def _set_attention(model: nn.Module, name: str) -> None:
    model.config._attn_implementation = name
    for module in model.modules():
        cfg = getattr(module, "config", None)
        if cfg is not None and hasattr(cfg, "_attn_implementation"):
            cfg._attn_implementation = name


class GPT2Adapter(DecoderAdapter):
    """GPT-2: sequential pre-norm blocks, learned positions, Conv1D projections (``transformer.h``)."""

    model_types = ("gpt2",)
    base_name = "transformer"

    def layers(self):
        return list(self.base().h)

    def attention(self, layer):
        return layer.attn

    def output_projection(self, layer):
        return layer.attn.c_proj

    def norms(self, layer):
        return layer.ln_1, layer.ln_2

    def single_position_unsupported(self):
        if getattr(self.config, "reorder_and_upcast_attn", False):
            return "reorder_and_upcast_attn computes the attention in float32"
        return super().single_position_unsupported()

    def _qkv(self, layer, x):
        R, m, d = x.shape
        split = lambda t: t.reshape(R, m, self.num_heads, -1).transpose(1, 2)  # noqa: E731
        q, k, v = layer.attn.c_attn(x).split(d, dim=2)
        return split(q), split(k), split(v)

    def attention_scaling(self, layer):
        attn = layer.attn
        scale = self.head_dim**-0.5 if attn.scale_attn_weights else 1.0
        if attn.scale_attn_by_inverse_layer_idx:
            scale /= float(attn.layer_idx + 1)
        return scale


class LlamaAdapter(DecoderAdapter):
    """Llama, Qwen2, Mistral: sequential pre-norm (RMSNorm), rotary positions, grouped-query attention."""

    model_types = ("llama", "qwen2", "mistral")
    base_name = "model"
    wide_softmax = True

    def __init__(self, model: nn.Module) -> None:
        super().__init__(model)
        # Their RMSNorm computes in float32 whatever the weights; a float64 model gets the
        # same norm computed in float64 (see _wide_rms_norm).
        if self.word_embeddings().weight.dtype == torch.float64:
            for module in model.modules():
                if type(module).__name__.endswith("RMSNorm") and hasattr(module, "variance_epsilon"):
                    module.forward = functools.partial(_wide_rms_norm, module)  # picklable (Ray)
                elif type(module).__name__ == "GemmaRMSNorm":
                    module.forward = functools.partial(_wide_gemma_rms_norm, module)

    def attention(self, layer):
        return layer.self_attn

    def output_projection(self, layer):
        return layer.self_attn.o_proj

    def norms(self, layer):
        return layer.input_layernorm, layer.post_attention_layernorm

    def _qkv(self, layer, x):
        R, m, _ = x.shape
        attn = layer.self_attn
        split = lambda t: t.reshape(R, m, -1, self.head_dim).transpose(1, 2)  # noqa: E731
        return split(attn.q_proj(x)), split(attn.k_proj(x)), split(attn.v_proj(x))

    def _rotate(self, q, k, x, positions):
        return _rotary(self, self.attention(self.layers()[0]), q, k, x, positions)


class GemmaAdapter(LlamaAdapter):
    """Gemma (the first version): Llama's layout with RMSNorm on (1 + weight), embeddings
    scaled by √d (inside the embedding module, so x and the baseline rows include it)."""

    model_types = ("gemma",)


def _rotary(adapter: DecoderAdapter, attn: nn.Module, q, k, x, positions):
    """The model's rotary embedding (``base().rotary_emb``) and its module's ``apply_rotary_pos_emb``."""
    cos, sin = adapter.base().rotary_emb(x, position_ids=positions)
    apply = sys.modules[type(attn).__module__].apply_rotary_pos_emb
    return apply(q, k, cos, sin)


class GPTNeoXAdapter(DecoderAdapter):
    """GPT-NeoX / Pythia: parallel residual (``use_parallel_residual``; the skip s^l is the
    position-wise route, skip and MLP together), rotary positions (``gpt_neox.layers``)."""

    model_types = ("gpt_neox",)
    base_name = "gpt_neox"
    wide_softmax = True

    @property
    def form(self) -> str:  # type: ignore[override]
        return "parallel" if self.parallel else "sequential"

    @property
    def parallel(self) -> bool:
        return bool(getattr(self.config, "use_parallel_residual", True))

    def attention(self, layer):
        return layer.attention

    def output_projection(self, layer):
        return layer.attention.dense

    def norms(self, layer):
        return layer.input_layernorm, layer.post_attention_layernorm

    def _qkv(self, layer, x):
        R, m, _ = x.shape
        qkv = layer.attention.query_key_value(x).reshape(R, m, -1, 3 * self.head_dim).transpose(1, 2)
        return qkv.chunk(3, dim=-1)

    def _rotate(self, q, k, x, positions):
        return _rotary(self, self.attention(self.layers()[0]), q, k, x, positions)


DECODER_ADAPTERS = (GPT2Adapter, LlamaAdapter, GemmaAdapter, GPTNeoXAdapter)
