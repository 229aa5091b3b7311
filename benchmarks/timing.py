"""Run the timing benchmarks; save pytest-benchmark JSON under results/timing/.

One file per timing module, named ``<module>--torch-<version>--<device>.json``.
``METAREPRO_DEVICE=cuda`` times on the GPU (synchronised before each reading).
"""

from __future__ import annotations

import os
import platform
import re
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


def device_name(device: str | None = None) -> str:
    """File-name form of the device timed: the GPU's name, or the CPU's core count and architecture."""
    device = device or os.environ.get("METAREPRO_DEVICE", "cpu")
    if device.startswith("cuda") and torch.cuda.is_available():
        name = torch.cuda.get_device_name(torch.device(device))
    else:
        name = f"cpu-{os.cpu_count()}core-{platform.machine()}"
    return re.sub(r"[^A-Za-z0-9.]+", "-", name).strip("-").lower()


def main(argv: list[str] | None = None) -> int:
    out = ROOT / "results" / "timing"
    out.mkdir(parents=True, exist_ok=True)
    status = 0
    for module in sorted((ROOT / "tests" / "timing").glob("test_*.py")):
        name = module.stem.removeprefix("test_")
        target = out / f"{name}--torch-{torch.__version__}--{device_name()}.json"
        args = [str(module), "-o", "addopts=", "-p", "no:cacheprovider", "-m", "timing", "-s", "--benchmark-enable",
                f"--benchmark-json={target}", *(argv or [])]
        code = pytest.main(args)
        print(f"timing {name}: {target.relative_to(ROOT)} (pytest exit {int(code)})")
        status = status or int(code)
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
