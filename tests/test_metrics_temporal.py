"""Temporal metrics: static clips, translated clips, flicker, colour stability, reference ratios, inputs."""
from __future__ import annotations

import json
import math

import cv2
import numpy as np
import pytest
from PIL import Image
from skimage import color

from zrealism_lab.errors import SettingsError
from zrealism_lab.metrics import evaluate_clip
from zrealism_lab.metrics.temporal import stability_ratio

SIZE, FRAMES = 64, 6


def textured(seed: int = 0, size: int = 96) -> np.ndarray:
    """A smooth random texture: optical flow has something to lock on to everywhere."""
    rng = np.random.default_rng(seed)
    noise = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    blurred = cv2.GaussianBlur(noise, (0, 0), 2.0)
    return cv2.normalize(blurred, None, 0, 255, cv2.NORM_MINMAX)


@pytest.fixture(scope="module")
def translated() -> np.ndarray:
    """A camera pan: each frame the window moves 2 px right and 1 px down over one texture."""
    base = textured(1)
    return np.stack([base[t: t + SIZE, 2 * t: 2 * t + SIZE] for t in range(FRAMES)])


def test_static_clip_has_zero_flicker_and_warp_error():
    frame = textured(2)[:SIZE, :SIZE]
    report = evaluate_clip([Image.fromarray(frame)] * FRAMES)
    assert report.value("flicker") == 0.0
    assert report.value("warp_error") == pytest.approx(0.0, abs=1e-9)
    assert report.value("colour_jitter") == pytest.approx(0.0, abs=1e-6)
    assert report.value("colour_drift") == pytest.approx(0.0, abs=1e-6)
    assert report.value("warp_valid_fraction") == pytest.approx(1.0)
    assert report.series["flicker"] == [0.0] * (FRAMES - 1)


def test_translated_clip_has_low_warping_error_but_real_flicker(translated):
    report = evaluate_clip(translated)
    assert report.value("flicker") > 5.0  # the raw frame difference sees the motion...
    assert report.value("warp_error") < 1.5  # ...flow compensation removes it
    assert report.value("warp_error") < 0.2 * report.value("flicker")
    assert report.value("warp_valid_fraction") > 0.8


def test_flicker_is_the_mean_absolute_frame_difference(translated):
    report = evaluate_clip(translated)
    expected = [np.abs(translated[i].astype(int) - translated[i - 1].astype(int)).mean() for i in range(1, FRAMES)]
    np.testing.assert_allclose(report.series["flicker"], expected, rtol=1e-9)
    assert report.value("flicker") == pytest.approx(np.mean(expected))


def test_random_brightness_flicker_raises_warp_error(translated):
    gains = np.array([1.0, 0.8, 1.15, 0.85, 1.1, 0.9])[:, None, None, None]
    flickering = np.clip(translated.astype(float) * gains, 0, 255).astype(np.uint8)
    steady = evaluate_clip(translated)
    unsteady = evaluate_clip(flickering)
    assert unsteady.value("warp_error") > 3 * steady.value("warp_error") + 2
    assert unsteady.value("colour_jitter") > steady.value("colour_jitter") + 2


def test_colour_stability_uses_the_subject_mask():
    frames = np.zeros((4, SIZE, SIZE, 3), np.uint8)
    frames[:, :, : SIZE // 2] = (200, 40, 40)  # steady red subject on the left
    for t in range(4):
        frames[t, :, SIZE // 2:] = (0, 60 * t, 255)  # background changing colour on the right
    subject = np.zeros((SIZE, SIZE), bool)
    subject[:, : SIZE // 2] = True
    masked = evaluate_clip(frames, mask=subject)
    whole = evaluate_clip(frames)
    assert masked.value("colour_jitter") == pytest.approx(0.0, abs=1e-5)
    assert whole.value("colour_jitter") > 1.0
    # the drift is the CIEDE2000 between the mean Lab colours of the first and the most different frame
    lab = color.rgb2lab(frames).reshape(4, -1, 3).mean(axis=1)
    expected = max(color.deltaE_ciede2000(lab[0], lab[t]) for t in range(1, 4))
    assert whole.value("colour_drift") == pytest.approx(expected, abs=1e-3)


def test_reference_clip_gives_side_by_side_numbers_and_ratios(translated):
    noisy = np.clip(translated.astype(int) + np.random.default_rng(0).integers(-10, 11, translated.shape),
                    0, 255).astype(np.uint8)
    report = evaluate_clip(noisy, reference=translated)
    alone = evaluate_clip(translated)
    assert report.value("flicker_reference") == pytest.approx(alone.value("flicker"))
    assert report.value("warp_error_reference") == pytest.approx(alone.value("warp_error"))
    assert report.value("flicker_ratio") == pytest.approx(
        report.value("flicker") / report.value("flicker_reference"))
    assert report.value("warp_error_ratio") > 2.0  # noise is not motion
    assert report.value("flicker_ratio") < 1.5  # the motion itself is not punished
    assert set(report.series) >= {"flicker", "flicker_reference", "warp_error", "warp_error_reference"}
    same = evaluate_clip(translated, reference=translated)
    for name in ("flicker", "warp_error", "colour_jitter", "colour_drift"):
        assert same.value(f"{name}_ratio") == pytest.approx(1.0)


def test_still_reference_gives_finite_ratios():
    still = np.repeat(textured(3)[None, :SIZE, :SIZE], 4, axis=0)
    moving = still.copy()
    moving[2] = 255 - moving[2]
    report = evaluate_clip(moving, reference=still)
    assert all(math.isfinite(v) for v in report.flat().values())
    assert report.value("flicker_ratio") > 10
    assert stability_ratio(0.0, 0.0, 0.5) == 1.0
    assert stability_ratio(2.0, 0.0, 0.5) == 4.0


def test_black_and_flat_clips_give_finite_values():
    for value in (0, 128, 255):
        report = evaluate_clip(np.full((3, 16, 16, 3), value, np.uint8), reference=np.full((3, 8, 8, 3), 0, np.uint8))
        assert all(math.isfinite(v) for v in report.flat().values())
        assert report.value("flicker") == 0.0


def test_reference_of_another_size_and_length_is_measured_with_a_note(translated):
    small = np.stack([cv2.resize(frame, (32, 32), interpolation=cv2.INTER_AREA) for frame in translated[:4]])
    report = evaluate_clip(translated, reference=small, mask=np.ones((SIZE, SIZE), bool))
    assert math.isfinite(report.value("warp_error_reference"))
    assert any("4 frames" in note for note in report.notes)


def test_clip_inputs_are_validated(translated):
    with pytest.raises(SettingsError, match="at least 2 frames"):
        evaluate_clip(translated[:1])
    with pytest.raises(SettingsError, match="one size"):
        evaluate_clip([translated[0], translated[1][:32]])
    with pytest.raises(SettingsError, match="mask"):
        evaluate_clip(translated, mask=np.ones((2, 3, 4, 5), bool))
    with pytest.raises(SettingsError):
        evaluate_clip("frames.mp4")


def test_clip_report_serialises(translated):
    report = evaluate_clip(list(translated), reference=translated)
    data = json.loads(json.dumps(report.to_dict(), allow_nan=False))
    assert data["kind"] == "clip" and data["common_size"] is None
    assert len(data["series"]["warp_error"]) == FRAMES - 1
    assert report.get("warp_error_ratio").direction == "lower"
    assert "flicker_reference" in report.as_table()
