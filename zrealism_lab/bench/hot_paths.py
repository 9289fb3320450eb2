"""The evaluation engine's speed, and the lab's hot paths: per-step callbacks, latent previews and what importing
the package and the CLI pulls in."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np

from .measure import interleaved, time_calls
from .overhead import source_image
from .table import Row, failed_row, row

HEAVY_MODULES = ("torch", "diffusers", "transformers", "cv2", "skimage", "scipy", "controlnet_aux", "matplotlib",
                 "ipywidgets")


def metrics_rows(repeats: int) -> list[Row]:
    """The evaluation engine on a 1024x1024 pair and a 16-frame 512x512 clip (targets: 0.3 s and 3 s)."""
    from PIL import Image, ImageFilter

    from ..metrics import evaluate_clip, evaluate_pair

    section = "metrics"
    source = source_image(1024).convert("RGB")
    rng = np.random.default_rng(0)
    blurred = np.asarray(source.filter(ImageFilter.GaussianBlur(1.5)), dtype=np.int16)
    output = Image.fromarray(np.clip(blurred + rng.integers(-12, 13, blurred.shape), 0, 255).astype(np.uint8))
    mask = np.zeros((1024, 1024), bool)
    mask[128:-128, 170:-170] = True
    rows = []
    try:
        pair = interleaved({"pair": lambda: evaluate_pair(source, output, mask=mask)}, repeats)["pair"]
        rows.append(row(section, "evaluate_pair 1024x1024 (with mask)", pair.median, "s", "<= 0.3", pair.text()))
    except Exception as exc:  # noqa: BLE001 - one failed section must not lose the others
        rows.append(failed_row(section, "evaluate_pair 1024x1024", exc))
    base = np.asarray(source_image(640).convert("RGB"))
    clip = np.stack([np.clip(base[8 + t: 520 + t, 8 + 2 * t: 520 + 2 * t].astype(np.int16)
                             + rng.integers(-6, 7, (512, 512, 3)), 0, 255).astype(np.uint8) for t in range(16)])
    try:
        clip_s = interleaved({"clip": lambda: evaluate_clip(clip)}, max(2, repeats // 2))["clip"]
        rows.append(row(section, "evaluate_clip 16 x 512x512", clip_s.median, "s", "<= 3", clip_s.text()))
    except Exception as exc:  # noqa: BLE001 - one failed section must not lose the others
        rows.append(failed_row(section, "evaluate_clip 16 x 512x512", exc))
    return rows


def hot_path_rows() -> list[Row]:
    """Per-step callback cost, latent previews, and what importing the package and the CLI pulls in."""
    import torch

    from ..progress import StepEvent, StepReporter, latent_preview

    section = "hot paths"
    rows = []
    still = torch.randn(1, 4, 64, 64)
    video = torch.randn(1, 4, 16, 64, 64)
    preview = time_calls(lambda: latent_preview(still), 200)
    rows.append(row(section, "latent_preview, 64x64 latent (512 px image)", preview.median * 1e3, "ms", "< 1",
                    preview.text("s")))
    preview_video = time_calls(lambda: latent_preview(video), 100)
    rows.append(row(section, "latent_preview, 16-frame 64x64 video latent", preview_video.median * 1e3, "ms", "< 1",
                    preview_video.text("s")))
    events: list[StepEvent] = []
    reporter = StepReporter(10 ** 9, events.append, None, preview_every=0)
    kwargs = {"latents": still}
    call = time_calls(lambda: reporter(None, 0, 999, kwargs), 2000)
    rows.append(row(section, "StepReporter per step (event, no preview)", call.median * 1e6, "us", "<= 100",
                    call.text("s")))
    events.clear()
    reporter = StepReporter(10 ** 9, events.append, None, preview_every=5)
    call = time_calls(lambda: reporter(None, 3, 999, kwargs), 500)  # step 4 of every 5: no preview drawn
    rows.append(row(section, "StepReporter per step, preview every 5 (average)", call.median * 1e6, "us", "<= 300",
                    call.text("s")))
    for what, code in (("import zrealism_lab", "import zrealism_lab"),
                       ("zrealism CLI parser (all subcommands)",
                        "from zrealism_lab.cli import build_parser; build_parser()")):
        try:
            seconds, heavy = _import_probe(code)
            rows.append(row(section, f"{what}: heavy modules imported", len(heavy), "", "== 0",
                            ", ".join(heavy) or "none"))
            rows.append(row(section, f"{what}: seconds in a fresh interpreter", seconds, "s"))
        except Exception as exc:  # noqa: BLE001 - one failed section must not lose the others
            rows.append(failed_row(section, what, exc))
    return rows


def _import_probe(code: str) -> tuple[float, list[str]]:
    """Seconds ``code`` takes in a fresh interpreter, and which heavy modules it left imported."""
    script = ("import sys, time, json\nstart = time.perf_counter()\n" + code + "\n"
              "print(json.dumps([time.perf_counter() - start, sorted(m for m in " + repr(HEAVY_MODULES)
              + " if m in sys.modules)]))")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=300)
    seconds, heavy = json.loads(proc.stdout.strip().splitlines()[-1])
    return float(seconds), list(heavy)
