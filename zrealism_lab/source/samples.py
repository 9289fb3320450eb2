"""The lab's own sample characters, drawn procedurally so they can ship with the package.

One simple anime-style character (big head, big eyes, flat cel colours, black outlines) per
background kind the analysis knows: transparent, dark, light (white) and scenic. The shipped PNGs
in ``samples/`` are made by ``write_samples()`` (``python -m zrealism_lab.samples``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw

from ..errors import IntakeError, SettingsError

SAMPLE_NAMES: tuple[str, ...] = ("transparent", "dark", "light", "scenic")
SAMPLES_DIR = Path(__file__).with_name("samples")

# Drawn this many times larger, then downsampled: cheap anti-aliasing for ImageDraw's hard edges.
_SUPERSAMPLE = 4

RGB = tuple[int, int, int]


@dataclass(frozen=True)
class _Palette:
    hair: RGB
    hair_shadow: RGB
    eyes: RGB
    skin: RGB
    skin_shadow: RGB
    outfit: RGB
    outfit_shadow: RGB
    collar: RGB
    accent: RGB
    legs: RGB
    shoes: RGB


_PALETTES: dict[str, _Palette] = {
    "transparent": _Palette(
        hair=(246, 150, 186), hair_shadow=(214, 104, 150), eyes=(64, 132, 230), skin=(255, 228, 210),
        skin_shadow=(236, 190, 175), outfit=(44, 62, 120), outfit_shadow=(30, 42, 88), collar=(250, 250, 252),
        accent=(226, 52, 64), legs=(255, 228, 210), shoes=(92, 54, 40),
    ),
    "dark": _Palette(
        hair=(214, 214, 236), hair_shadow=(170, 168, 204), eyes=(220, 40, 60), skin=(252, 226, 214),
        skin_shadow=(226, 186, 178), outfit=(176, 30, 52), outfit_shadow=(130, 18, 40), collar=(244, 236, 210),
        accent=(250, 204, 80), legs=(60, 56, 72), shoes=(120, 40, 50),
    ),
    "light": _Palette(
        hair=(150, 84, 44), hair_shadow=(112, 58, 30), eyes=(40, 160, 96), skin=(255, 226, 204),
        skin_shadow=(234, 186, 166), outfit=(252, 204, 64), outfit_shadow=(222, 160, 40), collar=(255, 255, 255),
        accent=(60, 150, 220), legs=(255, 226, 204), shoes=(200, 70, 60),
    ),
    "scenic": _Palette(
        hair=(60, 110, 214), hair_shadow=(38, 72, 160), eyes=(244, 170, 40), skin=(255, 230, 212),
        skin_shadow=(236, 192, 176), outfit=(240, 120, 50), outfit_shadow=(200, 84, 30), collar=(255, 250, 240),
        accent=(90, 60, 160), legs=(250, 250, 250), shoes=(70, 60, 90),
    ),
}

_BACKDROPS: dict[str, tuple[int, int, int, int]] = {
    "transparent": (0, 0, 0, 0),
    "dark": (18, 18, 26, 255),
    "light": (255, 255, 255, 255),
    "scenic": (150, 200, 240, 255),
}


def _check_name(name: str) -> str:
    if name not in SAMPLE_NAMES:
        raise SettingsError("sample", name, "one of " + ", ".join(SAMPLE_NAMES))
    return name


class _Pen:
    """Draws in unit coordinates (0..1 of the canvas side) with black cel outlines."""

    def __init__(self, canvas: Image.Image) -> None:
        self.draw = ImageDraw.Draw(canvas)
        self.side = canvas.width
        self.line = max(1, round(self.side * 0.009))

    def _xy(self, points):
        return [(x * self.side, y * self.side) for x, y in points]

    def _box(self, cx: float, cy: float, rx: float, ry: float):
        return [(cx - rx) * self.side, (cy - ry) * self.side, (cx + rx) * self.side, (cy + ry) * self.side]

    def poly(self, points, fill, outline: bool = True) -> None:
        self.draw.polygon(self._xy(points), fill=fill, outline=(0, 0, 0) if outline else None,
                          width=self.line if outline else 0)

    def ellipse(self, cx, cy, rx, ry, fill, outline: bool = True, width: float | None = None) -> None:
        self.draw.ellipse(self._box(cx, cy, rx, ry), fill=fill, outline=(0, 0, 0) if outline else None,
                          width=(self.line if width is None else max(1, round(width * self.side))) if outline else 0)

    def stroke(self, points, width: float, fill=(0, 0, 0)) -> None:
        self.draw.line(self._xy(points), fill=fill, width=max(1, round(width * self.side)), joint="curve")

    def arc(self, cx, cy, rx, ry, start, end, width: float, fill=(0, 0, 0)) -> None:
        self.draw.arc(self._box(cx, cy, rx, ry), start, end, fill=fill, width=max(1, round(width * self.side)))


def _draw_scenery(pen: _Pen) -> None:
    """Sky, sun, clouds, mountains, hills, trees and a meadow: a busy, varied border."""
    side = pen.side
    for row in range(side):  # sky gradient, deeper blue at the top
        t = row / side
        colour = (int(110 + 110 * t), int(170 + 60 * t), int(235 + 15 * t))
        pen.draw.line([(0, row), (side, row)], fill=colour)
    pen.ellipse(0.84, 0.12, 0.07, 0.07, (255, 236, 140), outline=False)
    for cx, cy, scale in ((0.18, 0.14, 1.0), (0.62, 0.08, 0.8)):
        for dx, dy, r in ((-0.06, 0.01, 0.04), (0.0, -0.01, 0.055), (0.06, 0.01, 0.04)):
            pen.ellipse(cx + dx * scale, cy + dy * scale, r * scale * 1.3, r * scale, (252, 252, 255), outline=False)
    pen.poly([(-0.05, 0.62), (0.12, 0.30), (0.28, 0.52), (0.42, 0.28), (0.62, 0.56), (0.78, 0.32),
              (1.05, 0.60)], (120, 124, 178), outline=False)
    pen.poly([(0.08, 0.36), (0.12, 0.30), (0.16, 0.36)], (240, 244, 255), outline=False)
    pen.poly([(0.74, 0.37), (0.78, 0.32), (0.82, 0.37)], (240, 244, 255), outline=False)
    pen.ellipse(0.20, 0.78, 0.55, 0.26, (112, 178, 84), outline=False)
    pen.ellipse(0.85, 0.80, 0.50, 0.24, (96, 164, 74), outline=False)
    pen.poly([(-0.02, 0.74), (1.02, 0.74), (1.02, 1.02), (-0.02, 1.02)], (132, 196, 96), outline=False)
    for x in (0.06, 0.2, 0.82, 0.95):  # trees with cel outlines like the character
        pen.poly([(x - 0.012, 0.74), (x + 0.012, 0.74), (x + 0.012, 0.62), (x - 0.012, 0.62)], (110, 72, 44))
        pen.ellipse(x, 0.56, 0.055, 0.08, (52, 128, 70))
    for i in range(14):  # flowers and grass tufts along the bottom edge
        x = 0.03 + i * 0.072
        y = 0.90 + 0.05 * ((i * 7) % 3) / 2
        pen.stroke([(x, y + 0.03), (x + 0.012, y - 0.01)], 0.006, (70, 140, 60))
        pen.ellipse(x + 0.012, y - 0.012, 0.011, 0.011, ((250, 220, 60), (240, 110, 150), (250, 250, 250))[i % 3],
                    outline=False)


def _draw_character(pen: _Pen, p: _Palette) -> None:
    """A chibi character standing in the middle: feet above the bottom edge so that flat
    backdrops surround it on every side."""
    # Hair behind the head and the twin tails.
    pen.poly([(0.30, 0.30), (0.27, 0.60), (0.36, 0.66), (0.64, 0.66), (0.73, 0.60), (0.70, 0.30)], p.hair_shadow)
    pen.poly([(0.30, 0.22), (0.17, 0.40), (0.19, 0.58), (0.25, 0.66), (0.29, 0.52), (0.32, 0.34)], p.hair)
    pen.poly([(0.70, 0.22), (0.83, 0.40), (0.81, 0.58), (0.75, 0.66), (0.71, 0.52), (0.68, 0.34)], p.hair)
    pen.ellipse(0.30, 0.22, 0.03, 0.025, p.accent)
    pen.ellipse(0.70, 0.22, 0.03, 0.025, p.accent)
    # Legs and shoes.
    pen.poly([(0.435, 0.74), (0.485, 0.74), (0.482, 0.87), (0.438, 0.87)], p.legs)
    pen.poly([(0.515, 0.74), (0.565, 0.74), (0.562, 0.87), (0.518, 0.87)], p.legs)
    pen.ellipse(0.455, 0.885, 0.04, 0.022, p.shoes)
    pen.ellipse(0.545, 0.885, 0.04, 0.022, p.shoes)
    # Dress with a cel shadow on the left.
    pen.poly([(0.41, 0.50), (0.59, 0.50), (0.67, 0.77), (0.33, 0.77)], p.outfit)
    pen.poly([(0.41, 0.505), (0.46, 0.505), (0.42, 0.765), (0.34, 0.765)], p.outfit_shadow, outline=False)
    pen.stroke([(0.33, 0.77), (0.67, 0.77)], 0.009)
    pen.stroke([(0.41, 0.50), (0.33, 0.77)], 0.009)
    # Arms and hands.
    pen.poly([(0.41, 0.51), (0.36, 0.52), (0.30, 0.66), (0.345, 0.675), (0.40, 0.57)], p.outfit)
    pen.poly([(0.59, 0.51), (0.64, 0.52), (0.70, 0.66), (0.655, 0.675), (0.60, 0.57)], p.outfit)
    pen.ellipse(0.32, 0.69, 0.028, 0.03, p.skin)
    pen.ellipse(0.68, 0.69, 0.028, 0.03, p.skin)
    # Neck, sailor collar and ribbon.
    pen.poly([(0.47, 0.45), (0.53, 0.45), (0.53, 0.515), (0.47, 0.515)], p.skin_shadow)
    pen.poly([(0.41, 0.50), (0.47, 0.50), (0.50, 0.56), (0.53, 0.50), (0.59, 0.50), (0.56, 0.57), (0.44, 0.57)],
             p.collar)
    pen.poly([(0.50, 0.565), (0.45, 0.54), (0.45, 0.60)], p.accent)
    pen.poly([(0.50, 0.565), (0.55, 0.54), (0.55, 0.60)], p.accent)
    pen.ellipse(0.50, 0.565, 0.015, 0.015, p.accent)
    # Head: a rounded skull with a pointed anime chin, one outlined polygon.
    face = [(0.50 + 0.17 * math.cos(math.radians(a)), 0.32 + 0.155 * math.sin(math.radians(a)))
            for a in range(150, 391, 10)]
    pen.poly(face + [(0.61, 0.44), (0.55, 0.472), (0.50, 0.482), (0.45, 0.472), (0.39, 0.44)], p.skin)
    # Top of the hair and bangs with a zig-zag fringe.
    pen.poly([(0.31, 0.33), (0.32, 0.20), (0.40, 0.14), (0.50, 0.12), (0.60, 0.14), (0.68, 0.20), (0.69, 0.33),
              (0.65, 0.27), (0.62, 0.32), (0.58, 0.25), (0.54, 0.31), (0.50, 0.24), (0.46, 0.31), (0.42, 0.25),
              (0.38, 0.32), (0.35, 0.27)], p.hair)
    shine = tuple(int(c + (255 - c) * 0.45) for c in p.hair)
    pen.poly([(0.39, 0.185), (0.45, 0.155), (0.47, 0.165), (0.41, 0.20)], shine, outline=False)
    pen.poly([(0.55, 0.165), (0.60, 0.165), (0.62, 0.18), (0.56, 0.18)], shine, outline=False)
    # Eyes: outline, iris, pupil, two highlights; brows; blush; mouth.
    for cx in (0.435, 0.565):
        pen.ellipse(cx, 0.365, 0.036, 0.05, (255, 255, 255), width=0.006)
        pen.ellipse(cx, 0.372, 0.027, 0.041, p.eyes, outline=False)
        pen.ellipse(cx, 0.378, 0.013, 0.02, tuple(int(c * 0.35) for c in p.eyes), outline=False)
        pen.ellipse(cx - 0.011, 0.352, 0.009, 0.011, (255, 255, 255), outline=False)
        pen.ellipse(cx + 0.01, 0.392, 0.005, 0.005, (255, 255, 255), outline=False)
        pen.arc(cx, 0.325, 0.035, 0.012, 200, 340, 0.007)
    for cx in (0.395, 0.605):
        pen.ellipse(cx, 0.415, 0.022, 0.009, (246, 168, 170), outline=False)
    pen.arc(0.50, 0.425, 0.022, 0.015, 20, 160, 0.007, fill=(120, 40, 40))


def draw_sample(kind: str, size: int = 256) -> Image.Image:
    """Draw the sample character for ``kind`` (one of SAMPLE_NAMES) as a size x size image:
    RGBA for "transparent", RGB otherwise."""
    _check_name(kind)
    if not isinstance(size, int) or size < 32:
        raise SettingsError("size", size, "a whole number of pixels >= 32")
    side = size * _SUPERSAMPLE
    canvas = Image.new("RGBA", (side, side), _BACKDROPS[kind])
    pen = _Pen(canvas)
    if kind == "scenic":
        _draw_scenery(pen)
    _draw_character(pen, _PALETTES[kind])
    small = canvas.resize((size, size), Image.Resampling.LANCZOS)
    return small if kind == "transparent" else small.convert("RGB")


def sample_path(name: str) -> Path:
    """Path of the shipped PNG of sample ``name``."""
    path = SAMPLES_DIR / f"{_check_name(name)}.png"
    if not path.is_file():
        raise IntakeError(f"sample '{name}' is missing from the package ({path.name}); "
                                "regenerate the samples with `python -m zrealism_lab.samples`.")
    return path


def resolve_source(value: object) -> object:
    """``sample:NAME`` (as on the command line) names a bundled sample's PNG; anything else is returned as is."""
    if isinstance(value, str) and value.startswith("sample:"):
        return str(sample_path(value.split(":", 1)[1]))
    return value


def load_sample(name: str) -> Image.Image:
    """Load the shipped sample ``name`` fully into memory (RGBA for "transparent", else RGB)."""
    with Image.open(sample_path(name)) as image:
        image.load()
        return image.copy()


def write_samples(folder: str | Path | None = None, size: int = 256) -> list[Path]:
    """Draw every sample and save it as an optimised PNG in ``folder`` (default: the package's)."""
    target = Path(folder) if folder is not None else SAMPLES_DIR
    target.mkdir(parents=True, exist_ok=True)
    written = []
    for name in SAMPLE_NAMES:
        path = target / f"{name}.png"
        draw_sample(name, size).save(path, optimize=True)
        written.append(path)
    return written


if __name__ == "__main__":
    for written_path in write_samples():
        print(written_path.name, written_path.stat().st_size, "bytes")
