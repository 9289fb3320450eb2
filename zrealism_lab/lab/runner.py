"""Background work for the lab: one generation at a time on a worker thread, so the kernel's main thread keeps
answering the widgets (Cancel included) while the model runs."""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Protocol

from ..errors import CancelledError
from ..progress import CancelToken, StepEvent
from .state import BUSY_MESSAGE, Phase, RunHistory, RunState

Job = Callable[["JobContext"], Any]


@dataclass
class JobContext:
    """What a job gets: a cancel token to pass down, and a progress callback to report StepEvents to."""

    cancel: CancelToken
    report: Callable[[StepEvent], None]
    started: float

    def check_cancelled(self) -> None:
        """Jobs call this between their stages, so a cancel during loading stops before any denoising."""
        if self.cancel.cancelled:
            raise CancelledError("cancelled before generation started")


@dataclass
class Outcome:
    """How a job ended: exactly one of result / error is set; status is completed, cancelled or failed."""

    status: str
    seconds: float
    result: Any = None
    error: BaseException | None = None


class Runner:
    """Runs one job at a time on a daemon thread and drives the RunState machine.

    ``start`` returns False, and queues nothing, while a job is active. ``on_finish`` runs on the worker thread
    before the state leaves RUNNING/CANCELLING, so whoever waits for a finished phase sees the outputs already in
    place, and no second run can start while the first one's outputs are being shown.
    """

    def __init__(self, state: RunState | None = None) -> None:
        self.state = state or RunState()
        self._token: CancelToken | None = None
        self._thread: threading.Thread | None = None
        self.last_outcome: Outcome | None = None
        self.busy_message = BUSY_MESSAGE

    @property
    def busy(self) -> bool:
        return self.state.busy

    @property
    def thread(self) -> threading.Thread | None:
        return self._thread

    def start(self, job: Job, *, on_progress: Callable[[StepEvent], None] | None = None,
              on_finish: Callable[[Outcome], None] | None = None, message: str = "starting ...") -> bool:
        if not self.state.try_start(message):
            return False
        token = CancelToken()
        self._token = token
        context = JobContext(token, on_progress or (lambda event: None), time.perf_counter())
        thread = threading.Thread(target=self._work, args=(job, context, on_finish), name="zrealism-lab-run",
                                  daemon=True)
        self._thread = thread
        thread.start()
        return True

    def cancel(self) -> bool:
        """Ask the active job to stop; the denoising loop notices within one step. False when nothing runs."""
        token = self._token
        if token is None or not self.state.request_cancel():
            return False
        token.cancel()
        return True

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the active job has ended (for tests and scripts); True if it did within ``timeout``."""
        thread = self._thread
        if thread is None:
            return True
        thread.join(timeout)
        return not thread.is_alive()

    def _work(self, job: Job, context: JobContext, on_finish: Callable[[Outcome], None] | None) -> None:
        try:
            result = job(context)
        except CancelledError as exc:
            outcome = Outcome("cancelled", time.perf_counter() - context.started, error=exc)
        except BaseException as exc:  # noqa: BLE001 - any failure must end the run, never leave the UI busy
            outcome = Outcome("failed", time.perf_counter() - context.started, error=exc)
        else:
            outcome = Outcome("completed", time.perf_counter() - context.started, result=result)
        self.last_outcome = outcome
        try:
            if on_finish is not None:
                on_finish(outcome)
        except BaseException as exc:  # noqa: BLE001 - showing the outcome failed: report that instead
            outcome = Outcome("failed", outcome.seconds, error=exc)
            self.last_outcome = outcome
        finally:
            self._token = None
            if outcome.status == "completed":
                self.state.finish("done")
            elif outcome.status == "cancelled":
                self.state.mark_cancelled(f"cancelled: {outcome.error}" if str(outcome.error) else "cancelled")
            else:
                self.state.fail(f"{type(outcome.error).__name__}: {outcome.error}")


class LatestOnly:
    """Runs quick side jobs (source analysis, model status) off the main thread; only the newest submission's
    result is applied, so a slow older job can never overwrite what a newer choice showed."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._generation = 0
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []

    def submit(self, work: Callable[[], Any], apply: Callable[[Any], None],
               on_error: Callable[[BaseException], None]) -> threading.Thread:
        with self._lock:
            self._generation += 1
            generation = self._generation

        def run() -> None:
            try:
                value = work()
            except BaseException as exc:  # noqa: BLE001 - reported to the UI, never raised into a thread's void
                if self._is_latest(generation):
                    on_error(exc)
                return
            if self._is_latest(generation):
                apply(value)

        thread = threading.Thread(target=run, name=f"zrealism-lab-{self.name}", daemon=True)
        with self._lock:
            self._threads = [t for t in self._threads if t.is_alive()] + [thread]
        thread.start()
        return thread

    def _is_latest(self, generation: int) -> bool:
        with self._lock:
            return generation == self._generation

    def wait(self, timeout: float | None = None) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            threads = list(self._threads)
        for thread in threads:
            thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        return not any(t.is_alive() for t in threads)


class LabHost(Protocol):
    """What a tab panel (the Temporal tab) uses of the lab that holds it: its runner, run bar and history."""

    runner: Runner
    history: RunHistory
    out_dir: Path | None
    preview_every: int

    @property
    def preset(self) -> str: ...

    @property
    def source_value(self) -> Any: ...

    @property
    def source_label(self) -> str: ...

    @property
    def last_result(self) -> Any: ...

    def current_settings(self) -> Any: ...

    def engine_for(self, ctx: JobContext, preset: str) -> Any: ...

    def start_job(self, job: Job, finish: Callable[[Outcome], None], message: str) -> bool: ...

    def say(self, text: str, level: str = "info") -> None: ...

    def show_failure(self, outcome: Outcome) -> None: ...

    def show_stopped(self) -> None: ...

    @property
    def last_still_number(self) -> int | None: ...

    def refresh_history(self) -> None: ...


__all__ = ["Job", "JobContext", "LabHost", "LatestOnly", "Outcome", "Phase", "Runner"]
