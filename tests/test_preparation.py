from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from zrealism_lab.source.background import analyze_background
from zrealism_lab.errors import SettingsError
from zrealism_lab.source.intake import load_image
from zrealism_lab.source.preparation import PrepareSettings, Prepared, choose_backdrop, fit_size, parse_backdrop, prepare
from zrealism_lab.source.samples import load_sample, sample_path


def _prepare(name: str, **settings) -> Prepared:
    source = load_image(sample_path(name))
    return prepare(source, analyze_background(source.image), PrepareSettings(**settings))


# ---------------------------------------------------------------- fit_size


@pytest.mark.parametrize("width,height,long_side,expected", [
    (256, 256, 512, (512, 512)),
    (1920, 1080, 512, (512, 288)),
    (1080, 1920, 512, (288, 512)),
    (300, 200, 512, (512, 336)),  # 341.3 floored to a multiple of 8
    (1000, 999, 512, (512, 504)),  # 511.5 floors to 504, never rounds up past the source aspect
    (640, 480, 516, (512, 384)),  # long_side itself is floored to a multiple of 8
    (100, 800, 512, (64, 512)),  # exactly the 64 px minimum
    (64, 64, 64, (64, 64)),
])
def test_fit_size(width, height, long_side, expected):
    result = fit_size(width, height, long_side)
    assert result == expected
    assert all(side % 8 == 0 and side >= 64 for side in result)


def test_fit_size_other_multiple():
    assert fit_size(1000, 600, 768, multiple=64) == (768, 448)


def test_fit_size_rejects_extreme_aspect_and_bad_values():
    with pytest.raises(SettingsError, match="aspect ratio") as caught:
        fit_size(2000, 200, 512)
    assert "crop the source or raise long_side" in str(caught.value)
    with pytest.raises(SettingsError, match="long_side"):
        fit_size(100, 100, 32)
    with pytest.raises(SettingsError, match="width"):
        fit_size(0, 100, 512)


# ---------------------------------------------------------------- settings


@pytest.mark.parametrize("value,rgb", [("auto", None), ("white", (255, 255, 255)), ("black", (0, 0, 0)),
                                       ("grey", (128, 128, 128)), ("#1A2b3c", (26, 43, 60))])
def test_parse_backdrop(value, rgb):
    assert parse_backdrop(value) == rgb


@pytest.mark.parametrize("kwargs,name", [
    ({"transparent_backdrop": "pink"}, "transparent_backdrop"),
    ({"transparent_backdrop": "#12345"}, "transparent_backdrop"),
    ({"long_side": 32}, "long_side"),
    ({"long_side": 512.0}, "long_side"),
    ({"lighting_hints": "yes"}, "lighting_hints"),
])
def test_bad_settings(kwargs, name):
    with pytest.raises(SettingsError, match=name):
        PrepareSettings(**kwargs)


def test_auto_backdrop_contrasts_with_the_subject_edge():
    assert choose_backdrop("auto", 0.1)[0] == "white"  # black outlines
    assert choose_backdrop("auto", 0.9)[0] == "black"  # light rim
    assert choose_backdrop("auto", 0.5)[0] == "grey"  # mixed
    assert choose_backdrop("#102030", 0.1) == ("#102030", (16, 32, 48))


# ---------------------------------------------------------------- prepare


def test_transparent_source_is_composited():
    prepared = _prepare("transparent", long_side=128)
    pixels = np.asarray(prepared.image)
    assert prepared.image.mode == "RGB" and prepared.size == (128, 128) == prepared.image.size
    assert prepared.adaptations["composited"] and prepared.adaptations["backdrop"] == "white"
    assert tuple(pixels[2, 2]) == (255, 255, 255)  # cel outlines are dark: auto picks white
    assert "clean studio backdrop" in prepared.prompt_hints
    source = load_sample("transparent").resize((128, 128))
    subject = np.asarray(source)[..., 3] == 255
    error = np.abs(pixels[subject].astype(int) - np.asarray(source)[..., :3][subject]).mean()
    assert error < 3  # the subject itself is untouched by compositing


def test_transparent_source_on_a_chosen_backdrop():
    prepared = _prepare("transparent", long_side=128, transparent_backdrop="#204060")
    assert tuple(np.asarray(prepared.image)[2, 2]) == (32, 64, 96)
    black = _prepare("transparent", long_side=128, transparent_backdrop="black")
    assert tuple(np.asarray(black.image)[2, 2]) == (0, 0, 0)
    assert "dark background" in black.prompt_hints


def test_dark_backdrop_stays_dark():
    prepared = _prepare("dark", long_side=128)
    pixels = np.asarray(prepared.image).astype(int)
    assert not prepared.adaptations["composited"] and prepared.adaptations["kept_dark_backdrop"]
    assert pixels[~prepared.mask].mean() < 30  # no grey lift anywhere in the backdrop
    assert tuple(pixels[2, 2]) == (18, 18, 26)
    assert prepared.prompt_hints == ["dark background", "low-key lighting", "rim light"]


def test_dark_backdrop_lifted_only_when_asked():
    prepared = _prepare("dark", long_side=128, keep_dark_backdrop=False)
    pixels = np.asarray(prepared.image).astype(int)
    assert prepared.adaptations["composited"] and prepared.adaptations["lifted_dark_backdrop"]
    assert pixels[2, 2].min() > 100
    assert "dark background" not in prepared.prompt_hints


def test_light_and_scenic_are_kept_and_hinted():
    light = _prepare("light", long_side=128)
    assert not light.adaptations["composited"] and light.prompt_hints[0] == "clean studio backdrop"
    scenic = _prepare("scenic", long_side=128)
    assert scenic.prompt_hints == ["detailed natural environment"]
    np.testing.assert_allclose(np.asarray(scenic.image).astype(float).mean(),
                               np.asarray(load_sample("scenic").resize((128, 128))).astype(float).mean(), atol=2)


def test_no_hints_when_lighting_hints_off():
    assert _prepare("dark", long_side=64, lighting_hints=False).prompt_hints == []


def test_mask_follows_the_generation_size():
    source = load_sample("light").crop((0, 0, 256, 160))  # 8:5 aspect, subject cut at the bottom
    prepared = prepare(source, analyze_background(source), PrepareSettings(long_side=200))
    assert prepared.size == (200, 120) and prepared.image.size == (200, 120)
    assert prepared.mask.shape == (120, 200) and prepared.mask.dtype == bool
    assert 0.1 < prepared.mask.mean() < 0.7


def test_adaptations_are_json_safe():
    prepared = _prepare("transparent", long_side=64, mask_controls=True)
    record = json.loads(json.dumps(prepared.adaptations))
    assert record["background_kind"] == "transparent" and record["mask_controls"] is True
    assert record["size"] == [64, 64] and record["source_size"] == [256, 256]
    assert record["prompt_hints"] == prepared.prompt_hints


def test_mismatched_mask_is_refused():
    analysis = analyze_background(load_sample("light"))
    with pytest.raises(ValueError, match="does not match"):
        prepare(Image.new("RGB", (100, 100)), analysis, PrepareSettings())
