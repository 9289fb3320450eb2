"""Face detail for clips: each face tracked through the frames, its box smoothed, each frame refined at its boxes
with the same seed; the clip keeps its frames, and the record holds the tracks and the metrics with and without."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from zrealism_lab.errors import SettingsError
from zrealism_lab.generate.face_detail import feather_mask, square_crop
from zrealism_lab.generate.face_track import associate, refine_clip_faces, smooth_track, track_jitter
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
    assert len(result.tracks) == 1 and result.tracks[0].track == [(40, 16, 72, 48)] * 3
    assert all(np.array_equal(np.asarray(result.frames[0]), np.asarray(f)) for f in result.frames[1:])
    assert not np.array_equal(np.asarray(result.frames[0]), np.asarray(face))


def test_two_faces_are_followed_as_two_tracks_even_when_the_detector_swaps_their_order():
    rng = np.random.default_rng(2)
    detections = []
    for i in range(10):
        left = (10 + i + rng.normal(0, 2), 20 + rng.normal(0, 2))
        right = (70 - i + rng.normal(0, 2), 24 + rng.normal(0, 2))
        faces = [(x, y, x + 16, y + 16) for x, y in (left, right)]
        detections.append([] if i == 3 else faces[::-1] if i % 2 else faces)  # frame 3: nothing found
    left, right = associate(detections, max_faces=4, seed_frames=3)
    assert left[3] is None and right[3] is None
    assert all(b[0] < 40 for b in left if b is not None) and all(b[0] > 40 for b in right if b is not None)
    for boxes in (left, right):
        track = smooth_track(boxes, 5, (128, 96))
        assert all(b is not None for b in track) and track_jitter(track) < track_jitter(boxes)
    assert len(associate(detections, max_faces=1, seed_frames=3)) == 1
    assert associate([[], []], max_faces=4, seed_frames=2) == []


def test_two_face_boxes_give_two_tracks_and_leave_every_pixel_outside_their_masks(tiny_engine):
    from skimage import data

    face = Image.fromarray(data.astronaut()).resize((128, 128), Image.LANCZOS)
    frames = [face, face.transpose(Image.FLIP_LEFT_RIGHT)]
    boxes = ((8, 8, 40, 40), (80, 60, 112, 92))
    settings = FACE.replace(face_boxes=boxes).face_settings()
    result = refine_clip_faces(frames, settings, tiny_engine, window=3)
    assert result.status == "refined" and [t.track for t in result.tracks] == [[b, b] for b in boxes]
    assert all(len(t.seams) == 2 and all(s is not None for s in t.seams) for t in result.tracks)
    inside = np.zeros((128, 128), dtype=bool)
    for box in boxes:
        x0, y0, x1, y1 = square_crop(box, (128, 128), settings.face_padding)
        inside[y0:y1, x0:x1] |= feather_mask((x1 - x0, y1 - y0), settings.face_feather) > 0
    for before, after in zip(frames, result.frames):
        before, after = np.asarray(before), np.asarray(after)
        assert np.array_equal(before[~inside], after[~inside])
        assert not np.array_equal(before[inside], after[inside])
    assert result.originals[0] is not result.frames[0]


def test_a_clip_with_a_face_box_keeps_its_frames_and_records_the_pass(tiny_engine, tmp_path):
    from zrealism_lab.generate.temporal import run_temporal
    from zrealism_lab.source.samples import sample_path

    settings = FACE.replace(face_boxes=((16, 8, 48, 40),))
    result = run_temporal(sample_path("light"), settings, engine=tiny_engine, out_dir=tmp_path)
    assert len(result.frames) == 8 and result.faces.status == "refined"
    passes = result.record["passes"]["face_detail"]
    assert passes["faces"] == 1 and passes["tracks"][0]["origin"] == "user"
    assert passes["tracks"][0]["track"] == [[16, 8, 48, 40]] * 8 and passes["tracks"][0]["jitter_px"]["track"] == 0.0
    assert {"flicker", "warp_error"} & set(passes["metrics_with"]) and passes["metrics_without"].keys() == \
        passes["metrics_with"].keys()


def test_a_clip_without_a_face_is_skipped_and_recorded(tiny_engine):
    from zrealism_lab.generate.temporal import run_temporal
    from zrealism_lab.source.samples import sample_path

    result = run_temporal(sample_path("light"), FACE, engine=tiny_engine,
                          evaluate=False)
    assert result.faces.status == "skipped" and len(result.frames) == 8


@pytest.mark.parametrize("changes, name", [
    ({"face_boxes": ((0, 0, 10, 10), (10, 10, 20, 20), (20, 20, 30, 30)), "face_max": 2}, "face_boxes"),
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
