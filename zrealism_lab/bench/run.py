"""``run_bench``: every section of the bench in order, each failure kept to its own rows."""
from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from .child import THREADS_ENV
from .fullsize import bundle_folder, fullsize_rows
from .gpu import gpu_rows
from .hot_paths import hot_path_rows, metrics_rows
from .overhead import static_overhead_rows, temporal_overhead_rows, thread_rows
from .fast import fast_mode_rows
from .adapters import SECTION as ADAPTER_SECTION
from .adapters import adapter_rows
from .refine import SECTION as REFINE_SECTION
from .refine import refine_rows
from .table import BenchReport, Row, failed_row, load_average, machine_info

TINY = "overhead (tiny)"


def run_bench(*, quick: bool = False, repeats: int | None = None, sizes: Sequence[int] = (64, 256),
              gpu: bool = False, fullsize_dir: str | os.PathLike | None = None,
              clip_frames: Sequence[int] = (16, 32, 48), temporal: bool = True, threads: int | None = None,
              on_line: Callable[[str], None] = print, only: str | None = None) -> BenchReport:
    """Measure and return the report. ``quick``: tiny-bundle overhead rows, metrics and hot paths only.
    ``threads``: torch's intra-op threads here and in the child processes (default: torch's own choice).
    ``only="refine"``: the full-size refinement-pass rows alone; ``only="fast"``: the fast-mode rows alone."""
    import warnings

    import torch

    from ..engine.engine import get_engine

    started = time.perf_counter()
    repeats = repeats or (3 if quick else 5)
    default_threads = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
        os.environ[THREADS_ENV] = str(threads)  # read by the child processes
    report = BenchReport(machine_info(), mode="quick" if quick else "full")
    torch.set_grad_enabled(False)
    if only in ("refine", "fast", "adapters"):  # one section alone, over the same (kept or temporary) bundle folder
        with bundle_folder(Path(fullsize_dir) if fullsize_dir else None) as folder, warnings.catch_warnings():
            warnings.filterwarnings("ignore")
            report.add(refine_rows(folder, on_line) if only == "refine" else
                       adapter_rows(folder, on_line) if only == "adapters" else
                       fast_mode_rows(folder, on_line, repeats=repeats,
                                      clip_frames=(min(clip_frames), max(clip_frames))))
        report.machine["load_end"] = load_average()
        report.seconds = time.perf_counter() - started
        return report
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore")
        on_line("tiny bundle: lab against bare diffusers ...")
        engine = get_engine("tiny", device="cpu", offload="none")
        for size in sizes:
            try:
                report.add(static_overhead_rows(engine, size, repeats))
            except Exception as exc:  # noqa: BLE001 - one failed section must not lose the others
                report.add(failed_row(TINY, f"static {size} px", exc))
        if temporal:
            for size in sizes:
                try:
                    report.add(temporal_overhead_rows(engine, size, repeats))
                except Exception as exc:  # noqa: BLE001 - one failed section must not lose the others
                    report.add(failed_row(TINY, f"temporal {size} px", exc))
        try:
            report.add(thread_rows(engine, default_threads, repeats))
        except Exception as exc:  # noqa: BLE001 - one failed section must not lose the others
            report.add(failed_row(TINY, "threads", exc))
        on_line("metrics engine ...")
        report.add(metrics_rows(repeats))
        on_line("hot paths ...")
        report.add(hot_path_rows())
        cuda = torch.cuda.is_available()
        needs_bundle = not quick or (gpu and cuda)
        bundle = Path(fullsize_dir) if fullsize_dir else None
        # one bundle folder for the full-size and the GPU rows, so the ~8 GiB of weights are written once
        with bundle_folder(bundle) if needs_bundle else contextlib.nullcontext(None) as folder:
            if not quick:
                on_line("full-size SD1.5 with random weights (child processes) ...")
                try:
                    report.add(fullsize_rows(folder, clip_frames, on_line))
                except Exception as exc:  # noqa: BLE001 - one failed section must not lose the others
                    report.add(failed_row("full size (random weights)", "full-size rows", exc))
                on_line("refinement passes at full size (child process) ...")
                try:
                    report.add(refine_rows(folder, on_line))
                except Exception as exc:  # noqa: BLE001 - one failed section must not lose the others
                    report.add(failed_row(REFINE_SECTION, "refinement passes", exc))
                on_line("LoRAs at full size (child process) ...")
                try:
                    report.add(adapter_rows(folder, on_line))
                except Exception as exc:  # noqa: BLE001 - one failed section must not lose the others
                    report.add(failed_row(ADAPTER_SECTION, "LoRA rows", exc))
            if cuda and not gpu:
                report.add(Row("GPU", "fp16 512 px rows and low-memory mode", None, status="skipped: pass --gpu"))
            else:
                on_line("GPU ..." if cuda else "GPU: none here")
                report.add(gpu_rows(folder, on_line))
    report.machine["load_end"] = load_average()
    report.seconds = time.perf_counter() - started
    return report
