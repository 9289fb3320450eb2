"""The sweep folder: manifest.json (every job fully specified, written before anything runs), one status file per
job, and the job -> run folder mapping that makes a sweep resumable.

    SWEEP/
      manifest.json          spec, kind (static | temporal), source, model set + weight hashes, axes, jobs (id,
                             coords, settings, source)
      plan.json              the jobs this invocation runs (written by the main process, read by all)
      jobs/<id>.json         status of each job: completed | failed, run folder, error, seconds
      runs/<id>/<run>/       each job's own run folder(s) with record.json (a crashed attempt leaves one behind)
      results.json           one row per job: coords, status, run folder, metrics
      contact_sheet*.png     the X/Y grid of outputs, one file per Z page

A job's id is a hash of everything that decides its pixels (settings and seed, source file, model set and weight
hashes), so a rerun of the same spec finds its finished jobs, and an extended spec reuses them.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
from pathlib import Path
from typing import Any, Iterable, Mapping

from ..errors import SettingsError
from ..control.given import given_digest
from ..files import atomic_write_json, sha256_file
from ..records import RECORD_NAME
from .spec import SweepSpec, resolve_image

MANIFEST_NAME = "manifest.json"
PLAN_NAME = "plan.json"
RESULTS_NAME = "results.json"
JOBS_DIR = "jobs"
RUNS_DIR = "runs"
MANIFEST_FORMAT = 1


def job_id(payload: Mapping[str, Any]) -> str:
    """A stable short hash of a job's identity (JSON with sorted keys, so key order never matters)."""
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def build_manifest(spec: SweepSpec, engine: Any) -> dict[str, Any]:
    """Expand and validate every job and describe it completely; raises SettingsError before anything runs."""
    from ..records import model_hashes

    models = engine.models
    temporal = spec.kind == "temporal"
    sources = {image: resolve_image(image) for image in spec.images}
    shas = {image: sha256_file(path) for image, path in sources.items()}
    jobs = spec.expand(models.default_controls)
    hashes: dict[str, dict[str, str]] = {}
    entries = []
    seen: dict[str, int] = {}
    for job in jobs:
        kinds = check_units(job.settings, models)
        roles = engine.roles_for(kinds, temporal=temporal, safety_checker=getattr(job.settings, "safety_checker",
                                                                                  False))
        job_hashes = model_hashes(engine, roles)
        hashes.update(job_hashes)
        identity = {"settings": job.settings.to_dict(), "seed": job.settings.seed, "source_sha256": shas[job.image],
                    "models": models.to_dict(), "model_hashes": job_hashes}
        if temporal:  # a static sweep's ids stay what they always were, so its folders still resume
            identity["kind"] = "temporal"
        given = {u.kind: given_digest(u) for u in job.settings.controls or () if u.image is not None}
        if given:  # an edited map is a new job, not one already done
            identity["control_map_sha256"] = given
        ident = job_id(identity)
        if ident in seen:
            raise SettingsError("axes", job.coords, "axes whose combinations give distinct settings",
                                f"Jobs {seen[ident]} and {job.index} would run the same settings.")
        seen[ident] = job.index
        entries.append({"id": ident, **job.to_dict(), "roles": roles,
                        "source": {"image": job.image, "path": str(sources[job.image]), "sha256": shas[job.image]}})
    single = spec.image is not None
    return {
        "format": MANIFEST_FORMAT,
        "kind": "sweep",
        "run_kind": spec.kind,
        "name": spec.name,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(),
        "spec": spec.to_dict(),
        # with an image axis each job names its own source (jobs[].source) and there is no one source
        "source": {"image": spec.image, "path": str(sources[spec.image]), "sha256": shas[spec.image]}
        if single else None,
        "preset": spec.preset,
        "models": models.to_dict(),
        "random_weights": bool(getattr(models, "random_weights", False)),
        "model_hashes": hashes,
        "axes": [axis.to_dict() for axis in spec.axes],
        "jobs": entries,
    }


def check_units(settings: Any, models: Any) -> list[str]:
    """The job's control kinds; a kind the model set lacks or an unknown detector method raises the single run's
    error here, before anything runs (a single run meets them only when it reaches that stage)."""
    from ..control import CONTROL_PROVIDERS

    units = settings.controls if settings.controls is not None else models.default_controls
    for unit in units:
        models.controlnet(unit.kind)
        CONTROL_PROVIDERS.get(unit.kind).method(models.control_method(unit.kind, unit.method))
    return [unit.kind for unit in units]


def write_manifest(folder: str | os.PathLike, manifest: Mapping[str, Any]) -> Path:
    """Write manifest.json atomically. A manifest already there keeps its creation time when the jobs are the same."""
    folder = Path(folder)
    path = folder / MANIFEST_NAME
    if path.is_file():
        old = read_json(path)
        if [j["id"] for j in old.get("jobs", [])] == [j["id"] for j in manifest["jobs"]]:
            manifest = {**manifest, "created": old.get("created", manifest["created"])}
    atomic_write_json(path, manifest)
    return path


def read_json(path: str | os.PathLike) -> dict[str, Any]:
    from ..errors import IntakeError

    path = Path(path)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise IntakeError(f"{path} does not exist: give a sweep folder made by `zrealism sweep`") from None
    except json.JSONDecodeError as exc:
        raise IntakeError(f"{path} is not valid JSON: {exc}") from None


def read_manifest(folder: str | os.PathLike) -> dict[str, Any]:
    return read_json(Path(folder) / MANIFEST_NAME)


# --------------------------------------------------------------------------------- job states
def job_file(folder: str | os.PathLike, ident: str) -> Path:
    return Path(folder) / JOBS_DIR / f"{ident}.json"


def job_runs_dir(folder: str | os.PathLike, ident: str) -> Path:
    return Path(folder) / RUNS_DIR / ident


def completed_run(folder: str | os.PathLike, ident: str) -> Path | None:
    """The job's newest run folder whose record.json says completed (None when it has none: not run, crashed
    mid-way or failed)."""
    runs = job_runs_dir(folder, ident)
    if not runs.is_dir():
        return None
    for run in sorted((p for p in runs.iterdir() if p.is_dir()), reverse=True):
        record = run / RECORD_NAME
        try:
            if json.loads(record.read_text()).get("status") == "completed":
                return run
        except (OSError, json.JSONDecodeError):
            continue
    return None


def write_job_state(folder: str | os.PathLike, ident: str, state: Mapping[str, Any]) -> None:
    atomic_write_json(job_file(folder, ident), dict(state))


def read_job_state(folder: str | os.PathLike, ident: str) -> dict[str, Any] | None:
    path = job_file(folder, ident)
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def pending_jobs(folder: str | os.PathLike, jobs: Iterable[Mapping[str, Any]], *,
                 retry_failed: bool = True) -> tuple[list[dict], list[dict]]:
    """(to run, left alone). Finished means a run folder with a completed record. Failed jobs run again unless
    ``retry_failed`` is False (a failure may have been a missing file or memory, since fixed)."""
    todo, done = [], []
    for job in jobs:
        finished = completed_run(folder, job["id"]) is not None
        if not finished and not retry_failed:
            finished = (read_job_state(folder, job["id"]) or {}).get("status") == "failed"
        (done if finished else todo).append(dict(job))
    return todo, done


def relative(path: str | os.PathLike | None, folder: str | os.PathLike) -> str | None:
    """A path inside the sweep folder written relative to it, so the folder can be moved or copied whole."""
    if path is None:
        return None
    try:
        return Path(path).resolve().relative_to(Path(folder).resolve()).as_posix()
    except ValueError:
        return str(path)
