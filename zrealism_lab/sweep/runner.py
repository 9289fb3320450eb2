"""Running a sweep: expand and validate, write the manifest, run the jobs that are not finished yet (each into its
own run folder), record failures and go on, then gather results.json and the contact sheet.

The same code runs in one process or in several started by `accelerate launch`: the main process writes the
manifest and the plan, every process runs its share of the plan on its own device, and the main process waits for
all of them before it gathers the results.
"""
from __future__ import annotations

import datetime as _dt
import os
import secrets
import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from ..errors import CancelledError, ZRealismError
from ..files import atomic_write_json, check_output_root
from ..records import RECORD_NAME
from .manifest import (
    PLAN_NAME,
    build_manifest,
    job_runs_dir,
    pending_jobs,
    read_job_state,
    read_json,
    read_manifest,
    relative,
    write_job_state,
    write_manifest,
)
from .spec import SweepSpec, load_spec

JobCallback = Callable[[int, int, Mapping[str, Any]], None]  # (jobs finished, jobs to run, the job's state)


@dataclass
class SweepResult:
    folder: Path
    manifest: dict[str, Any]
    rows: list[dict[str, Any]]  # every job of the manifest (filled in by the main process)
    ran: int  # jobs this invocation ran (all processes)
    failed: int  # of those, how many failed
    skipped: int  # jobs already finished before this invocation
    contact_sheets: list[Path] = field(default_factory=list)
    results_path: Path | None = None
    report: Any = None  # reports.ReportResult when a report was made
    process_index: int = 0
    num_processes: int = 1

    @property
    def is_main(self) -> bool:
        return self.process_index == 0

    def summary(self) -> str:
        lines = [f"sweep folder: {self.folder}",
                 f"  jobs: {len(self.manifest['jobs'])} ({self.ran} run now, {self.failed} failed, {self.skipped} "
                 f"skipped as done before)" + (f" on {self.num_processes} processes" if self.num_processes > 1 else "")]
        lines += [f"  contact sheet: {path}" for path in self.contact_sheets]
        if self.results_path is not None:
            lines.append(f"  results: {self.results_path}")
        if self.report is not None:
            lines.append(f"  report: {self.report.html}")
        for row in self.rows:
            if row.get("status") == "failed":
                lines.append(f"  failed job {row['job']}: {row.get('error')}")
        return "\n".join(lines)


# --------------------------------------------------------------------------------- processes
class Processes:
    """The process layout: one process, or those `accelerate launch` started (PartialState)."""

    def __init__(self, state: Any = None) -> None:
        self.state = state
        self.index = state.process_index if state is not None else 0
        self.count = state.num_processes if state is not None else 1

    @property
    def is_main(self) -> bool:
        return self.index == 0

    def barrier(self) -> None:
        if self.state is not None:
            self.state.wait_for_everyone()

    def share(self, items: list[Any]) -> list[Any]:
        if self.state is None or self.count == 1:
            return list(items)
        with self.state.split_between_processes(items) as mine:
            return list(mine)

    def device(self, requested: str) -> str:
        """The engine device of this process: its own GPU under accelerate, else what was asked for (CPU when
        `accelerate launch --cpu` started it)."""
        if self.state is None:
            if requested == "auto" and os.environ.get("ACCELERATE_USE_CPU", "").lower() in ("1", "true", "yes"):
                return "cpu"
            return requested
        device = self.state.device
        if device.type == "cuda":
            import torch

            torch.cuda.set_device(device)  # the engine's "cuda" then means this process's own GPU
        return device.type

    def close(self) -> None:
        if self.state is not None and self.count > 1 and hasattr(self.state, "destroy_process_group"):
            self.state.destroy_process_group()


def launched_processes() -> int:
    """How many processes a launcher (accelerate / torchrun) started; 1 when run directly."""
    try:
        return int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        return 1


def accelerate_processes(device: str = "auto") -> Processes:
    """PartialState when started by a multi-process launcher, else a single process.

    On a machine without CUDA, `accelerate launch --multi_gpu` starts the processes through torchrun; PartialState
    then needs cpu=True to pick the gloo backend (MULTI_CPU)."""
    if launched_processes() <= 1:
        return Processes(None)
    import torch
    from accelerate import PartialState

    use_cpu = device == "cpu" or os.environ.get("ACCELERATE_USE_CPU", "").lower() in ("1", "true", "yes") \
        or not torch.cuda.is_available()
    return Processes(PartialState(cpu=use_cpu))


# --------------------------------------------------------------------------------- progress
class SweepProgress:
    """One tqdm bar for the whole sweep: jobs done and failed, with tqdm's ETA. Under several processes the main
    process follows the others through their job files (each written atomically, stamped with the plan's token)."""

    def __init__(self, folder: Path, ids: Sequence[str], token: str, skipped: int, disable: bool = False) -> None:
        from tqdm.auto import tqdm

        self.folder, self.ids, self.token, self.skipped = folder, list(ids), token, skipped
        self.bar = tqdm(total=len(self.ids), desc="sweep", unit="job", disable=disable, dynamic_ncols=True)
        self.lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.done = self.failed = 0
        self._show()

    def record(self, state: Mapping[str, Any]) -> None:
        """Count a job this process finished."""
        with self.lock:
            if state.get("status") == "completed":
                self.done += 1
            else:
                self.failed += 1
            self._show()

    def scan(self) -> None:
        """Count every process's finished jobs from the job files."""
        done = failed = 0
        for ident in self.ids:
            state = read_job_state(self.folder, ident)
            if state and state.get("token") == self.token:
                if state.get("status") == "completed":
                    done += 1
                else:
                    failed += 1
        with self.lock:
            self.done, self.failed = done, failed
            self._show()

    def _show(self) -> None:
        self.bar.n = self.done + self.failed
        self.bar.set_postfix(done=self.done, failed=self.failed, skipped=self.skipped, refresh=False)
        self.bar.refresh()

    def follow(self, every: float = 0.5) -> None:
        """Scan in the background while this process waits for the others."""
        def loop() -> None:
            while not self._stop.wait(every):
                self.scan()

        self._thread = threading.Thread(target=loop, name="sweep-progress", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self.scan()
        self.bar.close()


# --------------------------------------------------------------------------------- one job
def remove_orphan_runs(runs: Path) -> list[Path]:
    """Run folders of this job without a record: a process killed outright (SIGKILL, power loss) mid-run. Its resume
    starts the job again, so the half run goes instead of lying beside the new one."""
    orphans = [run for run in runs.iterdir() if run.is_dir() and not (run / RECORD_NAME).exists()] \
        if runs.is_dir() else []
    for run in orphans:
        shutil.rmtree(run, ignore_errors=True)
    return orphans


def run_job(job: Mapping[str, Any], folder: Path, source: Path, engine: Any, *, token: str = "",
            process_index: int = 0, cancel: Any = None, kind: str = "static") -> dict[str, Any]:
    """Run one manifest job into runs/<id>/ and write jobs/<id>.json: a still (run_static) or, in a temporal sweep,
    a clip of the still (run_temporal). A failure is recorded, not raised; cancellation and Ctrl-C are raised (the
    run record says cancelled)."""
    if kind == "temporal":
        from ..generate.temporal import run_temporal as run
        from ..settings import TemporalSettings as Settings
    else:
        from ..generate.static import run_static as run
        from ..settings import StaticSettings as Settings

    settings = Settings.from_dict(job["settings"])
    runs = job_runs_dir(folder, job["id"])
    remove_orphan_runs(runs)
    state: dict[str, Any] = {"id": job["id"], "index": job["index"], "token": token, "process": process_index,
                             "started": _dt.datetime.now(_dt.timezone.utc).isoformat()}
    start = time.perf_counter()
    try:
        result = run(source, settings, engine=engine, out_dir=runs, cancel=cancel)
    except (CancelledError, KeyboardInterrupt):
        raise
    except Exception as exc:  # any job's failure is that job's, the sweep goes on
        run_dir = getattr(exc, "run_dir", None)  # set by the run's record writer when the run had started
        state.update(status="failed", run_dir=relative(run_dir, folder) if run_dir else None,
                     error={"type": type(exc).__name__, "message": str(exc)})
    else:
        state.update(status="completed", run_dir=relative(result.run_dir, folder), error=None)
    state["seconds"] = round(time.perf_counter() - start, 3)
    write_job_state(folder, job["id"], state)
    return state


# --------------------------------------------------------------------------------- the sweep
def prepare_sweep(spec: SweepSpec | Mapping[str, Any] | str | os.PathLike, out_dir: str | os.PathLike, *,
                  engine: Any = None, device: str = "auto", offload: str = "auto") -> dict[str, Any]:
    """Expand, validate and write manifest.json; nothing runs. Returns the manifest."""
    return _prepared(load_spec(spec), out_dir, engine, device, offload)[0]


def _prepared(spec: SweepSpec, out_dir: str | os.PathLike, engine: Any, device: str, offload: str
              ) -> tuple[dict[str, Any], Any]:
    """The written manifest and the engine it was built with (loaded here unless given), after every check that
    needs no model."""
    from ..engine.engine import get_engine

    check_output_root(out_dir)
    spec.base_settings()  # bad base settings: the single run's error, before any model set is resolved
    spec.check_images()  # every source exists and decodes, before any model set is resolved
    engine = engine or get_engine(spec.preset, device=device, offload=offload)
    manifest = build_manifest(spec, engine)
    folder = check_output_root(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    write_manifest(folder, manifest)
    return manifest, engine


def run_sweep(spec: SweepSpec | Mapping[str, Any] | str | os.PathLike, out_dir: str | os.PathLike, *,
              engine: Any = None, device: str = "auto", offload: str = "auto", progress: bool = True,
              report: bool = False, on_job: JobCallback | None = None, cancel: Any = None,
              retry_failed: bool = True, processes: Processes | None = None) -> SweepResult:
    """Run a sweep into ``out_dir``; a rerun skips the jobs that finished before (resume after a crash or Ctrl-C)
    and runs failed ones again unless ``retry_failed`` is False.

    Under `accelerate launch` (several processes) each process runs its share of the jobs on its own device and the
    main process gathers results.json, the contact sheet and (with ``report``) the report."""
    from ..engine.engine import get_engine

    spec = load_spec(spec)
    folder = check_output_root(out_dir)
    procs = processes if processes is not None else accelerate_processes(device)
    try:
        device = procs.device(device)
        plan_path = folder / PLAN_NAME
        if procs.is_main:
            try:
                manifest, engine = _prepared(spec, folder, engine, device, offload)
                todo, done = pending_jobs(folder, manifest["jobs"], retry_failed=retry_failed)
                plan = {"token": secrets.token_hex(6), "processes": procs.count, "pending": [j["id"] for j in todo],
                        "finished": [j["id"] for j in done]}
            except BaseException as exc:
                if procs.count > 1:  # the others wait at the barrier: tell them why there is nothing to run
                    folder.mkdir(parents=True, exist_ok=True)
                    atomic_write_json(plan_path, {"error": f"{type(exc).__name__}: {exc}"})
                    procs.barrier()
                raise
            atomic_write_json(plan_path, plan)
        procs.barrier()
        if not procs.is_main:
            plan = read_json(plan_path)
            if plan.get("error"):
                raise ZRealismError(f"the sweep could not start: {plan['error']}")
            manifest = read_manifest(folder)
            engine = engine or get_engine(spec.preset, device=device, offload=offload)
        return _run_plan(folder, manifest, plan, engine, procs, progress=progress, report=report, on_job=on_job,
                         cancel=cancel)
    finally:
        if processes is None:
            procs.close()


def _run_plan(folder: Path, manifest: dict[str, Any], plan: dict[str, Any], engine: Any, procs: Processes, *,
              progress: bool, report: bool, on_job: JobCallback | None, cancel: Any) -> SweepResult:
    by_id = {job["id"]: job for job in manifest["jobs"]}
    pending = [by_id[ident] for ident in plan["pending"]]
    mine = procs.share(pending)
    kind = manifest.get("run_kind", "static")
    bar = SweepProgress(folder, plan["pending"], plan["token"], len(plan["finished"]),
                        disable=not progress) if procs.is_main else None
    finished = 0
    interrupted: BaseException | None = None
    try:
        for job in mine:
            if cancel is not None and getattr(cancel, "cancelled", False):
                raise CancelledError(f"sweep cancelled after {finished} of {len(mine)} jobs")
            source = Path((job.get("source") or manifest["source"])["path"])  # older manifests: one source
            state = run_job(job, folder, source, engine, token=plan["token"], process_index=procs.index,
                            cancel=cancel, kind=kind)
            finished += 1
            if bar is not None:
                if procs.count > 1:
                    bar.scan()
                else:
                    bar.record(state)
            if on_job is not None:
                on_job(finished, len(mine), state)
    except BaseException as exc:  # Ctrl-C or cancel: still gather what finished (single process only)
        interrupted = exc
        if procs.count > 1:
            raise
    if bar is not None and procs.count > 1:
        bar.follow()
    procs.barrier()
    if bar is not None:
        bar.close()
    result = SweepResult(folder, manifest, [], 0, 0, len(plan["finished"]), process_index=procs.index,
                         num_processes=procs.count)
    if procs.is_main:
        _gather(result, plan)
        if report and interrupted is None:
            from .report import run_sweep_report

            result.report = run_sweep_report(folder, progress=progress)
    if interrupted is not None:
        raise interrupted
    return result


def _gather(result: SweepResult, plan: Mapping[str, Any]) -> None:
    from .contact import sweep_contact_sheets, write_contact_sheets
    from .results import collect_rows, write_results

    folder = result.folder
    rows = collect_rows(folder, result.manifest)
    token = plan["token"]
    states = [read_job_state(folder, ident) or {} for ident in plan["pending"]]
    result.ran = sum(1 for s in states if s.get("token") == token)
    result.failed = sum(1 for s in states if s.get("token") == token and s.get("status") == "failed")
    result.rows = rows
    result.contact_sheets = write_contact_sheets(folder, sweep_contact_sheets(folder, rows=rows))
    result.results_path = write_results(folder, result.manifest, rows, result.contact_sheets)
