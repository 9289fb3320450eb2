"""Run records: every run gets its own folder (time + short hash, never reused), a record.json with everything
needed to reproduce it, outputs written atomically, and PNGs that carry their settings in text chunks."""
from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import json
import os
import platform
import secrets
import sys
import traceback
from pathlib import Path
from typing import Any, Iterable, Iterator

from PIL import Image

from .files import atomic_write_bytes, atomic_write_json, check_output_root, json_default, png_bytes, sha256_file

RECORD_NAME = "record.json"
RECORD_FORMAT = 1
MAX_RECORD_BYTES = 50_000_000
def a1111_parameters(prompt: str, negative: str, settings: dict[str, Any], size: tuple[int, int],
                     **context: Any) -> str:
    """The `parameters` text chunk that A1111-compatible tools (and image browsers) read: see ``infotext``."""
    from .infotext import write_infotext

    return write_infotext(prompt, negative, settings, size, **context)


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
    seen: dict[Path, str] = {}  # a single-file checkpoint is the unet, vae and text encoder: hashed once
    for role in roles:
        status = locate(engine.ref(role))
        if not status.present or status.path is None:
            continue
        path = Path(status.path)
        files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.suffix == ".safetensors")
        if role in ("tokenizer", "scheduler"):
            files = sorted(p for p in path.rglob("*") if p.is_file())
        hashes[role] = {str(f.relative_to(path) if f != path else f.name): seen[f] if f in seen
                        else seen.setdefault(f, sha256_file(f)) for f in files}
    return hashes


def still_run_text(run_dir: str | None) -> dict[str, str] | None:
    """The text chunks of a static run's output.png (for the still a temporal run animates), if it is there."""
    if not run_dir or not (Path(run_dir) / "output.png").is_file():
        return None
    with Image.open(Path(run_dir) / "output.png") as image:
        chunks = {k: v for k, v in image.info.items() if k in ("parameters", "zrealism") and isinstance(v, str)}
    return chunks or None


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


def source_entry(source: Any) -> dict[str, Any]:
    """What a record says of its source file: where it was, what it was, and its hash for reruns."""
    return {"path": source.path, "format": source.format, "mode": source.original_mode,
            "size": list(source.original_size), "sha256": sha256_file(source.path) if source.path else None}


class RunWriter:
    """Creates a run folder and writes its outputs and record.json atomically."""

    def __init__(self, folder: Path, kind: str) -> None:
        self.folder, self.kind = folder, kind
        self.started = _dt.datetime.now(_dt.timezone.utc)
        self.outputs: dict[str, str] = {}
        self.record: dict[str, Any] = {}

    @classmethod
    def create(cls, root: str | os.PathLike, kind: str) -> "RunWriter":
        root = check_output_root(root)
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

    def _png_text(self, prompt: str, negative: str, settings: Any, units: Any, size: tuple[int, int],
                  engine: Any, *, hashes: dict[str, dict[str, str]] | None = None, adapters: Any = None,
                  temporal: bool = False) -> dict[str, str]:
        """The text chunks of an output PNG: A1111's `parameters` line and the lab's own settings as JSON."""
        settings_dict = settings.to_dict()
        settings_dict["controls"] = [u.to_dict() for u in units]
        parameters = a1111_parameters(prompt, negative, settings_dict, size, models=engine.models.to_dict(),
                                      model_hashes=hashes, adapters=adapters, temporal=temporal)
        return {"parameters": parameters,
                "zrealism": json.dumps({"settings": settings_dict, "models": engine.models.name},
                                       default=json_default)}

    def _finish(self, record: dict[str, Any]) -> dict[str, Any]:
        record["outputs"] = dict(self.outputs)
        self.record = record
        atomic_write_json(self.folder / RECORD_NAME, record)
        return record

    def write_static(self, result: Any, engine: Any) -> dict[str, Any]:
        """The still, its raw twin, the prepared source and control maps as PNG, then record.json."""
        ctx = result.context
        hashes = model_hashes(engine, engine.roles_for([u.kind for u in ctx.units]))
        text = self._png_text(ctx.prompt, ctx.negative_prompt, result.settings, ctx.units, result.image.size, engine,
                              hashes=hashes, adapters=getattr(result, "adapters", None))
        self.save_png("output.png", result.image, text)
        self.save_png("output_raw.png", result.raw, text)
        self.save_png("source_prepared.png", ctx.prepared.image)
        for kind, cmap in ctx.control_maps.items():
            self.save_png(f"control_{kind}.png", cmap.image)
        hires, faces = getattr(result, "hires", None), getattr(result, "faces", None)
        if hires is not None:  # the first pass and the maps the second pass was guided by
            self.save_png("output_first_pass.png", hires.first)
            for kind, image in hires.control_maps.items():
                self.save_png(f"hires_control_{kind}.png", image)
        for name, image in (faces.crops.items() if faces is not None else ()):
            self.save_png(name, image)
        record = self._base_record(result.status, result.settings, engine)
        record.update({
            "prompt": ctx.prompt,
            "negative_prompt": ctx.negative_prompt,
            "source": source_entry(ctx.source),
            "background": ctx.analysis.to_dict(),
            "preparation": dict(ctx.prepared.adaptations),
            "controls": {k: {"method": m.method, "found": m.found, "params": m.params} for k, m in ctx.control_maps.items()},
            "units": [u.to_dict() for u in ctx.units],
            "passes": {"hires": hires.to_dict() if hires is not None else None,
                       "face_detail": faces.to_dict() if faces is not None else None},
            "adapters": getattr(result, "adapters", None) or None,
            "speed": getattr(result, "speed", None) or None,
            "colour": result.colour.to_dict(),
            "metrics": result.metrics.to_dict() if result.metrics is not None else None,
            "timings": {k: round(v, 4) for k, v in result.timings.items()},
            "warnings": list(result.warnings),
            "model_hashes": hashes,
        })
        return self._finish(record)

    def write_temporal(self, result: Any, engine: Any) -> dict[str, Any]:
        """The clip as MP4 and GIF, its frames as PNG, the inputs, then record.json."""
        from .source.video import write_gif, write_mp4

        inputs = result.inputs
        videos: dict[str, Any] = {}

        def keep(name: str, info: dict[str, Any]) -> None:
            videos[name] = {**info, "path": name}  # relative, so the run folder can move
            self.outputs[name] = sha256_file(self.folder / name)

        for name, frames in (("clip.mp4", result.frames), ("clip_raw.mp4", result.raw_frames)):
            keep(name, write_mp4(frames, self.folder / safe_output_name(name), result.fps))
        keep("clip.gif", write_gif(result.frames, self.folder / "clip.gif", result.fps))
        hires = getattr(result, "hires", None)
        if hires is not None:  # the first pass the hires pass started from, at its own size
            keep("clip_first_pass.mp4", write_mp4(hires.first, self.folder / "clip_first_pass.mp4", result.fps))
        hashes = model_hashes(engine, engine.roles_for([u.kind for u in inputs.units], temporal=True))
        text = self._png_text(inputs.prompt, inputs.negative_prompt, result.settings, inputs.units, result.size, engine,
                              hashes=hashes, adapters=getattr(result, "adapters", None), temporal=True)
        for index, frame in enumerate(result.frames, start=1):  # every frame: any one may be shared alone
            self.save_png(f"frames/frame_{index:04d}.png", frame, text)
        if inputs.still is not None:  # a still from a static run keeps that run's infotext
            self.save_png("still.png", inputs.still, still_run_text(inputs.still_run))
            for kind, maps in inputs.control_frames.items():
                self.save_png(f"control_{kind}.png", maps[0])
        else:
            self.save_png("input_first_frame.png", inputs.frames[0])
            for kind, maps in inputs.control_frames.items():
                keep(f"control_{kind}.mp4", write_mp4(maps, self.folder / f"control_{kind}.mp4", result.fps))

        clip_info = dict(inputs.clip) if inputs.clip else None
        if clip_info and clip_info.get("path") and Path(clip_info["path"]).is_file():
            clip_info["sha256"] = sha256_file(clip_info["path"])
        settings = result.settings
        record = self._base_record(result.status, settings, engine)
        record.update({
            "mode": inputs.mode,
            "prompt": inputs.prompt,
            "negative_prompt": inputs.negative_prompt,
            "source": source_entry(inputs.context.source) if inputs.context is not None else None,
            "still_run": inputs.still_run,
            "background": inputs.context.analysis.to_dict() if inputs.context is not None else None,
            "clip": clip_info,
            "units": [u.to_dict() for u in inputs.units],
            "controls": inputs.control_records,
            "generation": result.generation,
            "passes": {"hires": hires.to_dict() if hires is not None else None,
                       "face_detail": result.faces.to_dict() if getattr(result, "faces", None) is not None else None},
            "videos": videos,
            "adapters": getattr(result, "adapters", None) or None,
            "speed": getattr(result, "speed", None) or None,
            "colour": None if result.colour is None else {
                "method": settings.colour_method, "strength": settings.colour_strength,
                "reference": "the fixed source" if inputs.mode == "still" else "each input frame",
                "delta_e_before": [round(c.delta_e_before, 4) for c in result.colour],
                "delta_e_after": [round(c.delta_e_after, 4) for c in result.colour]},
            "metrics": result.metrics.to_dict() if hasattr(result.metrics, "to_dict") else result.metrics,
            "timings": {k: round(v, 4) for k, v in result.timings.items()},
            "warnings": list(result.warnings),
            "model_hashes": hashes,
        })
        return self._finish(record)

    def publish(self, result: Any, engine: Any) -> None:
        """Write a finished run's outputs and record (by the writer's kind), and tell the result where they are."""
        (self.write_temporal if self.kind == "temporal" else self.write_static)(result, engine)
        result.run_dir = self.folder
        result.record = self.record

    def fail(self, exc: BaseException, *, settings: Any = None, engine: Any = None) -> dict[str, Any]:
        """Mark the run cancelled or failed, keeping only fully written outputs (half-written ones never exist)."""
        from .errors import CancelledError

        status = "cancelled" if isinstance(exc, (CancelledError, KeyboardInterrupt)) else "failed"
        record = self._base_record(status, settings, engine)
        record["error"] = {"type": type(exc).__name__, "message": str(exc),
                           "traceback": traceback.format_exception_only(type(exc), exc)[-1].strip()}
        exc.run_dir = self.folder  # callers (the lab) find the folder of a cancelled or failed run here
        return self._finish(record)


@contextlib.contextmanager
def recorded(writer: RunWriter | None, *, settings: Any = None, engine: Any = None) -> Iterator[None]:
    """The run's body: whatever stops it (an error, a cancel, Ctrl-C or SIGTERM) is written into its record as
    'failed' or 'cancelled' before it propagates. Without a writer (no out_dir) it only propagates."""
    try:
        yield
    except BaseException as exc:
        if writer is not None:
            writer.fail(exc, settings=settings, engine=engine)
        raise


def read_record(run_dir: str | os.PathLike) -> dict[str, Any]:
    from .errors import IntakeError

    path = Path(run_dir).expanduser()
    path = path / RECORD_NAME if path.is_dir() else path
    if not path.is_file():
        raise IntakeError(f"no run record at {path}: give a run folder that contains {RECORD_NAME}")
    if path.stat().st_size > MAX_RECORD_BYTES:
        raise IntakeError(f"{path} is {path.stat().st_size:,} bytes: not a run record (they are a few kB; the limit "
                          f"is {MAX_RECORD_BYTES:,})")
    try:
        record = json.loads(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise IntakeError(f"{path} is not a valid run record: byte {exc.start} is not UTF-8") from None
    except RecursionError:
        raise IntakeError(f"{path} is not a valid run record: it nests too deeply") from None
    except json.JSONDecodeError as exc:
        raise IntakeError(f"{path} is not a valid run record: {exc}") from None
    if not isinstance(record, dict):
        raise IntakeError(f"{path} is not a valid run record: it holds a JSON {type(record).__name__}, not an object "
                          "with the run's fields")
    return record


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
