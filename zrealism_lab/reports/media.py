"""Pictures, figures and clips as bytes and HTML for the widgets."""
from __future__ import annotations

import base64
import html
import io
from typing import Any

from PIL import Image

from ..files import png_bytes

DISPLAY_SIDE = 192  # on-screen long side of thumbnails; 64 px test images would be specks otherwise


def for_display(image: Image.Image, long_side: int = DISPLAY_SIDE) -> Image.Image:
    """A display copy: small images are enlarged with nearest-neighbour (every pixel stays visible as it is, no
    invented detail); large ones shrink so the kernel does not ship megapixels for a thumbnail."""
    if image.mode not in ("RGB", "RGBA", "L"):
        image = image.convert("RGBA" if "A" in image.getbands() else "RGB")
    width, height = image.size
    scale = long_side / max(width, height)
    if abs(scale - 1.0) < 1e-6:
        return image
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return image.resize(size, Image.Resampling.NEAREST if scale > 1 else Image.Resampling.LANCZOS)


def display_png(image: Image.Image, long_side: int = DISPLAY_SIDE) -> bytes:
    return png_bytes(for_display(image, long_side))


def figure_png(figure: Any, dpi: int = 90) -> bytes:
    """A matplotlib Figure as PNG bytes (headless: Figure.savefig needs no pyplot state)."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    _close(figure)
    return buffer.getvalue()


def _close(figure: Any) -> None:
    import sys

    pyplot = sys.modules.get("matplotlib.pyplot")
    if pyplot is not None:  # figures made through pyplot stay registered (and in memory) until closed
        pyplot.close(figure)


def data_uri(data: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def download_link(data: bytes, filename: str, mime: str, text: str, css: str = "") -> str:
    """An <a download> link: the browser saves the bytes, which works when the kernel runs on another machine."""
    return (f'<a class="{html.escape(css)}" download="{html.escape(filename)}" href="{data_uri(data, mime)}" '
            f'style="margin-right:1em">{html.escape(text)}</a>')


def video_html(mp4: bytes, width: int = 320, css: str = "zr-clip") -> str:
    """An HTML5 player for an MP4 clip, embedded as base64 (no file server needed), looping like a GIF."""
    return (f'<video class="{html.escape(css)}" width="{width}" controls loop autoplay muted playsinline '
            f'src="{data_uri(mp4, "video/mp4")}"></video>')


def captioned_html(caption: str) -> str:
    return f'<div style="font-size:12px;color:#555;text-align:center">{html.escape(caption)}</div>'
