"""Face detail for clips: one face tracked through the frames (the most confident per frame, or the user's box), the
track's centre and size smoothed over a few frames, then each frame's face refined at its smoothed box with the
same seed, so the crops and the noise stay put from frame to frame and the face does not flicker more."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np
from PIL import Image

from ..progress import CancelToken, ProgressCallback, emit
from ..settings import ControlUnit, StaticSettings

if TYPE_CHECKING:
    from ..engine import Engine

Box = tuple[int, int, int, int]


def smooth_track(boxes: Sequence[Sequence[float] | None], window: int, size: tuple[int, int]) -> list[Box | None]:
    """Boxes with frames the detector missed filled in from their neighbours, and centre and size averaged over
    ``window`` frames (a centred moving average), clipped to the frame. All missing: all None."""
    from scipy.ndimage import uniform_filter1d

    found = [i for i, b in enumerate(boxes) if b is not None]
    if not found:
        return [None] * len(boxes)
    frames = np.arange(len(boxes))
    known = np.array([boxes[i] for i in found], dtype=np.float64)
    cx, cy = (known[:, 0] + known[:, 2]) / 2, (known[:, 1] + known[:, 3]) / 2
    side = np.maximum(known[:, 2] - known[:, 0], known[:, 3] - known[:, 1])
    track = np.stack([np.interp(frames, found, v) for v in (cx, cy, side)], axis=1)
    track = uniform_filter1d(track, size=max(1, window), axis=0, mode="nearest")
    smoothed: list[Box | None] = []
    for x, y, s in track:
        half = s / 2
        x0, y0 = int(round(max(0, x - half))), int(round(max(0, y - half)))
        x1, y1 = int(round(min(size[0], x + half))), int(round(min(size[1], y + half)))
        smoothed.append((x0, y0, max(x1, x0 + 1), max(y1, y0 + 1)))
    return smoothed


def track_jitter(boxes: Sequence[Sequence[float] | None]) -> float:
    """Mean frame-to-frame movement of the box centre in pixels (0 for a still track)."""
    centres = np.array([((b[0] + b[2]) / 2, (b[1] + b[3]) / 2) for b in boxes if b is not None], dtype=np.float64)
    return float(np.linalg.norm(np.diff(centres, axis=0), axis=1).mean()) if len(centres) > 1 else 0.0


@dataclass
class ClipFaceResult:
    frames: list[Image.Image]
    detected: list[Box | None]  # per frame, before smoothing (the user's box on every frame when given)
    track: list[Box | None]  # per frame, smoothed: where each frame was refined
    seams: list[float | None]
    status: str  # "refined" or "skipped"
    prompt: str
    seconds: float
    metrics_with: dict[str, float] | None = None  # the clip's temporal metrics (flicker, warping) with the pass
    metrics_without: dict[str, float] | None = None  # and of the same clip without it
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"status": self.status, "prompt": self.prompt,
                "detected": [None if b is None else list(b) for b in self.detected],
                "track": [None if b is None else list(b) for b in self.track],
                "jitter_px": {"detected": round(track_jitter(self.detected), 3),
                              "track": round(track_jitter(self.track), 3)},
                "seam_ratio": self.seams, "metrics_with": self.metrics_with, "metrics_without": self.metrics_without,
                "seconds": round(self.seconds, 4), "notes": list(self.notes)}


def refine_clip_faces(frames: Sequence[Image.Image], settings: StaticSettings, engine: Engine, *, window: int,
                      prompt: str | None = None, negative_prompt: str | None = None,
                      units: Sequence[ControlUnit] = (), control_frames: Mapping[str, Sequence[Image.Image]] | None = None,
                      on_step: ProgressCallback | None = None, cancel: CancelToken | None = None) -> ClipFaceResult:
    """Refine one tracked face on every frame (``settings``: a clip's ``face_settings()``)."""
    from .face_detail import default_face_prompt, find_faces, refine_faces

    start = time.perf_counter()
    frames = [f.convert("RGB") for f in frames]
    size = frames[0].size
    detected: list[Box | None] = []
    notes: list[str] = []
    for frame in frames:
        faces, found_notes = find_faces(frame, settings)
        for note in found_notes:
            if note not in notes:
                notes.append(note)
        faces = [f for f in faces if f.origin == "user"
                 or min(f.box[2] - f.box[0], f.box[3] - f.box[1]) >= settings.face_min_size]
        detected.append(faces[0].box if faces else None)
    track = smooth_track(detected, window, size)
    face_prompt = settings.face_prompt or default_face_prompt(prompt if prompt is not None else settings.prompt)
    if all(b is None for b in track):
        notes.append("face detail skipped: no face found in any frame")
        return ClipFaceResult(list(frames), detected, track, [None] * len(frames), "skipped", face_prompt,
                              time.perf_counter() - start, notes=notes)
    out, seams = [], []
    t = time.perf_counter()
    for index, (frame, box) in enumerate(zip(frames, track)):
        emit(on_step, "face", index, len(frames), t)
        maps = {kind: maps[index] for kind, maps in (control_frames or {}).items()}
        done = refine_faces(frame, settings.replace(face_boxes=(box,)), engine, prompt=prompt,
                            negative_prompt=negative_prompt, units=units, control_maps=maps, cancel=cancel)
        out.append(done.image)
        seams.append(done.faces[0].seam.get("seam_ratio"))
    emit(on_step, "face", len(frames), len(frames), t)
    return ClipFaceResult(out, detected, track, seams, "refined", face_prompt, time.perf_counter() - start,
                          notes=notes)
