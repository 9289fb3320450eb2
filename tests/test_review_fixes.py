"""Regression tests for review findings: names from files never leave their folder, bad inputs leave no run folder,
pixel and memory caps on every way pictures come in, pickle stays opt-in, and engine / offload correctness."""
from __future__ import annotations

import argparse
import json
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from zrealism_lab.errors import IntakeError, MissingWeightsError, SettingsError, UnsafeCheckpointError

torch = pytest.importorskip("torch")


def _frames_folder(folder: Path, count: int, side: int = 64) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        Image.new("RGB", (side, side), (10 * index, 120, 200)).save(folder / f"frame_{index}.png")
    return folder


def _png_header_only(path: Path, width: int, height: int) -> Path:
    """A PNG whose header declares width x height but holds no pixel data: only a header check can refuse it."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b""))
    return path


# ----------------------------------------------------------------- names read back from record.json


@pytest.mark.parametrize("name", ["../outside.png", "/etc/passwd", "a/../../outside.png", "frames\\..\\x.png",
                                  "C:outside.png", "bad\x00.png", "", "./output.png"])
def test_record_output_names_that_leave_the_run_folder_are_refused(tmp_path, name):
    from zrealism_lab.records import RECORD_NAME, RunWriter, sha256_file, verify_outputs
    from zrealism_lab.generate.rerun import compare_outputs

    run = tmp_path / "run"
    run.mkdir()
    secret = tmp_path / "outside.png"
    Image.new("RGB", (4, 4)).save(secret)
    record = {"outputs": {name: sha256_file(secret)}}
    (run / RECORD_NAME).write_text(json.dumps(record))
    with pytest.raises(IntakeError, match="not a plain file name"):
        verify_outputs(run)
    with pytest.raises(IntakeError, match="not a plain file name"):
        compare_outputs(run, run, record)
    writer = RunWriter(run, "static")
    with pytest.raises(IntakeError):
        writer.save_file(name, b"data")
    assert writer.outputs == {} and secret.read_bytes()[:4] == b"\x89PNG"


def test_plain_output_names_in_subfolders_still_verify(tmp_path):
    from zrealism_lab.records import RunWriter, verify_outputs

    writer = RunWriter(tmp_path, "temporal")
    writer.save_png("frames/frame_0001.png", Image.new("RGB", (4, 4)))
    assert verify_outputs(tmp_path, {"outputs": writer.outputs}) == {"frames/frame_0001.png": "ok"}


# ----------------------------------------------------------------- bad inputs leave no run folder


def test_a_damaged_clip_fails_before_a_temporal_run_folder_exists(tiny_engine, tmp_path):
    from zrealism_lab.generate.temporal import TemporalSettings, run_temporal

    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00\x00\x00\x18ftypisom" + b"\x13" * 300)
    runs = tmp_path / "runs"
    with pytest.raises(IntakeError, match="cannot be decoded"):
        run_temporal(clip=broken, settings=TemporalSettings(frames=8, size=64, steps=2), engine=tiny_engine,
                     out_dir=runs)
    assert not runs.exists() or list(runs.iterdir()) == []


def test_an_unknown_profile_fails_before_a_run_folder_exists(tiny_engine, sample_64, small_settings, tmp_path):
    from zrealism_lab.generate.static import run_static
    from zrealism_lab.generate.temporal import TemporalSettings, run_temporal

    runs = tmp_path / "runs"
    with pytest.raises(SettingsError, match="profile"):
        run_static(sample_64, small_settings.replace(profile="no such character zz"), engine=tiny_engine,
                   out_dir=runs)
    with pytest.raises(SettingsError, match="profile"):
        run_temporal(sample_64, TemporalSettings(frames=8, size=64, steps=2, profile="no such character zz"),
                     engine=tiny_engine, out_dir=runs)
    assert not runs.exists() or list(runs.iterdir()) == []


def test_free_init_passes_of_zero_steps_are_refused():
    from zrealism_lab.generate.temporal import TemporalSettings, denoise_steps

    assert denoise_steps(10, 0.5, 3) == [2, 1, 0]  # the last pass would decode re-noised latents
    with pytest.raises(SettingsError, match="FreeInit"):
        TemporalSettings(free_init=True, free_init_iters=3, steps=10, strength=0.5).validated()
    assert TemporalSettings(free_init=True, free_init_iters=3).validated()  # the defaults run 9, 5, 3 steps


# ----------------------------------------------------------------- rerun reads records defensively


@pytest.fixture(scope="module")
def static_record(tiny_engine, sample_64, tmp_path_factory):
    from zrealism_lab.settings import StaticSettings
    from zrealism_lab.generate.static import run_static

    settings = StaticSettings(size=64, steps=2, strength=0.5, detect_resolution=64)
    return run_static(sample_64, settings, engine=tiny_engine, out_dir=tmp_path_factory.mktemp("runs")).run_dir


def _edited_copy(run_dir: Path, tmp_path: Path, edit) -> Path:
    copy = tmp_path / "copy"
    copy.mkdir()
    record = json.loads((run_dir / "record.json").read_text())
    edit(record)
    (copy / "record.json").write_text(json.dumps(record))
    return copy


def test_a_record_cannot_opt_a_rerun_into_pickle_loading(static_record, tmp_path):
    from zrealism_lab.generate.rerun import plan_rerun

    def opt_in(record):
        record["units"][0]["params"] = {"allow_pickle": True}

    plan = plan_rerun(_edited_copy(static_record, tmp_path, opt_in))
    assert all("allow_pickle" not in unit.params for unit in plan.settings.controls)
    assert any("ZREALISM_ALLOW_PICKLE_ANNOTATORS" in note for note in plan.notes)


def test_a_record_without_models_is_a_clear_error(static_record, tmp_path):
    from zrealism_lab.generate.rerun import plan_rerun

    with pytest.raises(IntakeError, match="models"):
        plan_rerun(_edited_copy(static_record, tmp_path, lambda record: record.pop("models")))


# ----------------------------------------------------------------- pixel and memory caps


def test_clip_frames_obey_the_intake_pixel_cap(tmp_path, monkeypatch):
    from zrealism_lab.source.video import read_clip

    frames = _frames_folder(tmp_path / "frames", 2)
    Image.open(frames / "frame_0.png").save(tmp_path / "clip.gif", save_all=True,
                                            append_images=[Image.open(frames / "frame_1.png")])
    monkeypatch.setenv("ZREALISM_MAX_PIXELS", "1000")
    for clip in (frames, tmp_path / "clip.gif"):
        with pytest.raises(IntakeError, match="pixel cap"):
            read_clip(clip)


def test_a_clip_file_declaring_a_huge_frame_is_refused_from_its_header(tmp_path):
    from zrealism_lab.source.video import read_clip

    with pytest.raises(IntakeError, match="too large|pixel cap"):
        read_clip(_png_header_only(tmp_path / "huge.png", 20000, 20000))


def test_reading_a_clip_stops_at_the_memory_budget(tmp_path, monkeypatch):
    import zrealism_lab.source.video as video

    monkeypatch.setattr(video, "MAX_CLIP_PIXELS", 3 * 64 * 64)
    clip = video.read_clip(_frames_folder(tmp_path / "frames", 6))
    assert len(clip) == 3 and any("stopped reading" in note for note in clip.notes)


def _metrics(argv: list[str]) -> int:
    from zrealism_lab.cli.metrics import add_parser

    parser = argparse.ArgumentParser(prog="zrealism")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["metrics", *argv])
    return args.func(args)


def test_metrics_cli_inputs_obey_the_pixel_cap_and_the_clip_budget(tmp_path, monkeypatch, capsys):
    import zrealism_lab.source.video as video

    frames = _frames_folder(tmp_path / "frames", 4)
    pair = [str(frames / "frame_0.png"), str(frames / "frame_1.png")]
    monkeypatch.setattr(video, "MAX_CLIP_PIXELS", 2 * 64 * 64)
    assert _metrics(["--clip", str(frames)]) == 2
    assert "too long" in capsys.readouterr().err
    monkeypatch.setenv("ZREALISM_MAX_PIXELS", "1000")
    assert _metrics(pair) == 2
    assert "pixel cap" in capsys.readouterr().err
    assert _metrics([pair[0], pair[0], "--mask", pair[1]]) == 2


def test_lab_refuses_oversized_uploads_before_decoding(tmp_path, monkeypatch):
    import zrealism_lab.lab.app as app
    import zrealism_lab.lab.source_panel as source_panel

    monkeypatch.setenv("ZREALISM_CACHE", str(tmp_path / "cache"))
    lab = app.Lab(preset="tiny", out_dir=None, source="dark")
    monkeypatch.setattr(source_panel, "MAX_UPLOAD_BYTES", 1000)
    big = tmp_path / "big.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), np.uint8)).save(big)
    assert big.stat().st_size > 1000
    lab.set_source(big)
    assert "upload limit" in lab.source_message.value and lab.source_label == "sample dark"
    lab.set_source(big.read_bytes())
    assert "upload limit" in lab.source_message.value and lab.source_label == "sample dark"


def test_report_kind_cannot_carry_a_path(tmp_path):
    from zrealism_lab.reports.execute import run_report

    notebook = tmp_path / "any.ipynb"
    notebook.write_text("{}")
    with pytest.raises(SettingsError, match="report"):
        run_report("../escape", {}, tmp_path / "out", notebook=notebook)
    assert not (tmp_path / "out").exists()


# ----------------------------------------------------------------- engine and loading


def test_auto_device_and_the_device_it_resolves_to_share_one_engine(tiny_engine):
    import dataclasses

    from zrealism_lab.device import resolve_device
    from zrealism_lab.engine.engine import get_engine
    from zrealism_lab.settings import ControlUnit

    assert get_engine(tiny_engine.models, device="auto") is get_engine(tiny_engine.models,
                                                                      device=resolve_device("auto"))
    other_units = dataclasses.replace(tiny_engine.models, default_controls=(ControlUnit("canny"),))
    assert get_engine(other_units, device="cpu").models.default_controls == (ControlUnit("canny"),)


def test_scheduler_config_comes_from_the_cache_first_then_the_hub(monkeypatch):
    from diffusers import DDIMScheduler

    from zrealism_lab.engine.engine import Engine

    calls = []

    def fake_load_config(location, local_files_only=False, **kwargs):
        calls.append(local_files_only)
        if local_files_only:
            raise OSError("not in the local cache")
        return {"num_train_timesteps": 1000}

    monkeypatch.setattr(DDIMScheduler, "load_config", staticmethod(fake_load_config))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    assert Engine("realistic-vision", device="cpu").scheduler_config() == {"num_train_timesteps": 1000}
    assert calls == [True, False]
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    calls.clear()
    with pytest.raises(MissingWeightsError):
        Engine("realistic-vision", device="cpu").scheduler_config()
    assert calls == [True]


def test_single_file_base_checkpoints_refuse_every_pickle_suffix(tmp_path, tiny_engine):
    from zrealism_lab.engine.engine import Engine

    for suffix in (".pkl", ".ckpt"):
        checkpoint = tmp_path / f"model{suffix}"
        checkpoint.write_bytes(b"not loaded")
        engine = Engine(tiny_engine.models.with_component("base", str(checkpoint)), device="cpu")
        with pytest.raises(UnsafeCheckpointError, match="allow_pickle"):
            engine.component("unet")


def test_sequential_offload_shares_modules_between_static_and_temporal_pipelines(tiny_engine, sample_64):
    """Offloading a shared module twice used to lose its weights (meta tensors) and fail building the temporal
    pipeline; each module is now offloaded once, and the pictures equal the ones without offload."""
    from zrealism_lab.engine.engine import Engine
    from zrealism_lab.settings import StaticSettings
    from zrealism_lab.generate.static import run_static
    from zrealism_lab.generate.temporal import TemporalSettings, run_temporal

    still = StaticSettings(size=64, steps=2, strength=0.5, detect_resolution=64)
    clip = TemporalSettings(frames=8, size=64, steps=2, detect_resolution=64)
    offloaded = Engine(tiny_engine.models, device="cpu", offload="sequential")
    first = run_static(sample_64, still, engine=offloaded, evaluate=False)
    moving = run_temporal(sample_64, clip, engine=offloaded, evaluate=False)
    again = run_static(sample_64, still, engine=offloaded, evaluate=False)
    expected_still = run_static(sample_64, still, engine=tiny_engine, evaluate=False).raw
    expected_clip = run_temporal(sample_64, clip, engine=tiny_engine, evaluate=False).raw_frames
    assert np.array_equal(np.asarray(first.raw), np.asarray(expected_still))
    assert np.array_equal(np.asarray(again.raw), np.asarray(expected_still))
    assert all(np.array_equal(np.asarray(a), np.asarray(b)) for a, b in zip(moving.raw_frames, expected_clip))
