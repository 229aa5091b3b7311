"""One module per paper table or figure; ``BENCHMARKS`` is the registry."""

from __future__ import annotations

from benchmarks import (
    alfa_table8,
    finn2017_table1,
    guiroy_fig9,
    hyperrepr_fig1,
    hyperrepr_omniglot,
    hyperrepr_table1,
    l2g_fig2,
    l2g_fig3,
    l2g_omniglot,
    l2g_table1,
    l2g_table2,
    l2g_table3,
    nichol2018_table1,
    snell2017_table1,
    sung2018_table1,
)
from benchmarks.base import Benchmark

BENCHMARKS: dict[str, Benchmark] = {
    b.id: b for b in (alfa_table8.BENCHMARK, snell2017_table1.BENCHMARK, finn2017_table1.BENCHMARK, nichol2018_table1.BENCHMARK,
                      guiroy_fig9.BENCHMARK, sung2018_table1.BENCHMARK, l2g_table1.BENCHMARK, l2g_table2.BENCHMARK,
                      l2g_table3.BENCHMARK, l2g_fig2.BENCHMARK, l2g_fig3.BENCHMARK, l2g_omniglot.BENCHMARK,
                      hyperrepr_table1.BENCHMARK, hyperrepr_fig1.BENCHMARK, hyperrepr_omniglot.BENCHMARK)
}


class UnknownBenchmarkError(KeyError):
    def __str__(self) -> str:
        return self.args[0]


def get_benchmark(benchmark_id: str) -> Benchmark:
    """The registered benchmark, or an error that lists the valid ids."""
    try:
        return BENCHMARKS[benchmark_id]
    except KeyError:
        valid = ", ".join(sorted(BENCHMARKS))
        raise UnknownBenchmarkError(f"unknown benchmark id {benchmark_id!r}; valid ids: {valid}") from None
