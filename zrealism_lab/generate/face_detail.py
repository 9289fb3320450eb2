"""Face detail for stills (as ADetailer): find faces on the output (or take user boxes), regenerate each padded square
crop at ``face_size`` with its own prompt, strength and steps, and paste it back through a feathered elliptical
mask. Pixels outside the mask are never touched; the seam is measured on the blend band."""
from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np
from PIL import Image

from ..adapters.tags import split_lora_tags
from ..errors import CancelledError
from ..progress import CancelToken, ProgressCallback, StepReporter
from ..settings import FACE_WORDS, ControlUnit, StaticSettings, check_box
from .calls import control_arguments

if TYPE_CHECKING:
    from ..engine import Engine

# BlazeFace's full-range model: faces up to about 5 m away, as in full-body character art.
FACE_DETECTOR_MODEL = "full"
# A seam ratio above this means the blend band carries visibly more edge than the two images it mixes.
SEAM_BAR = 1.25


@dataclass
class FaceRegion:
    """One face: its box (output pixels), where it came from, the square crop regenerated and what happened."""

    box: tuple[int, int, int, int]
    score: float | None  # None for user boxes
    origin: str  # "detector" or "user"
    crop: tuple[int, int, int, int] | None = None
    refined: bool = False
    reason: str | None = None  # why it was left, when it was
    seam: dict[str, float] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)  # before/after crop names in the run folder

    def to_dict(self) -> dict[str, Any]:
        return {"box": list(self.box), "score": None if self.score is None else round(self.score, 4),
                "origin": self.origin, "crop": None if self.crop is None else list(self.crop),
                "refined": self.refined, "reason": self.reason, "seam": dict(self.seam), "files": dict(self.files)}


@dataclass
class FaceDetailResult:
    image: Image.Image  # the output with every refined face pasted back
    faces: list[FaceRegion]
    status: str  # "refined" or "skipped"
    prompt: str
    strength: float
    steps: int
    size: int
    crops: dict[str, Image.Image]  # run-folder name -> before/after crop
    seconds: float
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"status": self.status, "prompt": self.prompt, "strength": self.strength, "steps": self.steps,
                "size": self.size, "faces": [f.to_dict() for f in self.faces],
                "refined": sum(f.refined for f in self.faces), "seam_bar": SEAM_BAR,
                "seconds": round(self.seconds, 4), "notes": list(self.notes)}


def square_crop(box: Sequence[float], image_size: tuple[int, int], padding: float) -> tuple[int, int, int, int]:
    """A square around the box, ``padding`` x its long side added on each side, moved (not cut) to fit the image."""
    width, height = image_size
    x0, y0, x1, y1 = box
    side = int(round(max(x1 - x0, y1 - y0) * (1 + 2 * padding)))
    side = max(8, min(side, width, height))
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    left = int(round(min(max(cx - side / 2, 0), width - side)))
    top = int(round(min(max(cy - side / 2, 0), height - side)))
    return left, top, left + side, top + side


def feather_mask(size: tuple[int, int], feather: float) -> np.ndarray:
    """Float alpha (H, W) of the ellipse inscribed in the crop: 1 inside, a smoothstep over ``feather`` x the radius
    at its edge, exactly 0 outside (so the corners and everything beyond the crop stay as they were)."""
    width, height = size
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
    r = np.hypot((xs + 0.5 - width / 2) / (width / 2), (ys + 0.5 - height / 2) / (height / 2))
    t = np.clip((1.0 - r) / feather, 0.0, 1.0)
    return t * t * (3 - 2 * t)


def blend(before: Image.Image, after: Image.Image, alpha: np.ndarray) -> Image.Image:
    """before x (1 - alpha) + after x alpha, rounded; pixels with alpha 0 keep their exact values."""
    a = alpha[..., None]
    mixed = np.asarray(before, dtype=np.float64) * (1 - a) + np.asarray(after, dtype=np.float64) * a
    return Image.fromarray(np.clip(np.rint(mixed), 0, 255).astype(np.uint8))


def seam_metrics(before: Image.Image, patch: Image.Image, pasted: Image.Image, alpha: np.ndarray) -> dict[str, float]:
    """Gradient energy (Sobel) on the mask edge band of the pasted crop, against the same band of the two images it
    mixes (``seam_ratio``: about 1 for no seam, higher where the blend adds an edge) and of the un-pasted image
    alone (``seam_vs_before``)."""
    from scipy import ndimage
    from skimage.color import rgb2gray
    from skimage.filters import sobel

    def grad(image: Image.Image) -> np.ndarray:
        return sobel(rgb2gray(np.asarray(image.convert("RGB"))))

    # The transition and one pixel either side of it: a hard paste's step lands there too.
    band = ndimage.binary_dilation(alpha > 0) & ~ndimage.binary_erosion(alpha >= 1)
    if not band.any():
        return {"seam_ratio": 1.0, "seam_vs_before": 1.0}
    g_before, g_patch, g_pasted = grad(before), grad(patch), grad(pasted)
    expected = (1 - alpha) * g_before + alpha * g_patch
    eps = 1e-6
    return {"seam_ratio": round(float(g_pasted[band].mean() / (expected[band].mean() + eps)), 4),
            "seam_vs_before": round(float(g_pasted[band].mean() / (g_before[band].mean() + eps)), 4),
            "band_pixels": int(band.sum())}


def find_faces(image: Image.Image, settings: StaticSettings) -> tuple[list[FaceRegion], list[str]]:
    """The user's boxes, or the detector's faces (most confident first). Without MediaPipe: none, and a note."""
    if settings.face_boxes is not None:
        return [FaceRegion(check_box(b, image.size), None, "user") for b in settings.face_boxes], []
    from ..control.faces import detect_faces
    from ..control.mediapipe_runtime import MissingDetectorPackageError

    try:
        faces = detect_faces(image, min_confidence=settings.face_confidence, model=FACE_DETECTOR_MODEL)
    except MissingDetectorPackageError as exc:
        return [], [f"face detail skipped: no face detector ({str(exc).splitlines()[0]})"]
    regions = []
    for face in faces:
        x0, y0, x1, y1 = face.box
        box = (int(np.floor(x0)), int(np.floor(y0)), int(np.ceil(x1)), int(np.ceil(y1)))
        regions.append(FaceRegion(box, face.score, "detector"))
    return regions, []


def default_face_prompt(prompt: str) -> str:
    return f"{prompt}, {FACE_WORDS}" if prompt else FACE_WORDS


def refine_faces(image: Image.Image, settings: StaticSettings, engine: Engine, *, prompt: str | None = None,
                 negative_prompt: str | None = None, units: Sequence[ControlUnit] = (),
                 control_maps: Mapping[str, Image.Image] | None = None, on_step: ProgressCallback | None = None,
                 cancel: CancelToken | None = None) -> FaceDetailResult:
    """Regenerate each face of ``image`` (boxes in its pixels) and paste it back. ``control_maps`` (kind -> map at
    the image's size, one per unit) guide the crops; a run with no face found returns the image unchanged, status
    "skipped"."""
    import torch

    from ..prompts import prepare_prompts
    from ..schedulers import make_scheduler

    start = time.perf_counter()
    image = image.convert("RGB")
    base_prompt = prompt if prompt is not None else split_lora_tags(settings.prompt)[0]
    face_prompt = settings.face_prompt if settings.face_prompt is not None else default_face_prompt(base_prompt)
    steps = settings.face_steps or settings.steps
    faces, notes = find_faces(image, settings)
    kept = 0
    for face in faces:
        short = min(face.box[2] - face.box[0], face.box[3] - face.box[1])
        if face.origin == "detector" and short < settings.face_min_size:
            face.reason = f"smaller than face_min_size ({short} < {settings.face_min_size} px)"
        elif kept >= settings.face_max:
            face.reason = f"over face_max ({settings.face_max})"
        else:
            kept += 1
    todo = [f for f in faces if f.reason is None]
    crops: dict[str, Image.Image] = {}
    if not todo:
        notes.append("face detail skipped: " + ("no face found" if not faces else "no face passed the filters"))
        return FaceDetailResult(image, faces, "skipped", face_prompt, settings.face_strength, steps,
                                settings.face_size, crops, time.perf_counter() - start, notes)
    units = tuple(units)
    pipe = engine.static_pipeline(tuple(u.kind for u in units), safety_checker=settings.safety_checker)
    prompts = prepare_prompts(pipe, face_prompt, negative_prompt if negative_prompt is not None
                              else settings.negative_prompt)
    notes += prompts.warnings
    gen = (settings.face_size, settings.face_size)
    denoise = int(steps * settings.face_strength)
    out = image
    for index, face in enumerate(todo, start=1):
        face.crop = square_crop(face.box, image.size, settings.face_padding)
        before = out.crop(face.crop)
        pipe.scheduler = make_scheduler(settings.scheduler, engine.scheduler_config(), seed=settings.seed)
        reporter = StepReporter(denoise, on_step, cancel, 0, stage="face")
        call: dict[str, Any] = dict(image=before.resize(gen, Image.LANCZOS), strength=settings.face_strength,
                                    num_inference_steps=steps, guidance_scale=settings.cfg, output_type="pil",
                                    **prompts.pipeline_kwargs(), callback_on_step_end=reporter,
                                    callback_on_step_end_tensor_inputs=["latents"],
                                    generator=torch.Generator("cpu").manual_seed(settings.seed))
        if units:
            maps = control_maps or {}
            call.update(control_image=[maps[u.kind].crop(face.crop).resize(gen, Image.BICUBIC) for u in units],
                        **control_arguments(units), width=gen[0], height=gen[1])
        with engine.busy, warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=FutureWarning)
            regenerated = pipe(**call, **engine.adapters.call_kwargs()).images[0]
        if reporter.interrupted:
            raise CancelledError(f"cancelled after {reporter.done} of {denoise} steps of face {index}")
        patch = regenerated.resize(before.size, Image.LANCZOS)
        alpha = feather_mask(before.size, settings.face_feather)
        pasted = blend(before, patch, alpha)
        face.seam = seam_metrics(before, patch, pasted, alpha)
        out = out.copy()
        out.paste(pasted, face.crop[:2])
        face.refined = True
        face.files = {"before": f"faces/face_{index}_before.png", "after": f"faces/face_{index}_after.png"}
        crops[face.files["before"]], crops[face.files["after"]] = before, pasted
    return FaceDetailResult(out, faces, "refined", face_prompt, settings.face_strength, steps, settings.face_size,
                            crops, time.perf_counter() - start, notes)
