"""What a run computes (``RunOptions``, recorded in ``run.json``) and the run directory's file names."""

from __future__ import annotations

from dataclasses import dataclass, field

from influence_patterns.config import ExplainConfig  # the defaults: ExplainConfig.method, ...

RESULTS = "results.jsonl"
RUN_FILE = "run.json"
LOCK_FILE = "run.lock"

#: Options that must match when a run is resumed (they change the results).
RESUME_KEYS = (
    "model", "task", "n", "seed", "data", "data_sha256", "steps", "baseline",
    "method", "quadrature", "keep_special", "instances",
)

#: Settings every row of ``results.jsonl`` records itself; they must agree with run.json.
ROW_SETTINGS = ("steps", "baseline", "method", "quadrature")

#: The model's fingerprint, in run.json and every row: a resume or a reader refuses a mix.
MODEL_KEYS = ("weights_sha256", "config_sha256")


@dataclass
class RunOptions:
    """What a run computes. Recorded in ``run.json``; compared on resume.

    The caller fills ``model``, ``task`` and the options it wants; ``run_dataset``
    records the resolved values (absolute ``data`` path and its ``data_sha256``, the
    quadrature's default ``steps``, ``instances``, ``versions``).
    """

    model: str
    task: str | None  # None: every task of ``data``
    n: int | None = None
    seed: int = 0
    data: str | None = None
    steps: int | None = None  # run_dataset records the resolved rule and size
    baseline: str = ExplainConfig.baseline
    method: str = ExplainConfig.method
    quadrature: str | None = None
    keep_special: bool = False
    data_sha256: str | None = None
    instances: int | None = None  # how many instances (n, seed, data) gives
    batch_size: int = 8
    device: str = "auto"
    versions: dict[str, str] = field(default_factory=dict)
    weights_sha256: str | None = None  # the model's fingerprint (models.base.fingerprint),
    config_sha256: str | None = None  # recorded in run.json and in every row


@dataclass
class BackendOptions:
    """Where explanations are computed: ``local``, or ``ray`` with ``workers`` actors
    (on the cluster at ``address`` if given). Not recorded: it does not change results."""

    name: str = "local"
    workers: int = 1
    address: str | None = None


def versions() -> dict[str, str]:
    """Versions of the packages that shape the numbers (``models.base.package_versions``)."""
    from influence_patterns.models.base import package_versions

    return package_versions()
