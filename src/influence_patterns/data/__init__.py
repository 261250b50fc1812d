"""Data shipped with the package: SST-2 train/dev (gzipped TSV, ``text<TAB>label``) and a
sample of Marvin & Linzen (2018) agreement stimuli (TSV ``task, condition, good, bad``;
for evaluation only, never trained on).

Read them with :func:`read_sst2` / :func:`marvin_linzen_path`; no file is opened at import time.
"""

from __future__ import annotations

import gzip
from importlib import resources
from pathlib import Path

from influence_patterns.errors import DataError

SST2_FILES = {"train": "sst2_train.tsv.gz", "dev": "sst2_dev.tsv.gz"}
MARVIN_LINZEN_SAMPLE = "marvin_linzen_sample.tsv"


def marvin_linzen_path() -> Path:
    """Path of the shipped Marvin & Linzen sample (320 rows; evaluation only)."""
    return Path(str(resources.files(__name__) / MARVIN_LINZEN_SAMPLE))


def read_sst2(split: str) -> list[tuple[str, int]]:
    """The shipped SST-2 ``split`` ("train" or "dev") as ``(text, label)`` pairs, in file order."""
    if split not in SST2_FILES:
        raise DataError(f"unknown SST-2 split {split!r}: expected one of {', '.join(SST2_FILES)}")
    resource = resources.files(__name__) / SST2_FILES[split]
    rows: list[tuple[str, int]] = []
    with resource.open("rb") as raw, gzip.open(raw, "rt", encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            line = line.rstrip("\n")
            if lineno == 1 and line.startswith("text\t"):
                continue
            if not line:
                continue
            text, sep, label = line.rpartition("\t")
            if not sep or label.strip() not in ("0", "1"):
                raise DataError(f"{SST2_FILES[split]}:{lineno}: expected 'text<TAB>0|1'")
            rows.append((text.strip(), int(label)))
    return rows
