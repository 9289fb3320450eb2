"""The static engine end to end on the tiny bundle: real diffusers pipelines, 64 px, a few steps."""
from __future__ import annotations

import json

import numpy as np
import pytest

from zrealism_lab.settings import ControlUnit
from zrealism_lab.generate.static import run_static


def _pixels(image) -> np.ndarray:
    return np.asarray(image.convert("RGB"), dtype=np.int16)


def test_output_size_mode_and_result_parts(tiny_engine, small_settings, sample_64):
    result = run_static(sample_64, small_settings, engine=tiny_engine)
    assert result.status == "completed"
    assert result.image.mode == "RGB" and result.image.size == (64, 64)
    assert result.raw.size == (64, 64)
    assert set(result.control_images) == {"depth", "canny"}
    assert all(img.size == (64, 64) for img in result.control_images.values())
    assert result.context.analysis.kind == "transparent"
    assert result.metrics is not None and result.metrics.get("ssim_luma") is not None
    assert 0.0 <= result.metrics.value("canny_f1") <= 1.0  # adherence: canny re-detected on the output
    assert any("depth" in note for note in result.metrics.notes)  # the mask-made depth is not re-detected
    assert result.colour.delta_e_after <= result.colour.delta_e_before + 1e-6


def test_same_seed_same_pixels_different_seed_differs(tiny_engine, small_settings, sample_64):
    first = run_static(sample_64, small_settings.replace(seed=7), engine=tiny_engine, evaluate=False)
    again = run_static(sample_64, small_settings.replace(seed=7), engine=tiny_engine, evaluate=False)
    other = run_static(sample_64, small_settings.replace(seed=8), engine=tiny_engine, evaluate=False)
    assert np.array_equal(_pixels(first.raw), _pixels(again.raw))
    assert not np.array_equal(_pixels(first.raw), _pixels(other.raw))


def test_conditioning_scale_changes_output(tiny_engine, small_settings, sample_64):
    def run(scale: float):
        units = (ControlUnit("depth", scale, method="inflate"), ControlUnit("canny", scale))
        return run_static(sample_64, small_settings.replace(controls=units, colour_method="none"),
                          engine=tiny_engine, evaluate=False).raw

    assert not np.array_equal(_pixels(run(0.0)), _pixels(run(1.0)))


def test_no_control_units_runs_plain_img2img(tiny_engine, small_settings, sample_64):
    result = run_static(sample_64, small_settings.replace(controls=()), engine=tiny_engine, evaluate=False)
    assert result.control_images == {} and result.image.size == (64, 64)


def test_second_run_loads_nothing(tiny_engine, small_settings, sample_64):
    run_static(sample_64, small_settings, engine=tiny_engine, evaluate=False)
    loaded = dict(tiny_engine.load_seconds)
    pipelines = tiny_engine.pipelines()
    run_static(sample_64, small_settings.replace(seed=3), engine=tiny_engine, evaluate=False)
    assert tiny_engine.load_seconds == loaded
    assert tiny_engine.pipelines().keys() == pipelines.keys()


def test_progress_events_previews_and_cancel(tiny_engine, sample_64, small_settings):
    from zrealism_lab.errors import CancelledError
    from zrealism_lab.progress import CancelToken

    events = []
    run_static(sample_64, small_settings.replace(steps=8), engine=tiny_engine, evaluate=False,
               on_step=events.append, preview_every=2)
    denoise = [e for e in events if e.stage == "denoise"]
    assert [e.step for e in denoise] == [1, 2, 3, 4] and denoise[-1].total == 4
    assert denoise[-1].eta == 0 and any(e.preview is not None for e in denoise)

    token = CancelToken()

    def cancel_after_first(event):
        if event.stage == "denoise" and event.step == 1:
            token.cancel()

    with pytest.raises(CancelledError, match="after 1 of 4"):
        run_static(sample_64, small_settings.replace(steps=8), engine=tiny_engine, on_step=cancel_after_first,
                   cancel=token)


def test_run_folder_record_and_png_metadata(tiny_engine, small_settings, sample_64, tmp_path):
    from PIL import Image

    result = run_static(sample_64, small_settings, engine=tiny_engine, out_dir=tmp_path)
    folder = result.run_dir
    assert folder.parent == tmp_path
    record = json.loads((folder / "record.json").read_text())
    assert record["status"] == "completed" and record["kind"] == "static"
    assert record["settings"]["seed"] == small_settings.seed
    assert record["models"]["name"] == "tiny"
    assert "unet" in record["model_hashes"] and record["versions"]["diffusers"]
    for name in ("output.png", "control_depth.png", "control_canny.png"):
        assert name in record["outputs"] and (folder / name).exists()
    text = Image.open(folder / "output.png").text
    assert "Steps: 4" in text["parameters"] and json.loads(text["zrealism"])["settings"]["size"] == 64


def test_cancelled_run_leaves_cancelled_record_and_no_partial_files(tiny_engine, small_settings, sample_64, tmp_path):
    from zrealism_lab.errors import CancelledError
    from zrealism_lab.progress import CancelToken

    token = CancelToken()
    token.cancel()
    with pytest.raises(CancelledError):
        run_static(sample_64, small_settings, engine=tiny_engine, out_dir=tmp_path, cancel=token)
    (folder,) = tmp_path.iterdir()
    record = json.loads((folder / "record.json").read_text())
    assert record["status"] == "cancelled"
    assert not list(folder.glob("*.part")) and not (folder / "output.png").exists()


def test_tiny_preset_uses_weightless_detectors_when_a_unit_names_no_method(tiny_engine, small_settings, sample_64):
    units = (ControlUnit("depth", 0.5), ControlUnit("lineart_anime", 0.5))
    result = run_static(sample_64, small_settings.replace(controls=units), engine=tiny_engine, evaluate=False)
    methods = {kind: cmap.method for kind, cmap in result.context.control_maps.items()}
    assert methods == {"depth": "inflate", "lineart_anime": "edges"}
