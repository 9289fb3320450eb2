"""Control-map providers that need no checkpoint, the registry, argument checks and missing-weights errors."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image, ImageDraw

from zrealism_lab.control import (
    ANNOTATOR_DIR_ENV,
    CONTROL_PROVIDERS,
    ControlMap,
    available_methods,
    detect_control,
    list_kinds,
    resolve_empty_pose,
)
from zrealism_lab.errors import MissingWeightsError, SettingsError

SIZE = 64


def draw_figure(size: int = SIZE) -> tuple[Image.Image, np.ndarray]:
    """A stick-and-blob character on white, with a faint backdrop stripe outside the figure; its mask."""
    image = Image.new("RGB", (size, size), (255, 255, 255))
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, 54, 63, 63), fill=(236, 236, 236))  # faint floor stripe: a weak edge off the subject
    draw.ellipse((24, 4, 40, 20), fill=(250, 210, 180), outline=(0, 0, 0))  # head
    draw.rectangle((22, 20, 42, 46), fill=(40, 70, 200), outline=(0, 0, 0))  # body
    draw.line((22, 22, 8, 40), fill=(0, 0, 0), width=4)  # arms
    draw.line((42, 22, 56, 40), fill=(0, 0, 0), width=4)
    mask = np.zeros((size, size), dtype=bool)
    mask_draw = Image.new("L", (size, size), 0)
    d = ImageDraw.Draw(mask_draw)
    d.ellipse((24, 4, 40, 20), fill=255)
    d.rectangle((22, 20, 42, 46), fill=255)
    d.line((22, 22, 8, 40), fill=255, width=4)
    d.line((42, 22, 56, 40), fill=255, width=4)
    mask |= np.asarray(mask_draw) > 0
    return image, mask


@pytest.fixture(scope="module")
def figure() -> tuple[Image.Image, np.ndarray]:
    return draw_figure()


WEIGHTLESS = [("depth", "inflate"), ("canny", "opencv"), ("lineart_anime", "edges")]


def test_registry_lists_the_engine_kinds_with_their_methods():
    assert list_kinds() == ["depth", "openpose", "canny", "lineart_anime"]
    assert available_methods("depth") == ["midas", "inflate"]
    assert available_methods("openpose") == ["openpose", "mediapipe"]  # mediapipe: models bundled in its package
    assert available_methods("canny") == ["opencv"]
    assert available_methods("lineart_anime") == ["anime", "edges"]
    assert available_methods("depth", weightless_only=True) == ["inflate"]
    assert available_methods("openpose", weightless_only=True) == ["mediapipe"]
    needs = {(k, m): CONTROL_PROVIDERS.get(k).needs_weights(m) for k in list_kinds() for m in available_methods(k)}
    assert needs == {("depth", "midas"): True, ("depth", "inflate"): False, ("openpose", "openpose"): True,
                     ("openpose", "mediapipe"): False, ("canny", "opencv"): False, ("lineart_anime", "anime"): True,
                     ("lineart_anime", "edges"): False}


@pytest.mark.parametrize("kind,method", WEIGHTLESS)
@pytest.mark.parametrize("size", [(96, 96), (40, 40)])
def test_weightless_maps_are_rgb_at_the_generation_size(figure, kind, method, size):
    image, mask = figure
    cmap = detect_control(kind, image, size=size, detect_resolution=64, mask=mask, method=method)
    assert isinstance(cmap, ControlMap)
    assert (cmap.kind, cmap.method) == (kind, method)
    assert cmap.image.mode == "RGB" and cmap.image.size == size
    assert cmap.found and np.asarray(cmap.image).max() > 0
    assert cmap.keypoints is None
    assert cmap.params["detect_resolution"] == 64 and max(cmap.params["detect_size"]) == 64
    json.dumps(cmap.params)


def test_detection_runs_at_detect_resolution_on_the_long_side():
    wide = Image.new("RGB", (128, 64), "white")
    ImageDraw.Draw(wide).rectangle((30, 10, 90, 50), outline="black", width=2)
    cmap = detect_control("canny", wide, size=(128, 64), detect_resolution=96)
    assert cmap.params["detect_size"] == [96, 48]
    assert cmap.image.size == (128, 64)


def test_canny_thresholds_change_the_map(figure):
    image, _ = figure
    sensitive = detect_control("canny", image, size=(SIZE, SIZE), detect_resolution=64,
                               low_threshold=20, high_threshold=40)
    default = detect_control("canny", image, size=(SIZE, SIZE), detect_resolution=64)
    counts = [int((np.asarray(m.image)[..., 0] > 0).sum()) for m in (sensitive, default)]
    assert counts[0] > counts[1] > 0
    # The faint floor stripe (a 19-level step) is an edge only for the sensitive thresholds.
    assert np.asarray(sensitive.image)[52:57, :, 0].any() and not np.asarray(default.image)[52:57, :, 0].any()
    assert (default.params["low_threshold"], default.params["high_threshold"]) == (100, 200)
    assert (sensitive.params["low_threshold"], sensitive.params["high_threshold"]) == (20, 40)


def test_inflate_depth_is_rounded_inside_the_subject_and_zero_outside():
    image = Image.new("RGB", (SIZE, SIZE), "white")
    mask = np.zeros((SIZE, SIZE), dtype=bool)
    yy, xx = np.mgrid[:SIZE, :SIZE]
    mask[(yy - 32) ** 2 + (xx - 32) ** 2 <= 24 ** 2] = True
    for size in [(SIZE, SIZE), (96, 96)]:
        cmap = detect_control("depth", image, size=size, detect_resolution=64, mask=mask, method="inflate")
        depth = np.asarray(cmap.image)[..., 0].astype(int)
        scale = size[0] / SIZE
        centre = depth[int(32 * scale), int(32 * scale)]
        near_edge = depth[int(32 * scale), int(10 * scale)]  # 2 px inside the rim at 64 px
        halfway = depth[int(32 * scale), int(20 * scale)]
        assert centre > halfway > near_edge > 0
        outside = ~(np.asarray(Image.fromarray(mask).resize(size, Image.NEAREST)))
        assert depth[outside].max() == 0
        assert np.allclose(np.asarray(cmap.image)[..., 0], np.asarray(cmap.image)[..., 2])


def test_inflate_depth_needs_a_mask(figure):
    image, _ = figure
    with pytest.raises(SettingsError, match="mask"):
        detect_control("depth", image, size=(SIZE, SIZE), method="inflate")


def test_empty_mask_gives_a_blank_depth_map_with_a_warning(figure):
    image, _ = figure
    cmap = detect_control("depth", image, size=(SIZE, SIZE), mask=np.zeros((SIZE, SIZE), bool), method="inflate",
                          detect_resolution=64)
    assert not cmap.found and np.asarray(cmap.image).max() == 0
    assert any("mask is empty" in w for w in cmap.warnings)


@pytest.mark.parametrize("kind,method", WEIGHTLESS)
def test_mask_to_subject_zeroes_the_map_outside_the_subject(figure, kind, method):
    image, mask = figure
    # A mask of the upper half only: the figure's lower part and the floor stripe lie outside it.
    half = mask.copy()
    half[32:] = False
    free = detect_control(kind, image, size=(SIZE, SIZE), detect_resolution=64, mask=mask, method=method,
                          **({"low_threshold": 20, "high_threshold": 40} if kind == "canny" else {}))
    masked = detect_control(kind, image, size=(SIZE, SIZE), detect_resolution=64, mask=half, method=method,
                            mask_to_subject=True, **({"low_threshold": 20, "high_threshold": 40} if kind == "canny"
                                                     else {}))
    free_map, masked_map = np.asarray(free.image), np.asarray(masked.image)
    assert free_map[32:].any(), "the unmasked map has content in the lower half"
    assert masked_map[~half].max() == 0
    assert masked_map[half].any()
    assert masked.params["mask_to_subject"] is True


def test_mask_to_subject_without_a_mask_is_refused(figure):
    image, _ = figure
    with pytest.raises(SettingsError, match="mask_to_subject"):
        detect_control("canny", image, size=(SIZE, SIZE), mask_to_subject=True)


def test_a_mask_of_another_resolution_but_the_same_picture_is_accepted(figure):
    image, mask = figure
    big_mask = np.asarray(Image.fromarray(mask).resize((128, 128), Image.NEAREST))
    cmap = detect_control("depth", image, size=(SIZE, SIZE), detect_resolution=64, mask=big_mask, method="inflate")
    assert np.asarray(cmap.image)[~mask].max() == 0
    with pytest.raises(SettingsError, match="aspect ratio"):
        detect_control("depth", image, size=(SIZE, SIZE), mask=np.ones((32, 64), bool), method="inflate")


def test_unknown_kind_method_and_parameters_are_settings_errors(figure):
    image, _ = figure
    with pytest.raises(SettingsError, match="canny, depth, lineart_anime, openpose"):
        CONTROL_PROVIDERS.get("normal")
    with pytest.raises(SettingsError, match="midas, inflate") as info:
        detect_control("depth", image, size=(SIZE, SIZE), method="zoe")
    assert "need no checkpoint: inflate" in str(info.value)
    with pytest.raises(SettingsError, match="low_threshold, high_threshold"):
        detect_control("canny", image, size=(SIZE, SIZE), low=10)
    with pytest.raises(SettingsError, match="high_threshold"):
        detect_control("canny", image, size=(SIZE, SIZE), low_threshold=200, high_threshold=100)
    with pytest.raises(SettingsError, match="integer"):
        detect_control("canny", image, size=(SIZE, SIZE), low_threshold="100")


@pytest.mark.parametrize("kwargs,name", [
    ({"size": (64,)}, "size"), ({"size": (0, 64)}, "size"), ({"size": (64.0, 64)}, "size"),
    ({"size": (64, 64), "detect_resolution": 32}, "detect_resolution"),
    ({"size": (64, 64), "detect_resolution": True}, "detect_resolution"),
])
def test_bad_geometry_is_a_settings_error(figure, kwargs, name):
    image, _ = figure
    with pytest.raises(SettingsError, match=name):
        detect_control("canny", image, **kwargs)


def test_numpy_parameter_values_are_recorded_as_plain_json(figure):
    image, _ = figure
    cmap = detect_control("canny", image, size=(SIZE, SIZE), detect_resolution=64,
                          low_threshold=np.int64(50), high_threshold=np.int32(150))
    assert json.loads(json.dumps(cmap.params))["low_threshold"] == 50


@pytest.fixture
def offline_empty_hub(monkeypatch, tmp_path):
    """No annotator folder, an empty hub cache, and the hub offline."""
    import huggingface_hub.constants

    monkeypatch.delenv(ANNOTATOR_DIR_ENV, raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub-cache"))
    return tmp_path


@pytest.mark.parametrize("kind,method,files", [
    ("depth", "midas", ["dpt_hybrid-midas-501f0c75.pt"]),
    ("openpose", "openpose", ["body_pose_model.pth", "hand_pose_model.pth", "facenet.pth"]),
    ("lineart_anime", "anime", ["netG.pth"]),
])
def test_missing_annotator_weights_offline_name_the_files_and_the_fix(figure, offline_empty_hub, kind, method,
                                                                      files):
    image, _ = figure
    with pytest.raises(MissingWeightsError) as info:
        detect_control(kind, image, size=(SIZE, SIZE), method=method)
    message = str(info.value)
    for name in files:
        assert name in message
    assert str(offline_empty_hub / "hub-cache") in message  # where it looked
    assert "offline" in message and ANNOTATOR_DIR_ENV in message and "lllyasviel/Annotators" in message
    assert message.count("\n") <= 5


def test_missing_files_in_a_named_folder_are_reported_for_that_folder(figure, monkeypatch, tmp_path):
    image, _ = figure
    folder = tmp_path / "annotators"
    folder.mkdir()
    (folder / "body_pose_model.pth").write_bytes(b"")
    with pytest.raises(MissingWeightsError) as info:
        detect_control("openpose", image, size=(SIZE, SIZE), annotator_dir=str(folder))
    message = str(info.value)
    assert str(folder) in message and "missing: hand_pose_model.pth, facenet.pth" in message
    monkeypatch.setenv(ANNOTATOR_DIR_ENV, str(folder))
    with pytest.raises(MissingWeightsError, match="depth methods that need no checkpoint: inflate"):
        detect_control("depth", image, size=(SIZE, SIZE), method="midas")


def test_settings_are_checked_before_any_weights_are_looked_for(figure, offline_empty_hub):
    image, _ = figure
    with pytest.raises(SettingsError, match="pose_policy"):
        detect_control("openpose", image, size=(SIZE, SIZE), pose_policy="skip")
    with pytest.raises(SettingsError, match="device"):
        detect_control("openpose", image, size=(SIZE, SIZE), device="tpu")


def _pose_map(found: bool, kind: str = "openpose", policy: str = "drop") -> ControlMap:
    image = Image.new("RGB", (SIZE, SIZE))
    return ControlMap(kind, "openpose", image, found, np.zeros((0, 2), np.float32), ["no person"],
                      {"pose_policy": policy})


def test_resolve_empty_pose_policies():
    empty = _pose_map(found=False)
    assert resolve_empty_pose(empty) is None
    assert resolve_empty_pose(empty, "drop") is None
    kept = resolve_empty_pose(empty, "keep")
    assert kept is not None and kept.image is empty.image
    assert len(kept.warnings) == 2 and "keep" in kept.warnings[-1] and empty.warnings == ["no person"]
    assert resolve_empty_pose(_pose_map(found=False, policy="keep")) is not None  # the map's own policy
    found = _pose_map(found=True)
    assert resolve_empty_pose(found, "drop") is found
    other = _pose_map(found=False, kind="canny")
    assert resolve_empty_pose(other, "drop") is other
    with pytest.raises(SettingsError, match="drop, keep"):
        resolve_empty_pose(empty, "ignore")
