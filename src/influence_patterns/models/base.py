"""What every model module shares: the loaded-model record and putting a model in eval mode.

It sits below both ``models.loading`` (which resolves names, default ones included)
and ``models.defaults`` (which builds the defaults and measures them), so neither has
to import the other to get these.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class LoadedModel:
    """A model in eval mode with eager attention, its tokenizer and what kind of head it has."""

    model: Any
    tokenizer: Any
    name: str
    kind: str  # "mlm" or "classification"


def prepare(model: Any) -> Any:
    """Eval mode, eager attention (fused attention has no forward-mode AD)."""
    model.eval()
    model.config._attn_implementation = "eager"
    for module in model.modules():
        cfg = getattr(module, "config", None)
        if cfg is not None and hasattr(cfg, "_attn_implementation"):
            cfg._attn_implementation = "eager"
    return model


#: Config keys that do not change what a model computes (runtime switches, bookkeeping).
_RUNTIME_CONFIG_KEYS = frozenset({
    "transformers_version", "torch_dtype", "dtype", "return_dict", "output_attentions", "output_hidden_states",
    "torchscript", "use_cache", "name_or_path",
})


def fingerprint(model: Any) -> dict[str, str]:
    """What identifies a model's numbers: ``weights_sha256`` (every tensor of its state
    dict: name, dtype and bytes, in name order) and ``config_sha256`` (its config
    without runtime switches and private keys). Recorded in ``run.json`` and every row
    of a run, so weights swapped between an interrupt and a resume are caught."""
    import hashlib
    import json

    import torch

    weights = hashlib.sha256()  # name, dtype, bytes per tensor (the null caches' key uses it too)
    for name, tensor in sorted(model.state_dict().items()):
        t = tensor.detach().to("cpu").contiguous()
        weights.update(name.encode())
        weights.update(str(t.dtype).encode())
        weights.update(memoryview(t.reshape(-1).view(torch.uint8).numpy()))
    config = getattr(model, "config", None)
    raw = config.to_dict() if config is not None and hasattr(config, "to_dict") else {}
    kept = {k: v for k, v in raw.items() if not k.startswith("_") and k not in _RUNTIME_CONFIG_KEYS}
    config_hash = hashlib.sha256(json.dumps(kept, sort_keys=True, default=str).encode()).hexdigest()
    return {"weights_sha256": weights.hexdigest(), "config_sha256": config_hash}


def package_versions(*extra: str) -> dict[str, str]:
    """Versions of the packages that shape the numbers (the one recorder: ``run.json`` and a
    default model's ``build.json``); ``extra``: more distributions by name."""
    import platform
    import sys
    from importlib import metadata

    import torch
    import transformers

    package = sys.modules.get("influence_patterns")  # imported already (we are in it); no import edge upward
    out = {
        "influence_patterns": getattr(package, "__version__", "unknown"),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
    }
    for dist in extra:
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "not installed"
    return out
