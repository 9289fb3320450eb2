from __future__ import annotations

import json
import time

import numpy as np
import pytest
from PIL import Image

from zrealism_lab.source.background import KINDS, BackgroundAnalysis, analyze_background
from zrealism_lab.source.intake import load_image
from zrealism_lab.source.samples import SAMPLE_NAMES, load_sample, sample_path


@pytest.fixture(scope="module")
def analyses() -> dict[str, BackgroundAnalysis]:
    return {name: analyze_background(load_sample(name)) for name in SAMPLE_NAMES}


@pytest.mark.parametrize("name", SAMPLE_NAMES)
def test_each_sample_is_classified_as_its_kind(analyses, name):
    result = analyses[name]
    assert result.kind == name and result.kind in KINDS
    assert 0.0 <= result.confidence <= 1.0


@pytest.mark.parametrize("name", SAMPLE_NAMES)
def test_sample_masks_are_neither_empty_nor_full(analyses, name):
    result = analyses[name]
    assert result.mask.dtype == bool and result.mask.shape == (256, 256)
    assert 0.15 < result.mask.mean() < 0.6
    assert result.warnings == []
    assert not result.mask[0].any() and not result.mask[:, 0].any()  # image edge is background
    assert result.mask[128, 128] and result.mask[90, 128]  # body and face are subject


def test_sample_masks_agree_with_the_transparent_cut_out(analyses):
    # All samples share one character layout, so the alpha of the transparent one is ground truth.
    truth = np.asarray(load_sample("transparent").getchannel("A")) >= 128
    for name in ("dark", "light"):
        mask = analyses[name].mask
        iou = (mask & truth).sum() / (mask | truth).sum()
        assert iou > 0.9, (name, iou)
    scenic = analyses["scenic"].mask
    assert (scenic & truth).sum() / (scenic | truth).sum() > 0.85  # best effort on busy backgrounds


def test_dark_mask_is_whole_despite_black_outlines(analyses):
    # The outlines match a dark backdrop; the subject must not fall apart along them.
    import cv2

    count, _ = cv2.connectedComponents(analyses["dark"].mask.astype(np.uint8))
    assert count - 1 <= 3


def test_confidence_is_lower_for_scenic(analyses):
    assert analyses["scenic"].confidence < min(analyses[n].confidence for n in ("transparent", "dark", "light"))


def test_backdrop_colour_and_evidence(analyses):
    assert analyses["dark"].backdrop_rgb == (18, 18, 26)
    assert analyses["light"].backdrop_rgb == (255, 255, 255)
    assert analyses["transparent"].backdrop_rgb is None and analyses["scenic"].backdrop_rgb is None
    light = analyses["light"].evidence
    assert light["border_luma_mean"] > 0.99 and light["border_uniform_fraction"] == 1.0
    assert analyses["dark"].evidence["border_luma_mean"] < 0.1
    assert analyses["scenic"].evidence["border_colour_spread"] > 30
    assert analyses["transparent"].evidence["alpha_coverage"] < 0.6
    for result in analyses.values():
        assert all(type(v) is float for v in result.evidence.values())
        assert result.evidence["mask_fraction"] == pytest.approx(result.mask.mean())


def test_flat_colour_backdrop():
    pixels = np.full((64, 64, 3), (70, 140, 200), np.uint8)
    pixels[16:48, 24:40] = (240, 200, 40)
    pixels[16:48, 23], pixels[16:48, 40] = 0, 0
    result = analyze_background(Image.fromarray(pixels))
    assert result.kind == "flat" and result.backdrop_rgb == (70, 140, 200)
    assert result.mask[30, 30] and not result.mask[5, 5]
    assert result.mask.sum() == pytest.approx(32 * 18, rel=0.15)


def test_subject_touching_the_border_on_light_backdrop():
    pixels = np.full((64, 64, 3), 245, np.uint8)
    pixels[30:, 20:44] = (30, 60, 180)  # bust cut off by the bottom edge
    result = analyze_background(Image.fromarray(pixels))
    assert result.kind == "light"
    assert result.mask[50, 30] and not result.mask[10, 10]


def test_uniform_image_warns_about_empty_mask():
    result = analyze_background(Image.new("RGB", (64, 64), (128, 128, 128)))
    assert not result.mask.any()
    assert any("empty" in w for w in result.warnings)


def test_opaque_rgba_is_treated_as_rgb_and_fully_transparent_warns():
    opaque = analyze_background(Image.new("RGBA", (64, 64), (255, 255, 255, 255)))
    assert opaque.kind == "light"
    clear = analyze_background(Image.new("RGBA", (64, 64), (0, 0, 0, 0)))
    assert clear.kind == "transparent" and clear.warnings and "empty" in clear.warnings[0]


def test_full_mask_warns():
    # A nearly transparent frame around an opaque block as large as the image.
    rgba = np.zeros((64, 64, 4), np.uint8)
    rgba[..., :3] = 100
    rgba[..., 3] = 255
    rgba[0, :4, 3] = 0  # a few transparent pixels: enough for the transparent kind, mask still ~full
    rgba[:, 0, 3] = 0
    result = analyze_background(Image.fromarray(rgba, "RGBA"))
    assert result.kind == "transparent"
    assert result.mask.mean() > 0.97 and result.warnings


def test_noise_gives_scenic_with_a_mask_or_a_warning():
    noise = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    result = analyze_background(Image.fromarray(noise))
    assert result.kind == "scenic" and result.confidence < 0.8
    assert result.warnings or 0.0 < result.mask.mean() < 1.0


def test_source_image_and_large_inputs_keep_the_mask_size():
    source = load_image(sample_path("light"))
    assert analyze_background(source).kind == "light"
    big = load_sample("light").resize((1400, 1100))
    result = analyze_background(big)
    assert result.mask.shape == (1100, 1400) and result.kind == "light"


def test_to_dict_mask_image_and_overlay(analyses):
    result = analyses["transparent"]
    info = result.to_dict()
    json.dumps(info)
    assert "mask" not in info and info["kind"] == "transparent" and info["mask_size"] == [256, 256]
    mask_image = result.mask_image()
    assert mask_image.mode == "L" and set(np.unique(np.asarray(mask_image))) == {0, 255}
    overlay = np.asarray(result.overlay(load_sample("transparent")))
    assert overlay.shape == (256, 256, 3)
    assert tuple(overlay[2, 2]) != (200, 200, 200)  # background is tinted
    untouched = np.asarray(result.overlay(load_sample("transparent"), strength=0.0))
    assert (overlay[~result.mask].astype(int) - untouched[~result.mask]).any()


def test_fast_on_512_px():
    images = [load_sample(name).resize((512, 512)) for name in SAMPLE_NAMES]
    analyze_background(images[1])  # warm up the lazy imports
    for image in images:
        start = time.perf_counter()
        analyze_background(image)
        # 0.2 s is the budget on a 2-core CPU; the assertion leaves room for a loaded test machine.
        assert time.perf_counter() - start < 0.6
