"""`zrealism bench`: measured speed and memory of the lab, side by side with bare diffusers.

    zrealism bench --quick                 # tiny-bundle overhead rows, metrics and hot paths (about 2 minutes)
    zrealism bench --json out.json         # + full-size SD1.5 rows with random weights (10-15 minutes, ~12 GB RAM)
    zrealism bench --gpu                   # + fp16 512 px GPU rows and the 6 GiB low-memory mode (CUDA only)

Every figure is a median over repeated runs in one process, lab and bare diffusers interleaved (ABAB...) so that a
load spike from other programs hits both alike. Memory figures of the full-size models come from fresh child
processes, one per point, so that one measurement never inherits another's heap. The load average is recorded
with the table: rerun on a quiet machine for numbers to quote.

What "overhead" compares: the *generation path* of a lab run, which is the run's wall time minus the stages that
bare diffusers does not do at all (intake, background analysis, preparation, control-map detection, colour
anchoring, metrics), against one bare diffusers pipeline call on the same loaded components, the same inputs
(the lab's prepared image and control maps), the same prompts, scheduler and seed. So the ratio is the price of the
lab's plumbing around the pipeline (settings checks, pipeline lookup, prompt preparation, step events, chunked
decoding), and the two outputs are compared pixel by pixel. Whole lab runs (evaluate=False, and with metrics
and the run record) are reported on their own rows with their stage breakdown.

One job per module: ``table`` (rows, report, machine), ``measure`` (instruments), ``overhead`` (lab against bare
diffusers), ``hot_paths`` (metrics, callbacks, imports), ``fullsize`` and ``gpu`` (rows measured in child
processes), ``child`` (what those processes run), ``run`` (``run_bench``).
"""
from __future__ import annotations

from .measure import (PeakPoller, Samples, StepClock, interleaved, memory_breakdown, peak_rss_bytes, reset_peak_rss,
                      rss_bytes, time_calls)
from .run import run_bench
from .table import GIB, NO_GPU, BenchReport, Row, failed_row, format_value, machine_info, row, target_met

__all__ = ["GIB", "NO_GPU", "BenchReport", "PeakPoller", "Row", "Samples", "StepClock", "failed_row", "format_value",
           "interleaved", "machine_info", "memory_breakdown", "peak_rss_bytes", "reset_peak_rss", "row", "rss_bytes",
           "run_bench", "target_met", "time_calls"]
