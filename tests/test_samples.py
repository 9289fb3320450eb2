from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from zrealism_lab.errors import SettingsError
from zrealism_lab.source.samples import SAMPLE_NAMES, draw_sample, load_sample, sample_path, write_samples


def test_names():
    assert SAMPLE_NAMES == ("transparent", "dark", "light", "scenic")


@pytest.mark.parametrize("name", SAMPLE_NAMES)
def test_shipped_sample_is_small_png_of_the_right_mode(name):
    path = sample_path(name)
    assert path.suffix == ".png" and path.stat().st_size < 60_000
    image = load_sample(name)
    assert image.size == (256, 256)
    assert image.mode == ("RGBA" if name == "transparent" else "RGB")


@pytest.mark.parametrize("name", SAMPLE_NAMES)
def test_shipped_sample_matches_the_drawing_code(name):
    shipped = np.asarray(load_sample(name), np.int16)
    drawn = np.asarray(draw_sample(name, 256), np.int16)
    # A tolerance, not equality: anti-aliasing may differ by a level or two between Pillow versions.
    assert np.abs(shipped - drawn).mean() < 2.0


def test_transparent_sample_has_a_cut_out_subject():
    alpha = np.asarray(load_sample("transparent").getchannel("A"))
    assert alpha[0, 0] == 0 and alpha[128, 128] == 255
    assert 0.15 < (alpha > 127).mean() < 0.6


@pytest.mark.parametrize("name,corner", [("dark", (18, 18, 26)), ("light", (255, 255, 255))])
def test_plain_backdrops(name, corner):
    pixels = np.asarray(load_sample(name))
    assert tuple(pixels[0, 0]) == corner and tuple(pixels[-1, -1]) == corner


def test_character_has_outlines_and_cel_colours():
    pixels = np.asarray(load_sample("light")).reshape(-1, 3)
    subject = pixels[(pixels != 255).any(axis=1)]
    assert (subject.max(axis=1) < 40).mean() > 0.05  # black outlines
    colours, counts = np.unique(subject, axis=0, return_counts=True)
    assert (counts > 200).sum() >= 6  # several flat fills (hair, skin, dress, ...)


def test_scenic_sample_has_a_busy_border():
    pixels = np.asarray(load_sample("scenic")).astype(int)
    border = np.concatenate([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]])
    assert border.std(axis=0).mean() > 25


def test_draw_sample_sizes_and_errors(tmp_path):
    assert draw_sample("dark", size=64).size == (64, 64)
    with pytest.raises(SettingsError, match="one of transparent, dark, light, scenic"):
        sample_path("robot")
    with pytest.raises(SettingsError, match="size"):
        draw_sample("dark", size=8)
    written = write_samples(tmp_path, size=48)
    assert [p.name for p in written] == [f"{n}.png" for n in SAMPLE_NAMES]
    assert Image.open(written[0]).size == (48, 48)
