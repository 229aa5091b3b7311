import os
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARED = Path(os.environ.get("METAREPRO_SHARED", ROOT.parent / "shared"))

# Small models are fastest (and deterministic) on one thread.
torch.set_num_threads(1)


@pytest.fixture
def isolated_results(tmp_path, monkeypatch):
    """A results/ and runs/ of its own, seeded with the published numbers."""
    import shutil

    results = tmp_path / "results"
    shutil.copytree(ROOT / "results" / "published", results / "published")
    monkeypatch.setenv("METAREPRO_RESULTS", str(results))
    monkeypatch.setenv("METAREPRO_LOCAL_RESULTS", str(results))  # a user's runs land beside the published numbers here
    monkeypatch.setenv("METAREPRO_RUNS", str(tmp_path / "runs"))
    return results
