"""Where runs keep their checkpoints (a leaf module: the runner and the timing runner both read it)."""

from __future__ import annotations

import os
from pathlib import Path

from metarepro.results import PROJECT_ROOT

RUNS_DIR = PROJECT_ROOT / "runs"


def runs_dir() -> Path:
    """Checkpoints live here (``runs/`` of the checkout, or ``$METAREPRO_RUNS``)."""
    return Path(os.environ.get("METAREPRO_RUNS", RUNS_DIR))
