"""Load a model by name: an embedded default, a local checkpoint directory, or a hub name."""

from __future__ import annotations

import os
import pickle
from difflib import get_close_matches
from pathlib import Path
from typing import Any, Callable

from safetensors import SafetensorError

from influence_patterns.errors import ModelError
from influence_patterns.graph.kind import head_kind
from influence_patterns.models.base import LoadedModel, prepare
from influence_patterns.registry import Registry
from influence_patterns.threads import use_threads

__all__ = ["LoadedModel", "check_supported", "load_model", "prepare", "resolve_device", "supported_model_types"]


def supported_model_types() -> tuple[str, ...]:
    """Hugging Face ``model_type`` values this version can hook: the adapter registry's keys."""
    from influence_patterns.graph.architectures import ADAPTERS  # torch: loaded on first use

    return tuple(sorted(ADAPTERS))


def _kind_of(model: Any) -> str:
    kind = head_kind(model)
    if kind is not None:
        return kind
    raise ModelError(
        f"{type(model).__name__} has neither a masked-LM, a causal-LM nor a sequence-classification head; "
        "load a *ForMaskedLM, *ForCausalLM or *ForSequenceClassification checkpoint"
    )


def check_supported(config: Any) -> None:
    """Raise ``ModelError`` if the architecture has no graph adapter (the adapter
    registry's own error, worded as :func:`~influence_patterns.graph.architectures.adapter_for` words it)."""
    from influence_patterns.graph.architectures import ADAPTERS  # torch: loaded on first use

    ADAPTERS.check(getattr(config, "model_type", None))


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def _mps_available() -> bool:
    import torch

    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def _cpu(device: str) -> str:
    return device


def _cuda(device: str) -> str:
    if not _cuda_available():
        raise ModelError("device 'cuda': no CUDA device is available here")
    return device


def _mps(device: str) -> str:
    if not _mps_available():
        raise ModelError("device 'mps': no MPS device is available here")
    return device


def _auto(device: str) -> str:
    return "cuda" if _cuda_available() else "mps" if _mps_available() else "cpu"


#: Device kind → a function from the device string (``cuda:1``) to the device to use,
#: raising ``ModelError`` when it is not available here.
DEVICES: Registry[Callable[[str], str]] = Registry("device", ModelError)
DEVICES.register("auto", _auto, "cuda when present, else mps, else cpu")
DEVICES.register("cpu", _cpu)
DEVICES.register("cuda", _cuda, "an NVIDIA GPU; cuda:N for the N-th")
DEVICES.register("mps", _mps, "Apple's Metal GPU")


def resolve_device(device: str | None = "auto") -> str:
    """``auto``: cuda when present, else mps, else cpu. Unknown or unavailable devices
    are a ``ModelError``."""
    device = device or "auto"
    kind = device.split(":")[0]
    if kind not in DEVICES:
        DEVICES.lookup(device)  # the registry's error names the whole string
    return DEVICES.lookup(kind)(device)


def load_model(name_or_path: str, kind: str | None = None, device: str = "auto") -> LoadedModel:
    """Load ``name_or_path``: an embedded default (``default-mlm``, ``default-mlm-transfer``,
    ``default-sst2``, ``default-clm``; built on first use),
    a local Hugging Face checkpoint directory, or a hub name (needs the network).

    ``kind`` ("mlm" or "classification") picks the head class when the checkpoint's
    config names none; by default it is read from the config's ``architectures``.
    """
    from influence_patterns.models import defaults

    source = _resolve_source(name_or_path)
    if Path(source).is_dir():
        check_readable_checkpoint(source, name_or_path)

    from transformers import (
        AutoConfig,
        AutoModelForMaskedLM,
        AutoModelForSequenceClassification,
        AutoTokenizer,
    )

    hub = {} if Path(source).is_dir() else hub_options(name_or_path)
    try:
        config = AutoConfig.from_pretrained(source, **hub)
    except OSError as exc:
        if hub.get("local_files_only"):
            raise ModelError(offline_message(name_or_path)) from None
        hint = "" if source != name_or_path else f" (embedded defaults: {', '.join(defaults.DEFAULT_MODELS)})"
        raise ModelError(f"cannot load model {name_or_path!r}: {_first_line(exc)}{hint}") from None
    except ValueError as exc:
        raise ModelError(f"cannot load model {name_or_path!r}: {_first_line(exc)}") from None
    check_supported(config)
    if Path(source).is_dir():
        check_tokenizer_files(source, name_or_path)
    kind = _choose_kind(config, kind)
    if kind == "causal":
        from transformers import AutoModelForCausalLM as auto
    else:
        auto = AutoModelForMaskedLM if kind == "mlm" else AutoModelForSequenceClassification
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # our commands print their own progress
    hf_logging.set_verbosity_error()
    try:
        model, report = auto.from_pretrained(source, attn_implementation="eager", output_loading_info=True, **hub)
    except (OSError, ValueError, RuntimeError, EOFError, pickle.UnpicklingError, SafetensorError) as exc:
        raise ModelError(
            f"cannot load the weights of {name_or_path!r} (truncated or corrupt?): {_first_line(exc)}"
        ) from None
    check_load_report(report, kind, name_or_path, getattr(config, "architectures", None))
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, **hub)
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot load the tokenizer of {name_or_path!r}: {_first_line(exc)}") from None
    check_tokenizer(tokenizer, name_or_path)
    resolved = resolve_device(device)
    if resolved == "cpu":
        use_threads()  # idle cores or $INFLUENCE_PATTERNS_THREADS, as builds choose (threads.py)
    model = prepare(model).to(resolved)
    return LoadedModel(model=model, tokenizer=tokenizer, name=name_or_path, kind=_kind_of(model))


def _resolve_source(name_or_path: str) -> str:
    """What ``from_pretrained`` reads: a default's built cache directory, a checkpoint
    directory or a hub name; a mistyped default, a missing path or a file refused."""
    from influence_patterns.models import defaults

    source = name_or_path
    if name_or_path in defaults.DEFAULT_MODELS:
        source = str(defaults.ensure_built(name_or_path))
    elif not Path(name_or_path).exists() and (
        name_or_path.startswith("default") or get_close_matches(name_or_path, defaults.DEFAULT_MODELS, n=1, cutoff=0.8)
    ):
        raise ModelError(f"unknown default model {name_or_path!r}; valid: {', '.join(defaults.DEFAULT_MODELS)}")
    elif _looks_like_path(name_or_path) and not Path(name_or_path).exists():
        raise ModelError(f"checkpoint path does not exist: {name_or_path}")
    if Path(source).is_file():
        raise ModelError(
            f"model {name_or_path!r} is a file; give the checkpoint directory that holds config.json, "
            f"the weights and the tokenizer (here perhaps {Path(source).parent})"
        )
    return source


def _choose_kind(config: Any, kind: str | None) -> str:
    """``kind`` as given, else read from the config's ``architectures`` (a decoder config
    without one is causal)."""
    if kind is None:
        archs = " ".join(getattr(config, "architectures", None) or [])
        if "SequenceClassification" in archs:
            kind = "classification"
        elif "CausalLM" in archs or "LMHeadModel" in archs or _is_decoder(config):
            kind = "causal"
        else:
            kind = "mlm"
    if kind not in ("mlm", "classification", "causal"):
        raise ModelError(f"kind must be 'mlm', 'classification' or 'causal', got {kind!r}")
    return kind


#: Seconds to wait for the hub's TCP handshake before treating it as unreachable.
HUB_PROBE_TIMEOUT = 3.0


def hub_options(name: str) -> dict[str, Any]:
    """``from_pretrained`` options for a hub name: ``local_files_only`` when offline mode is on
    (``HF_HUB_OFFLINE=1``) or the hub does not answer one quick connection attempt, so that
    a machine without network gets one clear error at once instead of a storm of retries
    (it still loads a model already in the local Hugging Face cache)."""
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE or not hub_reachable():
        return {"local_files_only": True}
    return {}


def hub_reachable(timeout: float = HUB_PROBE_TIMEOUT) -> bool:
    """One TCP connection to the hub's host (``$HF_ENDPOINT``, default huggingface.co);
    a DNS failure or refused connection answers at once, a silent network in ``timeout``."""
    import socket
    from urllib.parse import urlsplit

    from huggingface_hub import constants

    url = urlsplit(constants.ENDPOINT)
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        with socket.create_connection((url.hostname or "huggingface.co", port), timeout=timeout):
            return True
    except OSError:
        return False


def offline_message(name: str) -> str:
    """The error for a hub name that cannot be downloaded and is not in the local cache."""
    from huggingface_hub import constants

    why = "offline mode is on (HF_HUB_OFFLINE)" if constants.HF_HUB_OFFLINE else \
        f"the Hugging Face hub ({constants.ENDPOINT}) cannot be reached"
    from influence_patterns.models.defaults import DEFAULT_MODELS

    return (f"cannot load model {name!r}: {why} and it is not in the local Hugging Face cache; "
            f"give a local checkpoint directory (--model PATH) or one of the embedded defaults: "
            f"{', '.join(DEFAULT_MODELS)} (set HF_HUB_OFFLINE=1 to skip the network check)")


#: Files one of which a checkpoint's tokenizer needs (fast tokenizers, WordPiece, BPE, SentencePiece).
TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "vocab.json", "spiece.model", "sentencepiece.bpe.model",
                   "tokenizer.model")

_HEADS = {"mlm": "masked-LM", "classification": "sequence-classification", "causal": "causal-LM"}


def _is_decoder(config: Any) -> bool:
    """The architecture is one of the causal decoders (graph.decoders)."""
    from influence_patterns.graph.architectures import ADAPTERS

    cls = ADAPTERS.get(getattr(config, "model_type", None))
    return bool(getattr(cls, "causal", False))


def check_readable_checkpoint(directory: str | Path, name: str) -> None:
    """``ModelError`` naming the real problem of a checkpoint directory whose config cannot
    be read (missing, permission denied), instead of transformers' "Unrecognized model"."""
    config = Path(directory) / "config.json"
    try:
        with open(config, "rb") as f:
            f.read(1)
    except FileNotFoundError:
        raise ModelError(f"checkpoint directory {name!r} has no config.json; it is not a saved model") from None
    except OSError as exc:
        raise ModelError(f"cannot read the checkpoint {name!r}: {config}: {exc.strerror or exc}") from None


def check_tokenizer_files(directory: str | Path, name: str) -> None:
    """``ModelError`` when a checkpoint directory has no tokenizer files (``save_pretrained`` of
    the model alone): loading it would give a tokenizer that knows only special tokens."""
    if not any((Path(directory) / f).is_file() for f in TOKENIZER_FILES):
        raise ModelError(
            f"checkpoint {name!r} has no tokenizer (none of {', '.join(TOKENIZER_FILES)}); "
            "save it beside the model with tokenizer.save_pretrained(DIR)"
        )


def check_tokenizer(tokenizer: Any, name: str) -> None:
    """``ModelError`` for a tokenizer that knows nothing but its special tokens."""
    specials = len(set(getattr(tokenizer, "all_special_tokens", ())))
    size = len(tokenizer)
    if size <= specials:
        raise ModelError(f"the tokenizer of {name!r} has no vocabulary (only its {size} special tokens)")


def check_load_report(report: dict[str, Any], kind: str, name: str, architectures: Any = None) -> None:
    """``ModelError`` when weights were missing from the checkpoint: Hugging Face would
    initialise them at random (a ``BertModel`` or token classifier read as a masked LM)."""
    missing = sorted(report.get("missing_keys") or ())
    if missing:
        saved = f"it was saved as {', '.join(architectures)}" if architectures else "it lacks that head"
        shown = ", ".join(missing[:3]) + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
        raise ModelError(
            f"checkpoint {name!r} has no trained {_HEADS.get(kind, kind)} head ({saved}; missing {shown}); "
            "explaining it would explain random weights"
        )


def _looks_like_path(name: str) -> bool:
    return name.startswith((".", "/", "~")) or os.sep in name and Path(name).parent.exists() and not _hub_like(name)


def _hub_like(name: str) -> bool:
    parts = name.split("/")
    return len(parts) == 2 and all(parts) and not Path(parts[0]).exists()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
