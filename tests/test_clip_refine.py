"""Refinement passes of clips: the hires fix (the first-pass frames upscaled, then a second AnimateDiff
video-to-video pass at the new size with its own strength and the same seed), followed by the face pass at the new
size; recorded under passes.hires, rerun pixel for pixel, and shown by the temporal report."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from zrealism_lab.errors import SettingsError
from zrealism_lab.generate.clip_hires import clip_hires_size, hires_decode_chunk
from zrealism_lab.settings import MAX_CLIP_HIRES_SIDE, TemporalSettings

FAST = TemporalSettings(frames=8, size=64, steps=2, detect_resolution=64)
HIRES = FAST.replace(hires=2.0, hires_strength=0.5, hires_steps=4)


@pytest.fixture(scope="module")
def hires_run(tiny_engine, tmp_path_factory):
    """One clip with the hires pass and a face box in output pixels (outside the 64 px first pass)."""
    from zrealism_lab.generate.temporal import run_temporal
    from zrealism_lab.source.samples import sample_path

    settings = HIRES.replace(face_detail=True, face_boxes=((72, 8, 120, 56),), face_size=64, face_strength=0.5,
                             seed=3)
    out = tmp_path_factory.mktemp("clip-hires")
    return run_temporal(sample_path("light"), settings, engine=tiny_engine, out_dir=out / "runs"), out


def test_the_hires_pass_keeps_the_frames_and_doubles_their_size(hires_run):
    result, _ = hires_run
    assert len(result.frames) == len(result.raw_frames) == len(result.hires.first) == 8
    assert result.hires.first[0].size == (64, 64)
    assert result.size == result.raw_frames[0].size == (128, 128)
    assert all(maps[0].size == (128, 128) and len(maps) == 8 for maps in result.hires.control_frames.values())
    # the second pass changed the upscaled first pass, and the face pass ran after it, at the new size
    upscaled = result.hires.first[0].resize((128, 128), Image.LANCZOS)
    assert not np.array_equal(np.asarray(result.hires.frames[0]), np.asarray(upscaled))
    assert result.faces.status == "refined"
    assert np.array_equal(np.asarray(result.faces.originals[0]), np.asarray(result.hires.frames[0]))
    assert result.faces.tracks[0].track == [(72, 8, 120, 56)] * 8


def test_the_record_holds_the_hires_pass_and_the_first_pass_clip(hires_run):
    from zrealism_lab.records import read_record

    result, _ = hires_run
    record = read_record(result.run_dir)
    passes = record["passes"]["hires"]
    assert passes["first_size"] == [64, 64] and passes["size"] == [128, 128] and passes["frames"] == 8
    assert (passes["upscaler"], passes["strength"], passes["steps"], passes["denoise_steps"]) == ("lanczos", 0.5, 4, 2)
    assert passes["control_maps"] == "resize" and passes["free_init"] is False
    assert record["timings"]["hires"] > 0 and record["settings"]["hires"] == 2.0
    assert {"clip_first_pass.mp4", "clip.mp4", "frames/frame_0008.png"} <= set(record["outputs"])
    assert Image.open(result.run_dir / "frames" / "frame_0001.png").size == (128, 128)
    assert record["passes"]["face_detail"]["tracks"][0]["track"][0] == [72, 8, 120, 56]


def test_a_hires_clip_reruns_pixel_for_pixel(hires_run, tiny_engine):
    from zrealism_lab.generate.rerun import rerun

    result, out = hires_run
    again = rerun(result.run_dir, out / "again", engine=tiny_engine)
    assert again.identical, again.summary()


def test_strength_zero_keeps_the_upscaled_first_pass(tiny_engine):
    from zrealism_lab.generate.temporal import run_temporal
    from zrealism_lab.source.samples import sample_path

    result = run_temporal(sample_path("light"), FAST.replace(hires=2.0, hires_strength=0.0), engine=tiny_engine,
                          evaluate=False)
    assert result.hires.denoise_steps == 0 and len(result.raw_frames) == 8
    for raw, first in zip(result.raw_frames, result.hires.first):
        assert np.array_equal(np.asarray(raw), np.asarray(first.resize((128, 128), Image.LANCZOS)))


def test_detected_control_maps_come_at_the_new_size(tiny_engine):
    from zrealism_lab.generate.temporal import run_temporal
    from zrealism_lab.source.samples import sample_path

    result = run_temporal(sample_path("light"), HIRES.replace(hires=1.5, hires_control_maps="detect"),
                          engine=tiny_engine, evaluate=False)
    assert result.size == (96, 96) and result.hires.control_source == "detect"
    for kind, maps in result.hires.control_frames.items():
        assert len(maps) == 8 and maps[0].size == (96, 96)
        assert not np.array_equal(np.asarray(maps[0]),
                                  np.asarray(result.inputs.control_frames[kind][0].resize((96, 96), Image.BICUBIC)))


def test_the_hires_size_and_the_decode_chunk_follow_the_factor():
    assert clip_hires_size(FAST.replace(hires=1.5), (64, 48)) == (96, 72)
    assert hires_decode_chunk(8, (512, 512), (1024, 1024)) == 2
    assert hires_decode_chunk(1, (64, 64), (256, 256)) == 1


@pytest.mark.parametrize("changes, name", [
    ({"size": 512, "hires": 2.5}, "hires"),  # 1280 px frames: over the clip cap
    ({"hires": 0.5}, "hires"),
    ({"hires": 2.0, "hires_strength": 0.01}, "hires_strength"),  # 0.25 of a step: nothing would run
    ({"hires": 2.0, "hires_control_maps": "bicubic"}, "hires_control_maps"),
    ({"hires": 2.0, "hires_strength": 0.5, "face_detail": True, "face_strength": 0.5,
      "face_boxes": ((0, 0, 140, 10),)},
     "face_boxes"),  # outside the 128 px output frames
])
def test_bad_clip_hires_settings_fail_before_a_run_folder(tiny_engine, changes, name, tmp_path):
    from zrealism_lab.generate.temporal import run_temporal
    from zrealism_lab.source.samples import sample_path

    with pytest.raises(SettingsError, match=f"'{name}'") as info:
        run_temporal(sample_path("light"), FAST.replace(**changes), engine=tiny_engine, out_dir=tmp_path)
    assert list(tmp_path.iterdir()) == []
    if changes.get("hires") == 2.5:
        assert str(MAX_CLIP_HIRES_SIDE) in str(info.value)


def test_temporal_cli_takes_the_hires_flags():
    from zrealism_lab.cli.main import build_parser
    from zrealism_lab.cli.run import temporal_settings_from_args

    args = build_parser().parse_args(["run", "temporal", "--image", "x.png", "--out", "o", "--hires", "2.0",
                                      "--hires-strength", "0.3", "--hires-steps", "10", "--hires-control-maps",
                                      "detect", "--face-max", "2", "--face-box", "1,2,30,40", "--face-box",
                                      "50,2,80,40"])
    settings = temporal_settings_from_args(args)
    assert (settings.hires, settings.hires_strength, settings.hires_steps, settings.hires_control_maps) == \
        (2.0, 0.3, 10, "detect")
    assert settings.face_max == 2 and settings.face_boxes == ((1, 2, 30, 40), (50, 2, 80, 40))


@pytest.mark.slow
def test_the_temporal_report_shows_the_clip_passes(tmp_path, tiny_engine):
    from zrealism_lab.reports.execute import run_report

    result = run_report("temporal", {"sample": "light", "size": 64, "frames": 8, "steps": 2, "detect_resolution": 64,
                                     "hires": 2.0, "hires_strength": 0.5, "face_detail": True,
                                     "face_boxes": [[72, 8, 120, 56]], "face_size": 64, "face_strength": 0.5},
                        tmp_path, progress=False)
    html = result.html.read_text(encoding="utf-8")
    for text in ("Hires fix", "first pass, frame 1", "after the hires pass, frame 1", "Face tracks",
                 "face 1 before", "face 1 after", "with the face pass", "without"):
        assert text in html, text
    assert (result.run_dir / "clip_first_pass.mp4").is_file()


def test_the_refinement_bench_row_reads_its_child_result():
    from zrealism_lab.bench.child import CHILD_TASKS
    from zrealism_lab.bench.refine import face_boxes, refine_settings, rows_from
    from zrealism_lab.cli.main import build_parser

    assert "refine" in CHILD_TASKS and build_parser().parse_args(["bench", "--only", "refine"]).only == "refine"
    settings = refine_settings().validated()
    assert (settings.size, settings.hires, settings.face_size) == (512, 2.0, 512) and len(face_boxes(1024)) == 2
    gib = 1024 ** 3
    point = {"peak": 12 * gib, "rss_loaded": 8 * gib, "seconds": 300.0, "cpu_seconds": 590.0, "size": [1024, 1024],
             "timings": {"generate": 20.0, "hires": 200.0, "face_detail": 60.0},
             "steps": {"denoise": [15.0], "hires": [120.0], "face": [25.0, 26.0]}, "faces": 2,
             "hires": {"first_size": [512, 512], "denoise_steps": 1, "vae_tiling": True, "control_maps": "detect"},
             "decode": {"tiled": {"seconds": 30.0}}}
    rows = {r.what: r for r in rows_from(point)}
    peak = next(r for what, r in rows.items() if what.startswith("peak RSS"))
    assert peak.value == 12 and "the passes add 4.00 GiB" in peak.note and "590 s of CPU" in peak.note
    assert next(r for w, r in rows.items() if w.startswith("face pass per face")).value == 30.0
    assert next(r for w, r in rows.items() if "seconds per denoising step" in w).value == 120.0
