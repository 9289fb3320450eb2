"""controlnet-aux detectors loaded from a local folder of random-weight checkpoints of their real
architectures, through the same loading code (and pickle policy) as the official files."""
from __future__ import annotations

import os
import shutil

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from zrealism_lab.control import (
    ALLOW_PICKLE_ENV,
    BODY_KEYPOINT_NAMES,
    clear_annotator_cache,
    detect_control,
    load_annotator,
    pose_keypoints,
    resolve_empty_pose,
)
from zrealism_lab.control.annotators import cached_annotators, import_controlnet_aux
from zrealism_lab.control.testing import blank_openpose_body, write_random_annotator_checkpoints
from zrealism_lab.errors import UnsafeCheckpointError

SIZE = 64


def figure() -> tuple[Image.Image, np.ndarray]:
    image = Image.new("RGB", (SIZE, SIZE), "white")
    draw = ImageDraw.Draw(image)
    draw.ellipse((24, 4, 40, 20), fill=(250, 210, 180), outline="black")
    draw.rectangle((22, 20, 42, 52), fill=(40, 70, 200), outline="black")
    return image, np.asarray(image.convert("L")) < 250


@pytest.fixture(scope="module")
def annotator_dir(tmp_path_factory):
    """Random lineart-anime and openpose checkpoints (about 730 MB), written once; openpose's body heatmap head
    is zeroed so that the real detector finds nobody, as on much anime art."""
    folder = tmp_path_factory.mktemp("annotators")
    write_random_annotator_checkpoints(folder, ("lineart_anime", "openpose"), seed=0)
    blank_openpose_body(folder)
    yield str(folder)
    clear_annotator_cache()
    shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.slow
def test_lineart_anime_loads_from_a_local_folder_once(annotator_dir):
    image, _ = figure()
    before = len(cached_annotators())
    cmap = detect_control("lineart_anime", image, size=(80, 72), detect_resolution=64, annotator_dir=annotator_dir)
    assert cmap.method == "anime" and cmap.image.mode == "RGB" and cmap.image.size == (80, 72)
    assert cmap.params["annotator_source"] == os.path.realpath(annotator_dir)
    assert cmap.params["detect_size"] == [64, 64]
    assert len(cached_annotators()) == before + 1
    again = detect_control("lineart_anime", image, size=(80, 72), detect_resolution=64, annotator_dir=annotator_dir)
    assert len(cached_annotators()) == before + 1  # the second detect loaded nothing
    assert np.array_equal(np.asarray(again.image), np.asarray(cmap.image))
    first, _ = load_annotator("lineart_anime", "anime", annotator_dir=annotator_dir)
    second, _ = load_annotator("lineart_anime", "anime", annotator_dir=annotator_dir)
    assert first is second
    assert "TORCH_FORCE_WEIGHTS_ONLY_LOAD" not in os.environ  # the load-time switch was undone


@pytest.mark.slow
def test_empty_pose_from_the_real_detector_is_flagged_and_dropped_by_default(annotator_dir):
    image, mask = figure()
    cmap = detect_control("openpose", image, size=(SIZE, SIZE), detect_resolution=64, annotator_dir=annotator_dir,
                          mask=mask, mask_to_subject=True)
    assert cmap.image.size == (SIZE, SIZE) and cmap.image.mode == "RGB"
    assert cmap.found is False and np.asarray(cmap.image).max() == 0
    assert cmap.keypoints is not None and cmap.keypoints.shape == (0, 2)
    assert any("no person" in w for w in cmap.warnings)
    assert cmap.params["persons"] == 0 and cmap.params["pose_policy"] == "drop"
    assert resolve_empty_pose(cmap) is None
    kept = resolve_empty_pose(cmap, "keep")
    assert kept is not None and kept.image.size == (SIZE, SIZE) and len(kept.warnings) == len(cmap.warnings) + 1


def test_pose_keypoints_are_pixels_at_the_output_size_with_nan_for_missing_parts():
    import_controlnet_aux()
    from controlnet_aux.open_pose import PoseResult
    from controlnet_aux.open_pose.body import BodyResult, Keypoint

    parts = [Keypoint(0.5, 0.25), None] + [Keypoint(0.1 * (i % 10), 0.5) for i in range(16)]
    poses = [PoseResult(BodyResult(parts, 9.0, 17), None, None, None)] * 2
    points = pose_keypoints(poses, (200, 100))
    assert len(BODY_KEYPOINT_NAMES) == 18
    assert points.shape == (36, 2) and points.dtype == np.float32
    assert tuple(points[0]) == (100.0, 25.0)
    assert np.isnan(points[1]).all() and np.isnan(points[19]).all()
    assert pose_keypoints([], (200, 100)).shape == (0, 2)


class _RunsOnUnpickle:
    """Unpickling this creates a file: a stand-in for a checkpoint that runs code when loaded."""

    def __init__(self, flag: str) -> None:
        self.flag = flag

    def __reduce__(self):
        return (open, (self.flag, "w"))


def test_checkpoints_that_need_full_unpickling_are_refused_unless_allowed(tmp_path, monkeypatch):
    flag = tmp_path / "code-ran"
    folder = tmp_path / "annotators"
    folder.mkdir()
    torch.save({"weight": torch.zeros(1), "payload": _RunsOnUnpickle(str(flag))}, folder / "netG.pth")

    monkeypatch.delenv(ALLOW_PICKLE_ENV, raising=False)
    with pytest.raises(UnsafeCheckpointError, match="allow_pickle=True") as info:
        load_annotator("lineart_anime", "anime", annotator_dir=folder)
    assert str(folder) in str(info.value) and ALLOW_PICKLE_ENV in str(info.value)
    assert not flag.exists(), "the refused checkpoint ran no code"

    # Opting in hands the file to full unpickling (which here runs the payload, then fails on the state dict).
    monkeypatch.setenv(ALLOW_PICKLE_ENV, "1")
    with pytest.raises(Exception) as info:
        load_annotator("lineart_anime", "anime", annotator_dir=folder)
    assert not isinstance(info.value, UnsafeCheckpointError)
    assert flag.exists()


@pytest.mark.slow
def test_midas_depth_loads_from_a_local_folder(tmp_path):
    write_random_annotator_checkpoints(tmp_path, ("depth",))
    try:
        image, _ = figure()
        cmap = detect_control("depth", image, size=(72, 64), detect_resolution=64, annotator_dir=str(tmp_path))
        assert cmap.method == "midas" and cmap.image.size == (72, 64) and cmap.image.mode == "RGB"
        assert cmap.params["annotator_source"] == os.path.realpath(tmp_path)
    finally:
        clear_annotator_cache()
        (tmp_path / "dpt_hybrid-midas-501f0c75.pt").unlink()
