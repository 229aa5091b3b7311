"""Run the timing benchmarks; save pytest-benchmark JSON under results/timing/.

One file per timing module, named ``<module>--torch-<version>--<device>.json``.
``METAREPRO_DEVICE=cuda`` times on the GPU (synchronised before each reading).
"""

from __future__ import annotations

import sys

import torch

from metarepro.results import PROJECT_ROOT as ROOT
from metarepro.timing import device_name


def main(argv: list[str] | None = None) -> int:
    import pytest  # the test extra: only the timing runner needs it, never the CLI

    out = ROOT / "results" / "timing"
    out.mkdir(parents=True, exist_ok=True)
    status = 0
    modules = sorted((ROOT / "tests" / "timing").glob("test_*.py"))
    if not modules:  # an empty run must not pass (it did, unnoticed, after benchmarks/ moved into folders)
        print(f"timing: no timing modules under {ROOT / 'tests' / 'timing'}", file=sys.stderr)
        return 1
    for module in modules:
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
