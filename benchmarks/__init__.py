"""The registry: ``BENCHMARKS``, every paper table or figure by its id.

Layout (arrows point one way: paper modules -> harness.base; registry -> paper modules; harness.runner / cli -> registry)::

    benchmarks/
      harness/      machinery: base (Benchmark, Cell), runner, plan, pins, provenance, generate, timing, cli
      families/     table families several papers share (metric learners on images; MAML-family on Omniglot)
      alfa/ guiroy/ hyperrepr/ l2g/ unraveling/ ...   one folder per paper, one module per table or figure
      anchors/      the methods' own Omniglot tables (MAML, Reptile, ProtoNet, RelationNet)

A benchmark id (``alfa-table8``) does not depend on where its module lives.
"""

from __future__ import annotations

from benchmarks.alfa import fig3 as alfa_fig3
from benchmarks.alfa import image_tables as alfa_image_tables
from benchmarks.alfa import meta_dataset as alfa_meta_dataset
from benchmarks.alfa import omniglot as alfa_omniglot
from benchmarks.alfa import sinusoid_ablations as alfa_sinusoid_ablations
from benchmarks.alfa import table8 as alfa_table8
from benchmarks.anchors import (
    antoniou2019_table1,
    bertinetto2019_omniglot,
    finn2017_table1,
    nichol2018_table1,
    snell2017_table1,
    sung2018_table1,
    vinyals2016_table1,
)
from benchmarks.guiroy import fig8 as guiroy_fig8
from benchmarks.guiroy import fig9 as guiroy_fig9
from benchmarks.guiroy import miniimagenet as guiroy_mini
from benchmarks.guiroy import omniglot as guiroy_omniglot
from benchmarks.harness.base import Benchmark, did_you_mean
from benchmarks.hyperrepr import fig1 as hyperrepr_fig1
from benchmarks.hyperrepr import omniglot as hyperrepr_omniglot
from benchmarks.hyperrepr import table1 as hyperrepr_table1
from benchmarks.l2g import fig2 as l2g_fig2
from benchmarks.l2g import fig3 as l2g_fig3
from benchmarks.l2g import omniglot as l2g_omniglot
from benchmarks.l2g import table1 as l2g_table1
from benchmarks.l2g import table2 as l2g_table2
from benchmarks.l2g import table3 as l2g_table3
from benchmarks.unraveling import cross_heads as unraveling_cross_heads
from benchmarks.unraveling import fig2 as unraveling_fig2
from benchmarks.unraveling import omniglot as unraveling_omniglot
from benchmarks.unraveling import omniglot_heads as unraveling_omniglot_heads
from benchmarks.unraveling import reptile_rate as unraveling_reptile_rate
from benchmarks.unraveling import reptile_tables as unraveling_reptile
from benchmarks.unraveling import table2 as unraveling_table2
from benchmarks.unraveling import table3 as unraveling_table3
from benchmarks.unraveling import table4 as unraveling_table4
from benchmarks.unraveling import table7 as unraveling_table7
from benchmarks.unraveling import table8 as unraveling_table8

BENCHMARKS: dict[str, Benchmark] = {
    b.id: b for b in (alfa_image_tables.TABLE1, alfa_image_tables.TABLE2, alfa_meta_dataset.BENCHMARK,
                      alfa_image_tables.TABLE4, alfa_image_tables.TABLE5, alfa_image_tables.TABLE6, alfa_image_tables.TABLE7,
                      alfa_table8.BENCHMARK, alfa_omniglot.BENCHMARK, alfa_fig3.BENCHMARK,
                      alfa_sinusoid_ablations.BENCHMARK, snell2017_table1.BENCHMARK, finn2017_table1.BENCHMARK,
                      nichol2018_table1.BENCHMARK, antoniou2019_table1.BENCHMARK,
                      guiroy_omniglot.FIG2, guiroy_mini.FIG3, guiroy_mini.FIG4, guiroy_mini.FIG5, guiroy_mini.FIG6,
                      guiroy_mini.FIG7, guiroy_fig8.BENCHMARK, guiroy_fig9.BENCHMARK, guiroy_omniglot.FIG10,
                      guiroy_omniglot.FIG11, guiroy_omniglot.FIG12, sung2018_table1.BENCHMARK, l2g_table1.BENCHMARK, l2g_table2.BENCHMARK,
                      l2g_table3.BENCHMARK, l2g_fig2.BENCHMARK, l2g_fig3.BENCHMARK, l2g_omniglot.BENCHMARK,
                      hyperrepr_table1.BENCHMARK, hyperrepr_fig1.BENCHMARK, hyperrepr_omniglot.BENCHMARK,
                      unraveling_omniglot_heads.BENCHMARK, vinyals2016_table1.BENCHMARK, bertinetto2019_omniglot.BENCHMARK,
                      unraveling_cross_heads.TABLE1, unraveling_table2.BENCHMARK, unraveling_table3.BENCHMARK, unraveling_table4.BENCHMARK,
                      unraveling_reptile.TABLE5, unraveling_cross_heads.TABLE6, unraveling_table7.BENCHMARK, unraveling_table8.BENCHMARK,
                      unraveling_reptile.TABLE9, unraveling_fig2.BENCHMARK, unraveling_reptile.FIG3, unraveling_omniglot.BENCHMARK,
                      unraveling_reptile_rate.BENCHMARK)
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
        raise UnknownBenchmarkError(f"unknown benchmark id {benchmark_id!r}{did_you_mean(benchmark_id, BENCHMARKS)}; "
                                    f"valid ids: {valid}") from None
