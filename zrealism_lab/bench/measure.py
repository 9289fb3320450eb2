"""The bench's instruments: interleaved wall-clock samples, a denoising-step clock, and resident memory (now, peak,
anonymous against file-backed, and the weights paged in)."""
from __future__ import annotations

import gc
import re
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .table import format_value


@dataclass
class Samples:
    values: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    @property
    def best(self) -> float:
        return min(self.values)

    def text(self, unit: str = "s") -> str:
        return f"median {format_value(self.median)} {unit}, best {format_value(self.best)} {unit}, n={len(self.values)}"


def interleaved(functions: dict[str, Callable[[], Any]], repeats: int, warmup: int = 1) -> dict[str, Samples]:
    """Time each function ``repeats`` times, alternating between them (A B A B ...), after ``warmup`` untimed
    rounds. Returns each function's wall-clock samples."""
    for _ in range(warmup):
        for function in functions.values():
            function()
    samples: dict[str, list[float]] = {name: [] for name in functions}
    for _ in range(repeats):
        for name, function in functions.items():
            start = time.perf_counter()
            function()
            samples[name].append(time.perf_counter() - start)
    return {name: Samples(values) for name, values in samples.items()}


def time_calls(function: Callable[[], Any], number: int, repeats: int = 5) -> Samples:
    """Per-call seconds of a fast function: ``repeats`` batches of ``number`` calls each."""
    function()
    values = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(number):
            function()
        values.append((time.perf_counter() - start) / number)
    return Samples(values)


class StepClock:
    """Times denoising steps, as a lab ``on_step`` callback or a diffusers ``callback_on_step_end``.

    A step ends at the callback; it starts at the first forward call of the pipeline's ControlNet (or UNet) after
    the previous step ended (``attach``), so even a one-step run gives one clean step time, without the prompt
    encoding, VAE encode or decode around it. ``sync`` (torch.cuda.synchronize) makes GPU timestamps mean finished
    work rather than queued kernels."""

    def __init__(self, sync: Callable[[], None] | None = None) -> None:
        self.sync = sync
        self.times: list[float] = []  # end of each step
        self.steps: list[float] = []  # duration of each step (with ``attach``)
        self._started: float | None = None
        self._handles: list[Any] = []

    def attach(self, pipe: Any) -> StepClock:
        module = getattr(pipe, "controlnet", None) or pipe.unet
        self._handles.append(module.register_forward_pre_hook(self._pre_forward))
        return self

    def detach(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def _now(self) -> float:
        if self.sync is not None:
            self.sync()
        return time.perf_counter()

    def _pre_forward(self, module: Any, args: Any) -> None:
        if self._started is None:
            self._started = self._now()

    def on_step(self, event: Any) -> None:
        if event.stage == "denoise":
            self._mark()

    def callback(self, pipe: Any, step_index: int, timestep: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
        self._mark()
        return {}

    def _mark(self) -> None:
        now = self._now()
        if self._started is not None:
            self.steps.append(now - self._started)
        self._started = None
        self.times.append(now)

    def median(self) -> float | None:
        return statistics.median(self.steps) if self.steps else None


def rss_bytes() -> int:
    import psutil

    gc.collect()
    return psutil.Process().memory_info().rss


def reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS counter of this process (VmHWM). False where the kernel refuses."""
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


def peak_rss_bytes() -> int:
    """Peak resident memory of this process since start (or since ``reset_peak_rss``)."""
    try:
        status = Path("/proc/self/status").read_text()
        return int(re.search(r"VmHWM:\s+(\d+)\s+kB", status).group(1)) * 1024
    except (OSError, AttributeError):
        import resource

        scale = 1 if sys.platform == "darwin" else 1024  # ru_maxrss: bytes on macOS, KiB on Linux
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


class PeakPoller:
    """Peak RSS by polling (where /proc/self/clear_refs is unavailable): a thread samples every few ms."""

    def __init__(self, interval: float = 0.005) -> None:
        import threading

        self.interval, self.peak = interval, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        import psutil

        process = psutil.Process()
        while not self._stop.is_set():
            self.peak = max(self.peak, process.memory_info().rss)
            self._stop.wait(self.interval)

    def __enter__(self) -> PeakPoller:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def memory_breakdown() -> dict[str, int]:
    """Resident memory of this process: total, anonymous (heap, copies) and file-backed (mapped weights)."""
    values = {"rss": rss_bytes()}
    try:
        status = Path("/proc/self/status").read_text()
        for key, name in (("RssAnon", "anon"), ("RssFile", "file")):
            values[name] = int(re.search(key + r":\s+(\d+)\s+kB", status).group(1)) * 1024
    except (OSError, AttributeError):
        pass
    return values


def read_chars() -> int:
    """Bytes this process has read through read() so far (0 where psutil cannot tell)."""
    try:
        import psutil

        return int(getattr(psutil.Process().io_counters(), "read_chars", 0))
    except (ImportError, AttributeError, OSError):
        return 0


def page_in(modules: Sequence[Any]) -> float:
    """Read one value per 4 KiB page of every weight; returns the seconds it took.

    diffusers maps safetensors files into memory and reads a weight only when it is first used, so right after
    ``from_pretrained`` neither the load time nor the resident memory is the real one. Touching every page makes
    both honest (the pages come from the page cache when the files were just written, from disk otherwise)."""
    import torch

    start = time.perf_counter()
    with torch.no_grad():
        for module in modules:
            for tensor in [*module.parameters(), *module.buffers()]:
                if tensor.numel() and tensor.device.type == "cpu":
                    tensor.reshape(-1)[::1024].sum()
    return time.perf_counter() - start
