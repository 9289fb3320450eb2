from __future__ import annotations

import time

import numpy as np
import pytest
from PIL import Image

from zrealism_lab.colour import COLOUR_METHODS, AnchorResult, anchor_colours, anchor_frames
from zrealism_lab.errors import SettingsError

SIZE = 64


def _lch_image(lch: np.ndarray) -> Image.Image:
    from skimage.color import lab2rgb, lch2lab

    return Image.fromarray((np.clip(lab2rgb(lch2lab(lch)), 0, 1) * 255).round().astype(np.uint8))


def _colourful_source(size: int = SIZE) -> Image.Image:
    """A character-like palette: warm skin tones ramping in lightness and chroma, and a blue
    garment (the disc)."""
    y, x = np.mgrid[0:size, 0:size] / (size - 1)
    lch = np.zeros((size, size, 3))
    lch[..., 0] = 35 + 45 * y
    lch[..., 1] = 15 + 35 * x
    lch[..., 2] = np.deg2rad(55)
    disc = _disc_mask(size)
    lch[disc, 1] = 30 + 20 * x[disc]
    lch[disc, 2] = np.deg2rad(250)
    return _lch_image(lch)


def _hue_rotated(image: Image.Image, degrees: float = 25) -> Image.Image:
    """The deliberate colour shift: every hue turned by ``degrees`` in CIE LCh (lightness kept)."""
    from skimage.color import lab2lch, rgb2lab

    lch = lab2lch(rgb2lab(np.asarray(image) / 255.0))
    lch[..., 2] = (lch[..., 2] + np.deg2rad(degrees)) % (2 * np.pi)
    return _lch_image(lch)


def _disc_mask(size: int = SIZE) -> np.ndarray:
    y, x = np.mgrid[0:size, 0:size] / (size - 1)
    return (x - 0.6) ** 2 + (y - 0.4) ** 2 < 0.04


def test_registry_lists_the_methods():
    assert {"lab-histogram", "reinhard", "none"} <= set(COLOUR_METHODS.names())


@pytest.mark.parametrize("method", ["lab-histogram", "reinhard"])
def test_anchoring_pulls_a_hue_shifted_output_back_towards_the_source(method):
    source = _colourful_source()
    output = _hue_rotated(source)
    result = anchor_colours(output, source, method=method, strength=1.0)
    assert isinstance(result, AnchorResult)
    assert result.image.mode == "RGB" and result.image.size == output.size
    assert result.delta_e_before > 10
    assert result.delta_e_after < 0.7 * result.delta_e_before
    # A partial strength lands in between.
    half = anchor_colours(output, source, method=method, strength=0.5)
    assert result.delta_e_after < half.delta_e_after < half.delta_e_before
    assert result.to_dict() == {"method": method, "strength": 1.0, "delta_e_before": result.delta_e_before,
                                "delta_e_after": result.delta_e_after}


def test_lab_histogram_keeps_the_outputs_lightness():
    from skimage.color import rgb2lab

    source = _colourful_source()
    output = _hue_rotated(source)
    result = anchor_colours(output, source, method="lab-histogram", strength=1.0)
    lightness_before = rgb2lab(np.asarray(output) / 255.0)[..., 0]
    lightness_after = rgb2lab(np.asarray(result.image) / 255.0)[..., 0]
    chroma_change = np.abs(rgb2lab(np.asarray(result.image) / 255.0)[..., 1:]
                           - rgb2lab(np.asarray(output) / 255.0)[..., 1:]).mean()
    # Only sRGB gamut clipping may move L*; the chroma moves a lot more.
    assert np.median(np.abs(lightness_after - lightness_before)) < 1.0
    assert chroma_change > 5 * np.median(np.abs(lightness_after - lightness_before))


@pytest.mark.parametrize("method", ["lab-histogram", "reinhard", "none"])
def test_strength_zero_is_the_identity(method):
    source = _colourful_source()
    output = _hue_rotated(source)
    result = anchor_colours(output, source, method=method, strength=0.0, mask=_disc_mask())
    assert np.array_equal(np.asarray(result.image), np.asarray(output))
    assert result.delta_e_after == result.delta_e_before


def test_none_method_changes_nothing_but_still_measures():
    source = _colourful_source()
    output = _hue_rotated(source)
    result = anchor_colours(output, source, method="none", strength=1.0)
    assert np.array_equal(np.asarray(result.image), np.asarray(output))
    assert result.delta_e_before == result.delta_e_after > 10


def test_mask_restricts_statistics_and_correction_to_the_subject():
    size = SIZE
    mask = _disc_mask(size)
    source = np.zeros((size, size, 3), np.uint8)
    source[:] = (40, 60, 200)  # blue backdrop
    source[mask] = (210, 40, 40)  # red subject
    output = source.copy()
    output[:] = (200, 200, 60)  # the backdrop changed on purpose (new scenery)
    output[mask] = (40, 170, 60)  # the subject drifted to green
    source_img, output_img = Image.fromarray(source), Image.fromarray(output)

    masked = anchor_colours(output_img, source_img, method="reinhard", strength=1.0, mask=mask)
    unmasked = anchor_colours(output_img, source_img, method="reinhard", strength=1.0)
    masked_px = np.asarray(masked.image)
    # Outside the subject the output is untouched, pixel for pixel.
    assert np.array_equal(masked_px[~mask], output[~mask])
    # Inside it the subject is red again: statistics came from the subject only.
    assert masked.delta_e_after < 3
    assert masked.delta_e_after < masked.delta_e_before
    subject_error = np.abs(masked_px[mask].astype(int) - (210, 40, 40)).max()
    assert subject_error <= 3
    # Whole-image statistics mix backdrop and subject and miss the subject's colour.
    unmasked_subject = np.asarray(unmasked.image)[mask].astype(int)
    assert np.abs(unmasked_subject - (210, 40, 40)).mean() > 3 * max(subject_error, 1)


def test_output_mask_and_different_sizes():
    source = _colourful_source(64)
    output = _hue_rotated(source).resize((48, 40))
    source_mask = _disc_mask(64)
    result = anchor_colours(output, source, method="lab-histogram", strength=1.0, mask=source_mask)
    assert result.image.size == (48, 40)
    assert result.delta_e_after < result.delta_e_before
    # An explicit output mask of the output's own size is accepted; a wrong shape is refused.
    output_mask = np.asarray(Image.fromarray(source_mask).resize((48, 40), Image.NEAREST))
    explicit = anchor_colours(output, source, strength=1.0, mask=source_mask, mask_output=output_mask)
    assert explicit.delta_e_after < explicit.delta_e_before
    with pytest.raises(SettingsError, match="output mask"):
        anchor_colours(output, source, mask=source_mask, mask_output=source_mask)
    with pytest.raises(SettingsError, match="source mask"):
        anchor_colours(output, source, mask=output_mask)


def test_empty_mask_falls_back_to_the_whole_image_with_a_warning():
    source = _colourful_source()
    output = _hue_rotated(source)
    with pytest.warns(UserWarning, match="mask is empty"):
        result = anchor_colours(output, source, strength=1.0, mask=np.zeros((SIZE, SIZE), bool))
    assert result.delta_e_after < result.delta_e_before


def test_bad_method_and_strength_are_settings_errors():
    source = _colourful_source()
    with pytest.raises(SettingsError) as error:
        anchor_colours(source, source, method="histogram")
    assert "lab-histogram" in str(error.value) and "reinhard" in str(error.value)
    for bad in (-0.1, 1.5, "0.5", True, float("nan")):
        with pytest.raises(SettingsError, match="strength"):
            anchor_colours(source, source, strength=bad)


def test_frames_are_each_anchored_against_the_same_source():
    source = _colourful_source()
    drifted = [_hue_rotated(source, degrees) for degrees in (10, 20, 30)]
    results = anchor_frames(drifted + [drifted[0]], source, method="lab-histogram", strength=1.0)
    assert len(results) == 4
    assert all(r.delta_e_after < r.delta_e_before for r in results)
    # Not chained: the same frame gives the same result wherever it sits in the clip.
    assert np.array_equal(np.asarray(results[0].image), np.asarray(results[3].image))
    with pytest.raises(SettingsError, match="one mask per frame"):
        anchor_frames(drifted, source, mask_output=[_disc_mask()])


def test_fast_enough_at_512_pixels():
    source = _colourful_source(512)
    output = _hue_rotated(source)
    anchor_colours(output, source)  # first call imports skimage
    timings = []
    for _ in range(3):
        start = time.process_time()
        anchor_colours(output, source)
        timings.append(time.process_time() - start)
    # About 0.08 s on a quiet 2-core machine (budget 0.15 s). CPU time rather than wall time, and a
    # wide margin, because the test suite shares the machine with other work.
    assert min(timings) < 0.4
