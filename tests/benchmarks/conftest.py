"""Shared plumbing of the speed benchmarks (``make bench``).

Each benchmark times one library call with ``benchmark.pedantic`` and stores its key figures in
``benchmark.extra_info``. The ``timed`` fixture also keeps its own wall-clock times, so the
figures exist when pytest-benchmark is disabled (the default ``addopts``), and the figures of
every benchmark are printed in a short section at the end of the run.
"""

from __future__ import annotations

import os
import time

import pytest
import torch

_FIGURES: list[tuple[str, dict]] = []


@pytest.fixture
def timed(benchmark, request):
    """``run(fn, rounds=1, warmup_rounds=0) -> (result of fn, best wall time in s)``; the time
    also goes to ``extra_info["seconds"]``.

    The machine's load average and the torch thread count are added to ``extra_info``, since the
    benchmarks run on a shared machine and their times are only meaningful next to the load.
    """

    def run(fn, *, rounds: int = 1, warmup_rounds: int = 0):
        seconds: list[float] = []

        def wrapped():
            t0 = time.perf_counter()
            out = fn()
            seconds.append(time.perf_counter() - t0)
            return out

        result = benchmark.pedantic(
            wrapped, rounds=rounds, iterations=1, warmup_rounds=warmup_rounds
        )
        # A disabled benchmark calls fn once, warm-up included; keep whatever was measured.
        best = min(seconds[warmup_rounds:] or seconds)
        benchmark.extra_info["seconds"] = round(best, 2)
        return result, best

    benchmark.extra_info["load_avg_1m"] = round(os.getloadavg()[0], 2)
    benchmark.extra_info["torch_threads"] = torch.get_num_threads()
    yield run
    _FIGURES.append((request.node.nodeid, dict(benchmark.extra_info)))


def pytest_terminal_summary(terminalreporter):
    if not _FIGURES:
        return
    terminalreporter.section("benchmark figures (extra_info)")
    for nodeid, info in _FIGURES:
        terminalreporter.write_line(nodeid)
        for key, value in info.items():
            terminalreporter.write_line(f"    {key}: {value}")
