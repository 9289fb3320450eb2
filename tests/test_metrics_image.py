"""Image-pair metrics: agreement with scikit-image / OpenCV references, known cases, degenerate images,
different sizes, masks, control adherence and the report objects."""
from __future__ import annotations

import json
import math

import cv2
import numpy as np
import pytest
from PIL import Image
from scipy import stats
from skimage import color, measure, metrics

from zrealism_lab.errors import MissingWeightsError, SettingsError
from zrealism_lab.metrics import (
    METRICS,
    AdherenceRequest,
    MetricReport,
    colour_moments,
    control_adherence,
    delta_e2000,
    depth_adherence,
    evaluate_pair,
    keypoints_from_pose_map,
    laplacian_variance,
    metric_names,
    pose_adherence,
    rgb_to_lab,
    shannon_entropy,
    ssim,
)
from zrealism_lab.metrics.adherence import OPENPOSE_COLOURS
from zrealism_lab.metrics.inputs import plan_common_size

SIZE = 64


def scene(seed: int = 0, size: int = SIZE) -> np.ndarray:
    """A small flat-shaded 'anime-like' picture: coloured discs and a bar on a tinted background."""
    rng = np.random.default_rng(seed)
    image = np.empty((size, size, 3), np.uint8)
    image[:] = rng.integers(30, 220, 3)
    for _ in range(8):
        centre = tuple(int(v) for v in rng.integers(0, size, 2))
        cv2.circle(image, centre, int(rng.integers(4, size // 4)), tuple(int(v) for v in rng.integers(0, 256, 3)), -1)
    cv2.rectangle(image, (size // 5, size // 2), (size // 2, size // 2 + 6), (250, 240, 20), -1)
    return image


@pytest.fixture(scope="module")
def pair() -> tuple[np.ndarray, np.ndarray]:
    source = scene(1)
    noise = np.random.default_rng(2).integers(-12, 13, source.shape)
    output = np.clip(cv2.GaussianBlur(source, (3, 3), 0).astype(int) + noise, 0, 255).astype(np.uint8)
    return source, output


# ------------------------------------------------------------------ agreement with reference libraries
def test_lab_matches_skimage_rgb2lab(pair):
    source, output = pair
    for image in (source, output, np.zeros((4, 4, 3), np.uint8), np.full((4, 4, 3), 255, np.uint8)):
        np.testing.assert_allclose(rgb_to_lab(image), color.rgb2lab(image), atol=2e-4)


def test_delta_e2000_matches_skimage(pair):
    source, output = pair
    ours = delta_e2000(rgb_to_lab(source), rgb_to_lab(output))
    reference = color.deltaE_ciede2000(color.rgb2lab(source), color.rgb2lab(output))
    np.testing.assert_allclose(ours, reference, atol=1e-3)
    report = evaluate_pair(source, output)
    assert report.value("delta_e2000_mean") == pytest.approx(reference.mean(), abs=1e-4)
    # inputs above one block (65536 pixels) are processed block by block
    rng = np.random.default_rng(5)
    big_a, big_b = (rng.integers(0, 256, (300, 240, 3), dtype=np.uint8) for _ in range(2))
    lab_a, lab_b = color.rgb2lab(big_a), color.rgb2lab(big_b)
    blocked = delta_e2000(lab_a, lab_b)
    assert blocked.shape == (300, 240)
    assert np.mean(np.abs(blocked - color.deltaE_ciede2000(lab_a, lab_b))) < 1e-4


def test_delta_e2000_matches_sharma_reference_pairs():
    # rows of the test data published with Sharma, Wu & Dalal (2005): L1 a1 b1 L2 a2 b2 dE00
    data = np.array([
        [50.0, 2.6772, -79.7751, 50.0, 0.0, -82.7485, 2.0425],
        [50.0, -1.3802, -84.2814, 50.0, 0.0, -82.7485, 1.0000],
        [50.0, 0.0, 0.0, 50.0, -1.0, 2.0, 2.3669],
        [50.0, 2.49, -0.001, 50.0, -2.49, 0.0011, 7.2195],
        [60.2574, -34.0099, 36.2677, 60.4626, -34.1751, 39.4387, 1.2644],
        [22.7233, 20.0904, -46.694, 23.0331, 14.973, -42.5619, 2.0373],
    ])
    ours = delta_e2000(data[:, :3], data[:, 3:6])
    np.testing.assert_allclose(ours, data[:, 6], atol=2e-4)


def test_ssim_matches_skimage(pair):
    source, output = pair
    grey_s = cv2.cvtColor(source, cv2.COLOR_RGB2GRAY)
    grey_o = cv2.cvtColor(output, cv2.COLOR_RGB2GRAY)
    expected = metrics.structural_similarity(grey_s, grey_o, data_range=255)
    assert ssim(grey_s, grey_o) == pytest.approx(expected, abs=1e-6)
    assert evaluate_pair(source, output).value("ssim_luma") == pytest.approx(expected, abs=1e-6)
    for a, b in ((grey_s, grey_s), (np.zeros_like(grey_s), grey_o), (grey_s[:5, :5], grey_o[:5, :5])):
        if min(a.shape) >= 7:
            assert ssim(a, b) == pytest.approx(metrics.structural_similarity(a, b, data_range=255), abs=1e-6)
        else:  # skimage refuses images smaller than its window; we score them as one window
            assert -1.0 <= ssim(a, b) <= 1.0


def test_entropy_matches_skimage_on_uint8(pair):
    source, output = pair
    for image in pair:
        grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
        assert shannon_entropy(grey) == pytest.approx(measure.shannon_entropy(grey), abs=1e-12)
    report = evaluate_pair(source, output)
    grey_s = cv2.cvtColor(source, cv2.COLOR_RGB2GRAY)
    grey_o = cv2.cvtColor(output, cv2.COLOR_RGB2GRAY)
    assert report.value("entropy_source") == pytest.approx(measure.shannon_entropy(grey_s))
    assert report.value("entropy_ratio") == pytest.approx(
        measure.shannon_entropy(grey_o) / measure.shannon_entropy(grey_s))


def test_laplacian_ratio_matches_opencv(pair):
    source, output = pair
    vs = cv2.Laplacian(cv2.cvtColor(source, cv2.COLOR_RGB2GRAY), cv2.CV_64F).var()
    vo = cv2.Laplacian(cv2.cvtColor(output, cv2.COLOR_RGB2GRAY), cv2.CV_64F).var()
    report = evaluate_pair(source, output)
    assert report.value("laplacian_var_source") == pytest.approx(vs)
    assert report.value("laplacian_var_output") == pytest.approx(vo)
    assert report.value("laplacian_ratio") == pytest.approx(min(vs, vo) / max(vs, vo))
    assert laplacian_variance(cv2.cvtColor(source, cv2.COLOR_RGB2GRAY)) == pytest.approx(vs)


def test_colour_moments_match_numpy_and_scipy(pair):
    source, _ = pair
    lab = color.rgb2lab(source).reshape(-1, 3)
    moments = colour_moments(source)
    for i, channel in enumerate("Lab"):
        assert moments[f"{channel}_mean"] == pytest.approx(lab[:, i].mean(), abs=1e-3)
        assert moments[f"{channel}_std"] == pytest.approx(lab[:, i].std(), abs=1e-3)
        assert moments[f"{channel}_skew"] == pytest.approx(stats.skew(lab[:, i]), abs=1e-3)


def test_mask_restricts_colour_metrics(pair):
    source, _ = pair
    output = source.copy()
    output[:, SIZE // 2:] = (0, 255, 0)  # right half repainted green
    left = np.zeros((SIZE, SIZE), bool)
    left[:, : SIZE // 2] = True
    masked = evaluate_pair(source, output, mask=left)
    whole = evaluate_pair(source, output)
    assert masked.value("delta_e2000_mean") == pytest.approx(0.0, abs=1e-6)
    assert whole.value("delta_e2000_mean") > 10
    lab = color.rgb2lab(source)[left]
    assert masked.value("L_mean_source") == pytest.approx(lab[:, 0].mean(), abs=1e-3)
    # structural metrics still look at the whole image
    assert masked.value("ssim_luma") == pytest.approx(whole.value("ssim_luma"))


def test_empty_mask_falls_back_to_whole_image_with_a_note(pair):
    source, output = pair
    report = evaluate_pair(source, output, mask=np.zeros((SIZE, SIZE), bool))
    assert report.value("delta_e2000_mean") == pytest.approx(evaluate_pair(source, output).value("delta_e2000_mean"))
    assert any("mask is empty" in note for note in report.notes)


def test_mask_of_wrong_size_is_rejected(pair):
    source, output = pair
    with pytest.raises(SettingsError, match="mask"):
        evaluate_pair(source, output, mask=np.ones((10, 10), bool))


# ------------------------------------------------------------------ known cases
def test_identical_images_give_perfect_scores(pair):
    source, _ = pair
    report = evaluate_pair(Image.fromarray(source), Image.fromarray(source))
    assert report.value("ssim_luma") == pytest.approx(1.0)
    assert report.value("edge_f1") == 1.0
    assert report.value("laplacian_ratio") == 1.0
    assert report.value("delta_e2000_mean") == 0.0
    assert report.value("lab_mean_distance") == 0.0
    assert report.value("entropy_ratio") == 1.0


def test_hue_shift_raises_delta_e(pair):
    source, _ = pair
    hsv = cv2.cvtColor(source, cv2.COLOR_RGB2HSV)
    small, large = hsv.copy(), hsv.copy()
    small[..., 0] = (hsv[..., 0].astype(int) + 5) % 180
    large[..., 0] = (hsv[..., 0].astype(int) + 40) % 180
    de_small = evaluate_pair(source, cv2.cvtColor(small, cv2.COLOR_HSV2RGB)).value("delta_e2000_mean")
    de_large = evaluate_pair(source, cv2.cvtColor(large, cv2.COLOR_HSV2RGB)).value("delta_e2000_mean")
    assert 0 < de_small < de_large
    assert de_large > 10


def test_blur_lowers_edge_fidelity(pair):
    source, _ = pair
    light = evaluate_pair(source, cv2.GaussianBlur(source, (0, 0), 0.8))
    heavy = evaluate_pair(source, cv2.GaussianBlur(source, (0, 0), 3.0))
    assert heavy.value("laplacian_ratio") < light.value("laplacian_ratio") < 1.0
    assert heavy.value("edge_f1") < light.value("edge_f1")
    assert heavy.value("ssim_luma") < light.value("ssim_luma")


def test_edge_tolerance_forgives_small_shifts(pair):
    source, _ = pair
    shifted = np.roll(source, 1, axis=1)
    assert evaluate_pair(source, shifted, edge_tolerance=2).value("edge_f1") > 0.95
    assert evaluate_pair(source, shifted, edge_tolerance=0).value("edge_f1") < 0.5


# ------------------------------------------------------------------ degenerate images
@pytest.mark.parametrize("source_value,output_value", [(0, 0), (0, 128), (255, 255), (77, 200)])
def test_flat_images_give_finite_defined_values(source_value, output_value):
    source = np.full((SIZE, SIZE, 3), source_value, np.uint8)
    output = np.full((SIZE, SIZE, 3), output_value, np.uint8)
    report = evaluate_pair(source, output)
    assert all(math.isfinite(v) for v in report.flat().values())
    assert report.value("laplacian_ratio") == 1.0  # both equally flat
    assert report.value("edge_f1") == 1.0  # no edges in either
    assert report.value("L_skew_source") == 0.0
    if source_value == output_value:
        assert report.value("ssim_luma") == pytest.approx(1.0)
        assert report.value("delta_e2000_mean") == pytest.approx(0.0, abs=1e-4)


def test_black_source_against_busy_output_is_finite(pair):
    _, output = pair
    report = evaluate_pair(np.zeros_like(output), output)
    values = report.flat()
    assert all(math.isfinite(v) for v in values.values())
    assert values["laplacian_ratio"] == 0.0
    assert values["edge_f1"] == 0.0
    assert values["entropy_ratio"] > 1.0


def test_tiny_images_are_measured():
    report = evaluate_pair(np.zeros((3, 5, 3), np.uint8), np.full((3, 5, 3), 9, np.uint8))
    assert all(math.isfinite(v) for v in report.flat().values())


# ------------------------------------------------------------------ sizes
def test_plan_common_size_keeps_source_aspect_and_never_upsamples():
    assert plan_common_size((64, 64), (128, 128)) == (None, (64, 64))
    assert plan_common_size((128, 64), (64, 32)) == (None, (64, 32))
    crop, size = plan_common_size((64, 64), (128, 64))  # output twice as wide: centre-crop to square
    assert crop == (64, 64) and size == (64, 64)
    crop, size = plan_common_size((300, 400), (512, 704))  # 0.75 vs 0.727 aspect: crop height
    assert crop == (512, 683)
    assert size == (300, 400)


def test_different_sizes_are_compared_at_a_recorded_common_size(pair):
    source, _ = pair
    big = cv2.resize(source, (SIZE * 2, SIZE * 2), interpolation=cv2.INTER_CUBIC)
    report = evaluate_pair(source, big)
    assert report.common_size == (SIZE, SIZE)
    assert report.to_dict()["common_size"] == [SIZE, SIZE]
    assert any(f"compared at {SIZE}x{SIZE}" in note for note in report.notes)
    assert report.value("ssim_luma") > 0.9
    assert report.value("delta_e2000_mean") < 3
    wide = np.concatenate([np.zeros((SIZE, SIZE // 2, 3), np.uint8), source, np.zeros((SIZE, SIZE // 2, 3), np.uint8)], 1)
    cropped = evaluate_pair(source, wide)
    assert cropped.common_size == (SIZE, SIZE)
    assert cropped.value("ssim_luma") == pytest.approx(1.0)
    assert any("centre-cropped" in note for note in cropped.notes)


def test_mask_follows_the_common_size(pair):
    source, _ = pair
    small = cv2.resize(source, (SIZE // 2, SIZE // 2), interpolation=cv2.INTER_AREA)
    mask = np.zeros((SIZE, SIZE), bool)
    mask[8:40, 8:40] = True
    report = evaluate_pair(source, small, mask=mask)
    assert report.common_size == (SIZE // 2, SIZE // 2)
    assert math.isfinite(report.value("delta_e2000_mean"))


def test_inputs_are_validated():
    with pytest.raises(SettingsError, match="source"):
        evaluate_pair("not an image", np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(SettingsError, match="float"):
        evaluate_pair(np.full((4, 4, 3), 3.0), np.zeros((4, 4, 3), np.uint8))
    # float images in [0, 1] and grey arrays are accepted
    report = evaluate_pair(np.full((8, 8, 3), 0.5), np.full((8, 8), 128, np.uint8))
    assert report.value("delta_e2000_mean") == pytest.approx(0.0, abs=1e-4)


# ------------------------------------------------------------------ report object and registry
def test_report_api_and_json(pair):
    source, output = pair
    report = evaluate_pair(source, output)
    metric = report.get("delta_e2000_mean")
    assert metric.direction == "lower" and metric.group == "colour" and metric.unit == "ΔE00"
    assert report.get("ssim_luma").direction == "higher" and report.get("ssim_luma").range == (-1.0, 1.0)
    assert all(m.meaning and m.unit and m.group for m in report.values)
    data = json.loads(json.dumps(report.to_dict(), allow_nan=False))
    assert data["kind"] == "pair"
    assert {m["name"] for m in data["metrics"]} == set(report.names())
    assert all(type(m["value"]) is float for m in data["metrics"])
    assert data["metrics"][report.names().index("delta_e2000_mean")]["range"] == [0.0, None]
    table = report.as_table()
    assert "ssim_luma" in table and "compared at 64x64 px" in table
    with pytest.raises(SettingsError, match="not measured"):
        report.get("warp_error")


def test_every_reported_metric_is_registered(pair):
    report = evaluate_pair(*pair)
    assert set(report.names()) <= set(METRICS.names())
    assert set(metric_names("pair")) == set(report.names())
    assert "flicker" in metric_names("clip", headline_only=True)
    for name in METRICS.names():
        spec = METRICS.get(name)
        assert spec.direction in ("higher", "lower", "none")
        for band in spec.bands:
            assert band.label in ("good", "fair", "poor") and band.low < band.high
    with pytest.raises(SettingsError, match="one of"):
        METRICS.get("sharpness_vibes")


# ------------------------------------------------------------------ control adherence
def test_depth_adherence_is_scale_and_shift_invariant():
    ramp = np.tile(np.linspace(0, 1, SIZE), (SIZE, 1))
    perfect = depth_adherence((ramp * 255).astype(np.uint8), 0.3 * ramp + 0.2)
    assert perfect["depth_rmse"] < 0.005
    assert perfect["depth_spearman"] == pytest.approx(1.0)
    reversed_ = depth_adherence(ramp, 1 - ramp)
    assert reversed_["depth_spearman"] == pytest.approx(-1.0)
    noisy = depth_adherence(ramp, ramp + np.random.default_rng(0).normal(0, 0.2, ramp.shape))
    assert 0.1 < noisy["depth_rmse"] < 0.3
    assert 0 < noisy["depth_spearman"] < 1


def test_depth_adherence_matches_scipy_and_numpy_fits():
    rng = np.random.default_rng(3)
    fed = rng.random((16, 16))
    detected = fed ** 2 + rng.normal(0, 0.05, fed.shape)
    values = depth_adherence(fed, detected)
    f = (fed - fed.min()) / (fed.max() - fed.min())
    scale, shift = np.polyfit(detected.ravel(), f.ravel(), 1)
    expected_rmse = np.sqrt(np.mean((f.ravel() - (scale * detected.ravel() + shift)) ** 2))
    assert values["depth_rmse"] == pytest.approx(expected_rmse, rel=1e-9)
    assert values["depth_spearman"] == pytest.approx(stats.spearmanr(fed.ravel(), detected.ravel()).statistic)


def test_depth_adherence_handles_flat_and_resized_maps():
    flat = depth_adherence(np.zeros((8, 8)), np.zeros((8, 8)))
    assert flat == {"depth_rmse": 0.0, "depth_spearman": 1.0}
    one_flat = depth_adherence(np.tile(np.arange(8.0), (8, 1)), np.zeros((8, 8)))
    assert one_flat["depth_spearman"] == 0.0 and math.isfinite(one_flat["depth_rmse"])
    ramp = np.tile(np.linspace(0, 255, 32), (32, 1)).astype(np.uint8)
    resized = depth_adherence(Image.fromarray(ramp), Image.fromarray(ramp).resize((16, 16)))
    assert resized["depth_spearman"] > 0.99


def test_pose_adherence_counts_detector_failures():
    fed = np.array([[10, 10, 1], [20, 20, 1], [30, 30, 1], [0, 0, 0]], float)  # last keypoint absent
    assert pose_adherence(fed, fed, 2.0) == {"pose_pck": 1.0, "pose_keypoints_fed": 3.0, "pose_keypoints_missing": 0.0}
    moved = fed.copy()
    moved[1, :2] += 5  # re-found but too far
    moved[2, 2] = 0  # detector lost this one
    values = pose_adherence(fed, moved, 2.0)
    assert values["pose_pck"] == pytest.approx(1 / 3)
    assert values["pose_keypoints_missing"] == 1.0
    nobody = pose_adherence(fed, None, 2.0)
    assert nobody == {"pose_pck": 0.0, "pose_keypoints_fed": 3.0, "pose_keypoints_missing": 3.0}
    assert pose_adherence(fed, np.zeros((0, 18, 3)), 2.0)["pose_keypoints_missing"] == 3.0
    assert pose_adherence(np.zeros((0, 3)), fed, 2.0)["pose_pck"] == 0.0
    with pytest.raises(SettingsError):
        pose_adherence(fed, fed, 0)


def test_pose_adherence_matches_people_without_identity():
    person_a = np.array([[10.0, 10.0], [12.0, 30.0]])
    person_b = np.array([[50.0, 10.0], [52.0, 30.0]])
    fed = np.stack([person_a, person_b])
    detected = np.stack([person_b + 1, person_a - 1])  # same people, other order, slightly moved
    assert pose_adherence(fed, detected, 2.0)["pose_pck"] == 1.0
    only_one = pose_adherence(fed, person_b[None], 2.0)
    assert only_one["pose_pck"] == 0.5 and only_one["pose_keypoints_missing"] == 2.0


def _draw_pose(points: dict[int, tuple[int, int]], size: int = SIZE) -> Image.Image:
    """A pose map drawn the way the OpenPose renderer draws body keypoints: discs of radius 4."""
    canvas = np.zeros((size, size, 3), np.uint8)
    for index, (x, y) in points.items():
        cv2.circle(canvas, (x, y), 4, tuple(int(c) for c in OPENPOSE_COLOURS[index]), -1)
    return Image.fromarray(canvas)


POSE = {0: (32, 8), 1: (32, 18), 2: (24, 18), 5: (40, 18), 8: (27, 40), 11: (37, 40), 10: (27, 58)}


def test_keypoints_are_read_back_from_a_pose_map():
    keypoints = keypoints_from_pose_map(_draw_pose(POSE))
    assert keypoints.shape == (1, 18, 3)
    for index, (x, y) in POSE.items():
        assert keypoints[0, index, 2] == 1.0
        assert keypoints[0, index, :2] == pytest.approx((x, y), abs=0.5)
    assert keypoints[0, 3, 2] == 0.0
    assert keypoints_from_pose_map(np.zeros((8, 8, 3), np.uint8)).shape == (0, 18, 3)


def test_control_adherence_runs_providers_and_notes_what_it_skipped(pair):
    source, output = pair
    ramp = Image.fromarray(np.tile(np.linspace(0, 255, SIZE), (SIZE, 1)).astype(np.uint8)).convert("RGB")
    canny = Image.fromarray(cv2.Canny(cv2.cvtColor(source, cv2.COLOR_RGB2GRAY), 100, 200))
    moved_pose = {k: (x + 1, y) for k, (x, y) in POSE.items() if k != 10}  # the ankle is lost
    providers = {
        "depth": lambda image: ramp,
        "openpose": lambda image: _draw_pose(moved_pose),
        "canny": lambda image: Image.fromarray(cv2.Canny(cv2.cvtColor(np.asarray(image), cv2.COLOR_RGB2GRAY), 100, 200)),
        "lineart_anime": None,
    }
    fed = {"depth": ramp, "openpose": _draw_pose(POSE), "canny": canny, "lineart_anime": canny, "tile": ramp}
    report = control_adherence(Image.fromarray(source), fed, providers.get)
    assert report.kind == "adherence"
    assert report.value("depth_spearman") == pytest.approx(1.0)
    assert report.value("pose_keypoints_fed") == len(POSE)
    assert report.value("pose_keypoints_missing") == 1
    assert report.value("pose_pck") == pytest.approx((len(POSE) - 1) / len(POSE))
    assert report.value("canny_f1") == 1.0
    assert "lineart_ssim" not in report
    assert any("lineart_anime" in note for note in report.notes)
    assert any("tile" in note for note in report.notes)
    # the same request through evaluate_pair lands in one report
    combined = evaluate_pair(source, output, adherence=AdherenceRequest(fed, providers.get))
    assert "ssim_luma" in combined and "pose_pck" in combined and "depth_rmse" in combined


def test_control_adherence_failures(pair):
    source, _ = pair
    fed = {"depth": Image.new("L", (SIZE, SIZE)), "pose": _draw_pose(POSE)}

    def missing_weights(image):
        raise MissingWeightsError("depth weights are not on disk")

    def broken_detector(image):
        raise RuntimeError("no person found")

    report = control_adherence(Image.fromarray(source), fed,
                               {"depth": missing_weights, "pose": broken_detector}.get)
    assert "depth_rmse" not in report
    assert any("depth weights" in note for note in report.notes)
    assert report.value("pose_pck") == 0.0
    assert report.value("pose_keypoints_missing") == len(POSE)
    nothing = control_adherence(Image.fromarray(source), fed, {"depth": lambda image: None, "pose": lambda image: None}.get)
    assert "depth_rmse" not in nothing and any("returned nothing" in note for note in nothing.notes)
    assert nothing.value("pose_keypoints_missing") == len(POSE)  # a detector that finds nobody: all missed
    precomputed = evaluate_pair(source, source, adherence=report)
    assert precomputed.value("pose_pck") == 0.0
    with pytest.raises(SettingsError, match="adherence"):
        evaluate_pair(source, source, adherence={"depth": 1})


def test_metric_report_extend_and_flat():
    report = MetricReport(kind="pair")
    other = control_adherence(Image.new("RGB", (8, 8)), {"depth": np.zeros((8, 8))}, lambda kind: lambda image: np.zeros((8, 8)))
    report.extend(other)
    assert report.flat() == {"depth_rmse": 0.0, "depth_spearman": 1.0}


def test_pose_adherence_takes_the_detectors_stacked_keypoints_for_nobody_and_for_two_people():
    """The pose detectors return people stacked as (18 x people, 2); nobody found is (0, 2). Both score, neither
    is mistaken for an image."""
    from zrealism_lab.metrics.adherence import control_adherence

    person = np.zeros((18, 2))
    person[:4] = [[10, 10], [20, 20], [30, 30], [40, 40]]
    two = np.concatenate([person, person + [5, 0]])  # (36, 2)
    output = Image.new("RGB", (64, 64))
    found = control_adherence(output, {"openpose": two}, lambda kind: (lambda image: two))
    assert found.value("pose_pck") == 1.0 and found.value("pose_keypoints_fed") == 36  # without confidences all count
    nobody = control_adherence(output, {"openpose": two}, lambda kind: (lambda image: np.zeros((0, 2))))
    assert nobody.value("pose_pck") == 0.0 and nobody.value("pose_keypoints_missing") == 36
