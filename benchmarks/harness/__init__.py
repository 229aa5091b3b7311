"""The machinery every benchmark runs on: base classes (Benchmark, Cell), runner, plan, pins, provenance, timing, CLI.

Arrows: the paper modules import :mod:`benchmarks.harness.base` only; the runner, plan and CLI reach the paper
modules through the registry (:mod:`benchmarks`), never by name."""
