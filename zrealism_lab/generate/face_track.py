"""Face detail for clips: each face tracked through the frames (the user's boxes, one per face, or the faces the
detector finds on the first frames, followed from frame to frame), each track's centre and size smoothed over a
few frames, then every frame's faces refined at their smoothed boxes with the same seed, so the crops and the noise
stay put from frame to frame and the faces do not flicker more."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np
from PIL import Image

from ..adapters.tags import split_lora_tags
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
class FaceTrack:
    """One face through the clip: where it was found on each frame and where each frame was refined."""

    origin: str  # "user" (a given box) or "detector"
    detected: list[Box | None]  # per frame, before smoothing (None: not found on that frame)
    track: list[Box | None]  # per frame, smoothed: where the frame was refined
    seams: list[float | None] = field(default_factory=list)  # seam ratio of each refined frame

    def to_dict(self) -> dict[str, Any]:
        return {"origin": self.origin, "detected": [None if b is None else list(b) for b in self.detected],
                "track": [None if b is None else list(b) for b in self.track],
                "found_frames": sum(b is not None for b in self.detected),
                "jitter_px": {"detected": round(track_jitter(self.detected), 3),
                              "track": round(track_jitter(self.track), 3)},
                "seam_ratio": list(self.seams)}


@dataclass
class ClipFaceResult:
    frames: list[Image.Image]  # every frame with its faces refined
    originals: list[Image.Image]  # the same frames before the pass
    tracks: list[FaceTrack]  # one per face, most confident first
    status: str  # "refined" or "skipped"
    prompt: str
    seconds: float
    metrics_with: dict[str, float] | None = None  # the clip's temporal metrics (flicker, warping) with the pass
    metrics_without: dict[str, float] | None = None  # and of the same clip without it
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"status": self.status, "prompt": self.prompt, "faces": len(self.tracks),
                "tracks": [t.to_dict() for t in self.tracks], "metrics_with": self.metrics_with,
                "metrics_without": self.metrics_without, "seconds": round(self.seconds, 4),
                "notes": list(self.notes)}


def _centre_side(box: Sequence[float]) -> tuple[float, float, float]:
    return (box[0] + box[2]) / 2, (box[1] + box[3]) / 2, max(box[2] - box[0], box[3] - box[1], 1)


def _match(last: Sequence[Sequence[float]], found: Sequence[Sequence[float]]) -> dict[int, int]:
    """Track index -> detection index, by least total centre distance (in face sizes); a pair further apart than
    one face size is no match."""
    from scipy.optimize import linear_sum_assignment

    if not last or not found:
        return {}
    cost = np.empty((len(last), len(found)))
    for i, a in enumerate(last):
        ax, ay, side = _centre_side(a)
        for j, b in enumerate(found):
            bx, by, _ = _centre_side(b)
            cost[i, j] = np.hypot(ax - bx, ay - by) / side
    rows, cols = linear_sum_assignment(cost)
    return {int(r): int(c) for r, c in zip(rows, cols) if cost[r, c] <= 1.0}


def associate(detections: Sequence[Sequence[Sequence[float]]], max_faces: int, seed_frames: int
              ) -> list[list[Box | None]]:
    """Per-frame detections (each frame's boxes, most confident first) -> one box list per face.

    The faces are those of the frame with the most faces among the first ``seed_frames`` (at most ``max_faces``);
    each is followed forwards and backwards from that frame by matching every frame's detections to the faces'
    last known boxes. Detections that match no face (a face that appears later) are left out."""
    count = len(detections)
    first = list(range(min(count, max(1, seed_frames))))
    if not first or not any(detections[i] for i in first):
        return []
    seed = max(first, key=lambda i: (min(len(detections[i]), max_faces), -i))
    seeds = [tuple(b) for b in detections[seed][:max_faces]]
    boxes: list[list[Box | None]] = [[None] * count for _ in seeds]
    for order in (range(seed, count), range(seed - 1, -1, -1)):
        last = list(seeds)
        for frame in order:
            for face, found in _match(last, detections[frame]).items():
                box = tuple(int(round(v)) for v in detections[frame][found])
                boxes[face][frame] = box  # type: ignore[assignment]
                last[face] = box
    return boxes


def refine_clip_faces(frames: Sequence[Image.Image], settings: StaticSettings, engine: Engine, *, window: int,
                      prompt: str | None = None, negative_prompt: str | None = None,
                      units: Sequence[ControlUnit] = (), control_frames: Mapping[str, Sequence[Image.Image]] | None = None,
                      on_step: ProgressCallback | None = None, cancel: CancelToken | None = None) -> ClipFaceResult:
    """Refine each tracked face on every frame (``settings``: a clip's ``face_settings()``; user boxes are the
    faces, else the detector's faces of the first ``window`` frames, at most ``face_max``)."""
    from .face_detail import default_face_prompt, find_faces, refine_faces

    start = time.perf_counter()
    frames = [f.convert("RGB") for f in frames]
    size = frames[0].size
    notes: list[str] = []
    if settings.face_boxes is not None:  # one track per given box, the same box on every frame
        boxes = [[tuple(b)] * len(frames) for b in settings.face_boxes]
        origin = "user"
    else:
        detections = []
        for frame in frames:
            faces, found_notes = find_faces(frame, settings)
            notes += [note for note in found_notes if note not in notes]
            detections.append([f.box for f in faces
                               if min(f.box[2] - f.box[0], f.box[3] - f.box[1]) >= settings.face_min_size])
        boxes, origin = associate(detections, settings.face_max, window), "detector"
    tracks = [FaceTrack(origin, list(b), smooth_track(b, window, size)) for b in boxes]  # type: ignore[arg-type]
    tracks = [t for t in tracks if any(b is not None for b in t.track)]
    face_prompt = settings.face_prompt or default_face_prompt(prompt if prompt is not None else split_lora_tags(settings.prompt)[0])
    if not tracks:
        notes.append("face detail skipped: no face found in any frame")
        return ClipFaceResult(list(frames), list(frames), [], "skipped", face_prompt, time.perf_counter() - start,
                              notes=notes)
    out = []
    t = time.perf_counter()
    for index, frame in enumerate(frames):
        emit(on_step, "face", index, len(frames), t)
        here = [track for track in tracks if track.track[index] is not None]
        maps = {kind: maps[index] for kind, maps in (control_frames or {}).items()}
        done = refine_faces(frame, settings.replace(face_boxes=tuple(tr.track[index] for tr in here),
                                                    face_max=len(here)),
                            engine, prompt=prompt, negative_prompt=negative_prompt, units=units, control_maps=maps,
                            cancel=cancel)
        out.append(done.image)
        for track in tracks:
            track.seams.append(None)
        for track, face in zip(here, done.faces):
            track.seams[-1] = face.seam.get("seam_ratio")
    emit(on_step, "face", len(frames), len(frames), t)
    return ClipFaceResult(out, list(frames), tracks, "refined", face_prompt, time.perf_counter() - start,
                          notes=notes)
