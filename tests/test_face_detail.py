"""Face detail: faces found on the output (or given as boxes) are regenerated and pasted back through a feathered
mask; nothing outside the mask changes, the seam is measured, and a run with no face records the pass as skipped."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from zrealism_lab.errors import SettingsError
from zrealism_lab.generate import face_detail
from zrealism_lab.generate.face_detail import SEAM_BAR, blend, feather_mask, refine_faces, seam_metrics
from zrealism_lab.generate.static import run_static
from zrealism_lab.records import read_record
from zrealism_lab.settings import StaticSettings


@pytest.fixture(scope="module")
def astronaut() -> Image.Image:
    """A real face for MediaPipe, standing in for a run's output (the tiny bundle's outputs are noise)."""
    from skimage import data

    return Image.fromarray(data.astronaut()).resize((128, 128), Image.LANCZOS)


@pytest.fixture()
def face_settings() -> StaticSettings:
    return StaticSettings(size=64, steps=4, face_detail=True, face_size=64, face_strength=0.5)


def full_mask(size: tuple[int, int], crop: tuple[int, int, int, int], feather: float) -> np.ndarray:
    mask = np.zeros((size[1], size[0]))
    mask[crop[1]:crop[3], crop[0]:crop[2]] = feather_mask((crop[2] - crop[0], crop[3] - crop[1]), feather)
    return mask


def test_a_detected_face_changes_pixels_only_inside_the_feathered_mask(tiny_engine, astronaut, face_settings):
    pytest.importorskip("mediapipe")
    result = refine_faces(astronaut, face_settings, tiny_engine)
    (face,) = result.faces
    assert result.status == "refined" and face.refined and face.origin == "detector" and face.score > 0.5
    mask = full_mask(astronaut.size, face.crop, face_settings.face_feather)
    before, after = np.asarray(astronaut), np.asarray(result.image)
    assert np.array_equal(before[mask == 0], after[mask == 0])
    assert (before[mask > 0.5] != after[mask > 0.5]).any()
    assert face.seam["seam_ratio"] < SEAM_BAR
    assert set(result.crops) == {"faces/face_1_before.png", "faces/face_1_after.png"}


def test_the_seam_metric_tells_a_feathered_paste_from_a_hard_one():
    from skimage import data

    # A textured crop and its regeneration: the same content, 30 levels brighter and a little noisier.
    rng = np.random.default_rng(0)
    texture = np.asarray(Image.fromarray(data.camera()).resize((64, 64), Image.LANCZOS).convert("RGB"), float)
    before = Image.fromarray(texture.astype(np.uint8))
    patch = Image.fromarray(np.clip(texture + 30 + rng.normal(0, 4, texture.shape), 0, 255).astype(np.uint8))
    soft = feather_mask((64, 64), 0.3)
    hard = (soft > 0).astype(float)
    soft_seam = seam_metrics(before, patch, blend(before, patch, soft), soft)["seam_ratio"]
    hard_seam = seam_metrics(before, patch, blend(before, patch, hard), hard)["seam_ratio"]
    assert soft_seam < SEAM_BAR < hard_seam


def test_a_user_box_works_without_any_detector(tiny_engine, astronaut, face_settings, monkeypatch):
    import zrealism_lab.control.faces as faces

    def no_detector(*args, **kwargs):
        raise AssertionError("the detector must not run when boxes are given")

    monkeypatch.setattr(faces, "detect_faces", no_detector)
    result = refine_faces(astronaut, face_settings.replace(face_boxes=((40, 16, 72, 48),)), tiny_engine)
    (face,) = result.faces
    assert face.origin == "user" and face.score is None and face.refined
    mask = full_mask(astronaut.size, face.crop, face_settings.face_feather)
    assert np.array_equal(np.asarray(astronaut)[mask == 0], np.asarray(result.image)[mask == 0])


def test_without_mediapipe_the_pass_is_skipped_with_a_note(tiny_engine, astronaut, face_settings, monkeypatch):
    import zrealism_lab.control.faces as faces
    from zrealism_lab.control.mediapipe_runtime import MissingDetectorPackageError

    def missing(*args, **kwargs):
        raise MissingDetectorPackageError("the mediapipe package is not installed")

    monkeypatch.setattr(faces, "detect_faces", missing)
    result = refine_faces(astronaut, face_settings, tiny_engine)
    assert result.status == "skipped" and result.image is not None
    assert any("no face detector" in note for note in result.notes)


def test_filters_leave_small_faces_and_record_why(tiny_engine, astronaut, face_settings):
    pytest.importorskip("mediapipe")
    result = refine_faces(astronaut, face_settings.replace(face_min_size=500), tiny_engine)
    assert result.status == "skipped" and result.faces and not result.faces[0].refined
    assert "face_min_size" in result.faces[0].reason
    assert np.array_equal(np.asarray(result.image), np.asarray(astronaut))


def test_no_face_found_is_skipped_and_recorded_not_an_error(tiny_engine, small_settings, sample_64, tmp_path):
    result = run_static(sample_64, small_settings.replace(face_detail=True, face_size=64), engine=tiny_engine,
                        out_dir=tmp_path)
    record = read_record(result.run_dir)
    assert record["status"] == "completed"
    assert record["passes"]["face_detail"]["status"] == "skipped" and record["passes"]["face_detail"]["faces"] == []
    assert any("face detail skipped" in w for w in record["warnings"])


def test_records_carry_both_passes_and_a_rerun_is_pixel_identical(tiny_engine, small_settings, sample_64,
                                                                   tmp_path):
    from zrealism_lab.generate.rerun import rerun

    settings = small_settings.replace(hires=1.5, hires_strength=0.5, face_detail=True, face_size=64,
                                      face_boxes=((20, 10, 60, 50),), seed=3)
    result = run_static(sample_64, settings, engine=tiny_engine, out_dir=tmp_path / "runs")
    record = read_record(result.run_dir)
    faces = record["passes"]["face_detail"]
    assert record["passes"]["hires"]["size"] == [96, 96] and faces["status"] == "refined"
    assert faces["faces"][0]["box"] == [20, 10, 60, 50] and faces["faces"][0]["origin"] == "user"
    assert faces["faces"][0]["seam"]["seam_ratio"] > 0
    assert {"faces/face_1_before.png", "faces/face_1_after.png"} <= set(record["outputs"])
    assert record["settings"]["face_boxes"] == [[20, 10, 60, 50]]
    again = rerun(result.run_dir, tmp_path / "again", engine=tiny_engine)
    assert again.identical, again.summary()


def test_a_box_outside_the_output_fails_before_any_model_loads(sample_64, tmp_path):
    from zrealism_lab.engine.engine import Engine
    from zrealism_lab.models.modelset import tiny_modelset

    engine = Engine(tiny_modelset(), device="cpu")  # a fresh engine: nothing loaded yet
    settings = StaticSettings(size=64, steps=4, face_detail=True, face_boxes=((10, 10, 100, 40),))
    with pytest.raises(SettingsError, match="inside the 64x64 output"):
        run_static(sample_64, settings, engine=engine, out_dir=tmp_path)
    assert engine.loaded_roles() == [] and list(tmp_path.iterdir()) == []
    # Inside once the hires pass makes the output larger.
    from zrealism_lab.generate.refine import check_refinements

    check_refinements(settings.replace(hires=2.0), (64, 64))


@pytest.mark.parametrize("boxes", [((10, 10, 5, 40),), ((-1, 0, 10, 10),), ((0, 0, 10),), ((0.5, 0, 10, 10),)])
def test_malformed_boxes_are_refused(boxes):
    with pytest.raises(SettingsError, match="face_boxes"):
        StaticSettings(face_detail=True, face_boxes=boxes).validated()


def test_the_mask_is_zero_outside_its_ellipse_and_one_at_its_centre():
    mask = feather_mask((32, 32), 0.2)
    assert mask[16, 16] == 1.0 and mask[0, 0] == 0.0 and mask.min() == 0.0
    assert face_detail.square_crop((0, 0, 10, 10), (64, 64), 0.5) == (0, 0, 20, 20)
    assert face_detail.square_crop((50, 50, 64, 64), (64, 64), 0.5) == (36, 36, 64, 64)
