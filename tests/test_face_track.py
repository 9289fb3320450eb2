"""Face detail for clips: one face tracked through the frames, its box smoothed, each frame refined at its box with
the same seed; the clip keeps its frames, and the record holds the track and the metrics with and without."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from zrealism_lab.errors import SettingsError
from zrealism_lab.generate.face_track import refine_clip_faces, smooth_track, track_jitter
from zrealism_lab.settings import TemporalSettings

FAST = TemporalSettings(frames=8, size=64, steps=2, detect_resolution=64)
FACE = FAST.replace(face_detail=True, face_size=64, face_strength=0.5)


def test_the_track_is_smoother_than_the_detections_and_fills_missed_frames():
    rng = np.random.default_rng(1)
    boxes = []
    for i in range(12):
        x, y = 30 + i + rng.normal(0, 3), 20 + rng.normal(0, 3)
        boxes.append(None if i in (4, 5) else (x, y, x + 20, y + 20))
    track = smooth_track(boxes, 5, (96, 96))
    assert len(track) == 12 and all(b is not None for b in track)
    assert track_jitter(track) < track_jitter(boxes) / 2
    assert all(0 <= b[0] < b[2] <= 96 and 0 <= b[1] < b[3] <= 96 for b in track)
    assert smooth_track([None, None], 5, (64, 64)) == [None, None]


def test_every_frame_is_refined_at_its_box_with_the_same_seed(tiny_engine):
    from skimage import data

    face = Image.fromarray(data.astronaut()).resize((128, 128), Image.LANCZOS)
    frames = [face] * 3  # the same frame thrice: the same seed must give the same refined frame
    settings = FACE.replace(face_boxes=((40, 16, 72, 48),)).face_settings()
    result = refine_clip_faces(frames, settings, tiny_engine, window=3)
    assert result.status == "refined" and len(result.frames) == 3
    assert result.track == [(40, 16, 72, 48)] * 3
    assert all(np.array_equal(np.asarray(result.frames[0]), np.asarray(f)) for f in result.frames[1:])
    assert not np.array_equal(np.asarray(result.frames[0]), np.asarray(face))


def test_a_clip_with_a_face_box_keeps_its_frames_and_records_the_pass(tiny_engine, tmp_path):
    from zrealism_lab.generate.temporal import run_temporal
    from zrealism_lab.source.samples import sample_path

    settings = FACE.replace(face_boxes=((16, 8, 48, 40),))
    result = run_temporal(sample_path("light"), settings, engine=tiny_engine, out_dir=tmp_path)
    assert len(result.frames) == 8 and result.faces.status == "refined"
    passes = result.record["passes"]["face_detail"]
    assert passes["track"] == [[16, 8, 48, 40]] * 8 and passes["jitter_px"]["track"] == 0.0
    assert {"flicker", "warp_error"} & set(passes["metrics_with"]) and passes["metrics_without"].keys() == \
        passes["metrics_with"].keys()


def test_a_clip_without_a_face_is_skipped_and_recorded(tiny_engine):
    from zrealism_lab.generate.temporal import run_temporal
    from zrealism_lab.source.samples import sample_path

    result = run_temporal(sample_path("light"), FACE, engine=tiny_engine,
                          evaluate=False)
    assert result.faces.status == "skipped" and len(result.frames) == 8


@pytest.mark.parametrize("changes, name", [
    ({"face_boxes": ((0, 0, 10, 10), (10, 10, 20, 20))}, "face_boxes"),
    ({"face_boxes": ((0, 0, 100, 10),)}, "face_boxes"),  # outside the 64 px frames
    ({"face_strength": 0.1}, "face_strength"),  # 0.2 steps: nothing would run
    ({"face_smoothing": 0}, "face_smoothing"),
])
def test_bad_clip_face_settings_fail_before_a_run_folder(tiny_engine, changes, name, tmp_path):
    from zrealism_lab.generate.temporal import run_temporal
    from zrealism_lab.source.samples import sample_path

    with pytest.raises(SettingsError, match=f"'{name}'"):
        run_temporal(sample_path("light"), FACE.replace(**changes), engine=tiny_engine,
                     out_dir=tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_a_clip_run_with_the_face_pass_reruns_pixel_for_pixel(tiny_engine, tmp_path):
    from zrealism_lab.generate.rerun import rerun
    from zrealism_lab.generate.temporal import run_temporal
    from zrealism_lab.source.samples import sample_path

    settings = FACE.replace(face_boxes=((16, 8, 48, 40),), seed=5)
    first = run_temporal(sample_path("light"), settings, engine=tiny_engine, out_dir=tmp_path / "runs",
                         evaluate=False)
    again = rerun(first.run_dir, tmp_path / "again", engine=tiny_engine)
    assert again.identical, again.summary()


def test_temporal_cli_flags_reach_the_settings():
    from zrealism_lab.cli.main import build_parser
    from zrealism_lab.cli.run import temporal_settings_from_args

    args = build_parser().parse_args(["run", "temporal", "--image", "x.png", "--out", "o", "--face-smoothing", "3",
                                      "--face-strength", "0.5", "--face-box", "1,2,30,40"])
    settings = temporal_settings_from_args(args)
    assert settings.face_detail and settings.face_smoothing == 3 and settings.face_boxes == ((1, 2, 30, 40),)
