"""Run records: every run gets its own folder (time + short hash, never reused), a record.json with everything
needed to reproduce it, outputs written atomically, and PNGs that carry their settings in text chunks."""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import platform
import secrets
import sys
import tempfile
import traceback
from pathlib import Path
from typing import Any, Iterable

from PIL import Image, PngImagePlugin

RECORD_NAME = "record.json"
RECORD_FORMAT = 1
_UMASK = os.umask(0)
os.umask(_UMASK)


def sha256_file(path: str | os.PathLike, _cache: dict = {}) -> str:  # noqa: B006 - deliberate per-process memo
    """SHA-256 of a file, memoised on (path, size, mtime): weight files are large and rarely change."""
    stat = os.stat(path)
    key = (os.fspath(path), stat.st_size, stat.st_mtime_ns)
    if key not in _cache:
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        _cache[key] = digest.hexdigest()
    return _cache[key]


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temp file in the same folder, then rename: a reader never sees a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes owner-only files; outputs get the user's usual mode
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path: Path, data: Any) -> None:
    atomic_write_bytes(path, (json.dumps(data, indent=2, sort_keys=False, default=_json_default) + "\n").encode())


def _json_default(value: Any) -> Any:
    if hasattr(value, "to_dict"):
        return value.to_dict()
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, (set, tuple)):
        return list(value)
    return repr(value)


def a1111_parameters(prompt: str, negative: str, settings: dict[str, Any], size: tuple[int, int]) -> str:
    """The `parameters` text chunk that A1111-compatible tools (and image browsers) read."""
    fields = [f"Steps: {settings.get('steps')}", f"Sampler: {settings.get('scheduler')}",
              f"CFG scale: {settings.get('cfg')}", f"Seed: {settings.get('seed')}", f"Size: {size[0]}x{size[1]}",
              f"Denoising strength: {settings.get('strength')}"]
    return f"{prompt}\nNegative prompt: {negative}\n" + ", ".join(fields)


def png_bytes(image: Image.Image, text: dict[str, str] | None = None) -> bytes:
    import io

    info = PngImagePlugin.PngInfo()
    for key, value in (text or {}).items():
        info.add_itxt(key, value)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", pnginfo=info)
    return buffer.getvalue()


def environment() -> dict[str, Any]:
    """Versions of everything that decides the pixels."""
    from importlib import metadata

    versions = {"python": sys.version.split()[0], "platform": platform.platform()}
    for dist in ("torch", "diffusers", "transformers", "controlnet-aux", "accelerate", "numpy", "scikit-image",
                 "opencv-python-headless", "zrealism-lab"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = None
    return versions


def model_hashes(engine: Any, roles: Iterable[str]) -> dict[str, dict[str, str]]:
    """sha256 of each weight file of each component a run used, so a rerun can tell if the weights changed."""
    from .models.loading import locate

    hashes: dict[str, dict[str, str]] = {}
    for role in roles:
        status = locate(engine.ref(role))
        if not status.present or status.path is None:
            continue
        path = Path(status.path)
        files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.suffix == ".safetensors")
        if role in ("tokenizer", "scheduler"):
            files = sorted(p for p in path.rglob("*") if p.is_file())
        hashes[role] = {str(f.relative_to(path) if f != path else f.name): sha256_file(f) for f in files}
    return hashes


def safe_output_name(name: Any) -> str:
    """An output's name relative to its run folder ('output.png', 'frames/frame_0001.png'). Names are read back
    from record.json, which anyone can edit, so one that could point outside the folder (absolute, '..', a
    backslash, a drive colon, NUL, an empty part) is refused instead of being joined to the folder."""
    from .errors import IntakeError

    parts = name.split("/") if isinstance(name, str) and name else []
    if (not parts or any(part in ("", ".", "..") for part in parts)
            or any(bad in name for bad in ("\\", ":", "\x00"))):
        raise IntakeError(f"the output name {name!r} is not a plain file name inside the run folder: the record was "
                          "edited or damaged, so its outputs are not read. Allowed: names like 'output.png' or "
                          "'frames/frame_0001.png'.")
    return name


class RunWriter:
    """Creates a run folder and writes its outputs and record.json atomically."""

    def __init__(self, folder: Path, kind: str) -> None:
        self.folder, self.kind = folder, kind
        self.started = _dt.datetime.now(_dt.timezone.utc)
        self.outputs: dict[str, str] = {}
        self.record: dict[str, Any] = {}

    @classmethod
    def create(cls, root: str | os.PathLike, kind: str) -> "RunWriter":
        root = Path(root).expanduser()
        root.mkdir(parents=True, exist_ok=True)
        now = _dt.datetime.now()
        # Milliseconds too, so run folders sort by time even when runs start within the same second.
        stamp = now.strftime("%Y%m%d-%H%M%S") + f"{now.microsecond // 1000:03d}"
        while True:  # exclusive mkdir: two runs never share a folder, even in the same second
            folder = root / f"{stamp}-{kind}-{secrets.token_hex(3)}"
            try:
                folder.mkdir()
                return cls(folder, kind)
            except FileExistsError:
                continue

    def save_png(self, name: str, image: Image.Image, text: dict[str, str] | None = None) -> Path:
        path = self.folder / safe_output_name(name)
        data = png_bytes(image, text)
        atomic_write_bytes(path, data)
        self.outputs[name] = hashlib.sha256(data).hexdigest()
        return path

    def save_file(self, name: str, data: bytes) -> Path:
        path = self.folder / safe_output_name(name)
        atomic_write_bytes(path, data)
        self.outputs[name] = hashlib.sha256(data).hexdigest()
        return path

    def _base_record(self, status: str, settings: Any, engine: Any) -> dict[str, Any]:
        return {
            "format": RECORD_FORMAT,
            "kind": self.kind,
            "status": status,
            "started": self.started.isoformat(),
            "finished": _dt.datetime.now(_dt.timezone.utc).isoformat(),
            "settings": settings.to_dict() if settings is not None else None,
            "seed": getattr(settings, "seed", None),
            "models": engine.models.to_dict() if engine is not None else None,
            "hardware": engine.plan.to_dict() if engine is not None else None,
            "versions": environment(),
        }

    def write_static(self, result: Any, engine: Any) -> dict[str, Any]:
        ctx = result.context
        settings_dict = result.settings.to_dict()
        settings_dict["controls"] = [u.to_dict() for u in ctx.units]
        text = {"parameters": a1111_parameters(ctx.prompt, ctx.negative_prompt, settings_dict, result.image.size),
                "zrealism": json.dumps({"settings": settings_dict, "models": engine.models.name}, default=_json_default)}
        self.save_png("output.png", result.image, text)
        self.save_png("output_raw.png", result.raw, text)
        self.save_png("source_prepared.png", ctx.prepared.image)
        for kind, cmap in ctx.control_maps.items():
            self.save_png(f"control_{kind}.png", cmap.image)
        record = self._base_record(result.status, result.settings, engine)
        record.update({
            "prompt": ctx.prompt,
            "negative_prompt": ctx.negative_prompt,
            "source": {"path": ctx.source.path, "format": ctx.source.format, "mode": ctx.source.original_mode,
                       "size": list(ctx.source.original_size),
                       "sha256": sha256_file(ctx.source.path) if ctx.source.path else None},
            "background": ctx.analysis.to_dict(),
            "preparation": dict(ctx.prepared.adaptations),
            "controls": {k: {"method": m.method, "found": m.found, "params": m.params} for k, m in ctx.control_maps.items()},
            "units": [u.to_dict() for u in ctx.units],
            "colour": result.colour.to_dict(),
            "metrics": result.metrics.to_dict() if result.metrics is not None else None,
            "timings": {k: round(v, 4) for k, v in result.timings.items()},
            "warnings": list(result.warnings),
            "model_hashes": model_hashes(engine, engine.roles_for([u.kind for u in ctx.units])),
            "outputs": dict(self.outputs),
        })
        self.record = record
        atomic_write_json(self.folder / RECORD_NAME, record)
        return record

    def fail(self, exc: BaseException, *, settings: Any = None, engine: Any = None) -> dict[str, Any]:
        """Mark the run cancelled or failed, keeping only fully written outputs (half-written ones never exist)."""
        from .errors import CancelledError

        status = "cancelled" if isinstance(exc, (CancelledError, KeyboardInterrupt)) else "failed"
        record = self._base_record(status, settings, engine)
        record["error"] = {"type": type(exc).__name__, "message": str(exc),
                           "traceback": traceback.format_exception_only(type(exc), exc)[-1].strip()}
        record["outputs"] = dict(self.outputs)
        self.record = record
        atomic_write_json(self.folder / RECORD_NAME, record)
        return record


def read_record(run_dir: str | os.PathLike) -> dict[str, Any]:
    from .errors import IntakeError

    path = Path(run_dir).expanduser()
    path = path / RECORD_NAME if path.is_dir() else path
    if not path.is_file():
        raise IntakeError(f"no run record at {path}: give a run folder that contains {RECORD_NAME}")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise IntakeError(f"{path} is not a valid run record: {exc}") from None


# ----------------------------------------------------------------- checking records (used by rerun and reports)

# What a finished run's record must hold to be reproduced and read on its own; failed or cancelled runs stop before
# most stages, so their records hold the run's identity (settings, models, hardware, versions) and the error.
COMPLETED_FIELDS = ("format", "kind", "status", "started", "finished", "settings", "seed", "models", "hardware",
                    "versions", "prompt", "negative_prompt", "source", "controls", "units", "colour", "metrics",
                    "timings", "warnings", "model_hashes", "outputs")
KIND_FIELDS = {"static": ("background", "preparation"), "temporal": ("mode", "generation", "videos")}
INTERRUPTED_FIELDS = ("format", "kind", "status", "started", "finished", "settings", "seed", "models", "hardware",
                      "versions", "error", "outputs")
RUN_STATUSES = ("completed", "cancelled", "failed")


def missing_record_fields(record: dict[str, Any]) -> list[str]:
    """Names of the fields a record of its status should have but lacks (empty when the record is complete)."""
    status = record.get("status")
    if status not in RUN_STATUSES:
        return ["status"]
    wanted = COMPLETED_FIELDS + KIND_FIELDS.get(record.get("kind"), ()) if status == "completed" else INTERRUPTED_FIELDS
    missing = [name for name in wanted if name not in record]
    hardware = record.get("hardware") or {}
    missing += [f"hardware.{key}" for key in ("device", "dtype", "offload") if key not in hardware]
    if status != "completed" and not (record.get("error") or {}).get("message"):
        missing.append("error.message")
    return missing


def verify_outputs(run_dir: str | os.PathLike, record: dict[str, Any] | None = None) -> dict[str, str]:
    """Each recorded output file's state: 'ok', 'changed' (sha256 differs) or 'missing'."""
    folder = Path(run_dir).expanduser()
    record = record if record is not None else read_record(folder)
    states: dict[str, str] = {}
    for name, digest in (record.get("outputs") or {}).items():
        path = folder / safe_output_name(name)
        if not path.is_file():
            states[name] = "missing"
        else:
            states[name] = "ok" if sha256_file(path) == digest else "changed"
    return states


def compare_model_hashes(recorded: dict[str, dict[str, str]], current: dict[str, dict[str, str]]) -> list[str]:
    """One line per weight file whose sha256 differs from the record (or that appeared or disappeared)."""
    lines: list[str] = []
    for role in sorted(set(recorded) | set(current)):
        old, new = recorded.get(role), current.get(role)
        if old is None:
            lines.append(f"{role}: not in the record, present now")
            continue
        if new is None:
            lines.append(f"{role}: in the record, but its files are not found now")
            continue
        for name in sorted(set(old) | set(new)):
            if name not in new:
                lines.append(f"{role}: {name} is gone")
            elif name not in old:
                lines.append(f"{role}: {name} is new")
            elif old[name] != new[name]:
                lines.append(f"{role}: {name} sha256 {old[name][:12]}... in the record, {new[name][:12]}... now")
    return lines
