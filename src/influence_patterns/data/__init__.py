"""Data shipped with the package: SST-2 train/dev (gzipped TSV, ``text<TAB>label``) and a
sample of Marvin & Linzen (2018) agreement stimuli (TSV ``task, condition, good, bad``;
for evaluation only, never trained on).

This module only says where the files are; the one SST-2 parser is
:func:`influence_patterns.tasks.loaders.load_sst2` (``read_sst2(split)`` there reads a
shipped split). No file is opened at import time.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from influence_patterns.errors import DataError

SST2_FILES = {"train": "sst2_train.tsv.gz", "dev": "sst2_dev.tsv.gz"}
MARVIN_LINZEN_SAMPLE = "marvin_linzen_sample.tsv"


def marvin_linzen_path() -> Path:
    """Path of the shipped Marvin & Linzen sample (320 rows; evaluation only)."""
    return Path(str(resources.files(__name__) / MARVIN_LINZEN_SAMPLE))


def sst2_path(split: str) -> Path:
    """Path of the shipped SST-2 ``split`` ("train" or "dev"); ``DataError`` if it is missing."""
    if split not in SST2_FILES:
        raise DataError(f"unknown SST-2 split {split!r}: expected one of {', '.join(SST2_FILES)}")
    path = Path(str(resources.files(__name__) / SST2_FILES[split]))
    if not path.is_file():
        raise DataError(f"the package's SST-2 file influence_patterns/data/{SST2_FILES[split]} is missing")
    return path
