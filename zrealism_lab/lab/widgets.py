"""Small widget pieces the lab's tabs are made of: CSS-classed widgets (the browser tests' hooks), the grey
placeholder picture, section titles, and one control unit's row."""
from __future__ import annotations

import html
from pathlib import Path
from typing import Any, TypeVar

import ipywidgets as w
from PIL import Image

from ..files import png_bytes
from ..reports.media import display_png
from ..settings import UNIT_SPECS, ControlUnit
from .state import check_unit_range
from .views import caption_html

PLACEHOLDER_SIDE = 192

W = TypeVar("W", bound=w.Widget)


def classed(widget: W, *classes: str) -> W:
    """The widget with the given CSS classes added."""
    for css in classes:
        widget.add_class(css)
    return widget


def placeholder() -> bytes:
    """A transparent PNG for picture boxes that have nothing to show yet: the box's theme colour shows through."""
    return png_bytes(Image.new("RGBA", (8, 8), (0, 0, 0, 0)))


def thumb_image(css: str, side: int = PLACEHOLDER_SIDE) -> w.Image:
    """A picture widget in a fixed square box: any picture fits inside at its own aspect, so pictures meant to be
    compared always show at the same scale (a VBox would stretch them to their caption's width)."""
    image = w.Image(value=placeholder(), format="png",
                    layout=w.Layout(width=f"{side}px", height=f"{side}px", min_width=f"{side}px",
                                    object_fit="contain"))
    return classed(image, css, "zr-thumb-img")


def section(title: str) -> w.HTML:
    return w.HTML(f'<h4 style="margin:10px 0 4px 0">{html.escape(title)}</h4>')


def captioned(widget: w.Widget, caption: str | w.HTML) -> w.VBox:
    """A picture with a small centred caption under it; the box keeps the picture's own width."""
    label = caption if isinstance(caption, w.HTML) else w.HTML(caption_html(caption))
    return classed(w.VBox([widget, label], layout=w.Layout(align_items="center", margin="0 8px 4px 0")), "zr-thumb")


class UnitRow:
    """One control kind: on/off, scale, guidance start/end, detector method, its latest map."""

    def __init__(self, kind: str, provider: Any, unit: ControlUnit | None, default_method: str | None = None) -> None:
        self.kind, self.provider = kind, provider
        self.default_method = default_method or provider.default_method
        default = unit or ControlUnit(kind)
        self.label = provider.label
        self.enabled = classed(w.Checkbox(value=unit is not None, description=provider.label, indent=False,
                                          layout=w.Layout(width="170px", min_width="120px")),
                               f"zr-unit-{kind}-enabled")
        self.scale = self._slider("scale", default.scale)
        self.start = self._slider("start", default.start)
        self.end = self._slider("end", default.end)
        methods = [(spec.label + (" (needs weights)" if spec.needs_weights else ""), name)
                   for name, spec in provider.methods.items()]
        self.method = classed(w.Dropdown(options=methods, value=default.method or self.default_method,
                                         layout=w.Layout(width="auto", min_width="200px", max_width="360px")),
                              f"zr-unit-{kind}-method")
        self.map_image = thumb_image(f"zr-unit-{kind}-map", 96)
        self.message = classed(w.HTML(""), "zr-field-message")
        self.preflight = classed(w.HTML(""), f"zr-unit-{kind}-preflight")
        # A map the user gave (settings controls=KIND@PATH, e.g. a run sent back to Controls): kept, and said
        self.given_image: str | None = None
        self.given_note = classed(w.HTML(""), f"zr-unit-{kind}-given")
        for widget in (self.start, self.end):
            widget.observe(lambda change: self.validate(), names="value")
        # Rows wrap instead of squeezing: sliders keep a usable minimum width in a narrow notebook.
        wrap = w.Layout(flex_flow="row wrap", align_items="center")
        controls = w.VBox([w.HBox([self.scale, self.start, self.end], layout=wrap),
                           w.HBox([self.method, self.message], layout=wrap), self.given_note, self.preflight],
                          layout=w.Layout(flex="1 1 420px", min_width="0"))
        self.row = classed(w.HBox([self.enabled, controls, self.map_image], layout=wrap), f"zr-unit-{kind}")
        self.enabled.observe(lambda change: self._show_enabled(), names="value")
        self._show_enabled()

    def _show_enabled(self) -> None:
        """An unchecked unit greys out its controls (they stay editable, for turning it back on)."""
        if self.enabled.value:
            self.row.remove_class("zr-unit-off")
        else:
            self.row.add_class("zr-unit-off")

    def _slider(self, name: str, value: float) -> w.FloatSlider:
        spec = UNIT_SPECS[name]
        slider = w.FloatSlider(value=value, min=spec.minimum, max=spec.maximum, step=spec.step, description=name,
                               continuous_update=False, readout_format=".2f", tooltip=spec.help,
                               style={"description_width": "40px"},
                               layout=w.Layout(width="230px", min_width="220px", flex="1 1 230px"))
        return classed(slider, f"zr-unit-{self.kind}-{name}")

    def apply(self, unit: ControlUnit | None) -> None:
        self.enabled.value = unit is not None
        if unit is not None:
            self.scale.value, self.start.value, self.end.value = unit.scale, unit.start, unit.end
            self.method.value = unit.method or self.default_method
        self.given_image = unit.image if unit is not None else None
        self.given_note.value = "" if self.given_image is None else (
            f'<span class="zr-field-note">own map {html.escape(Path(self.given_image).name)}: no detector runs '
            "for this unit</span>")

    def validate(self) -> str | None:
        problem = check_unit_range(self.start.value, self.end.value)
        self.message.value = "" if problem is None else \
            f'<span class="zr-invalid zr-msg-error">⚠ {html.escape(problem)}</span>'
        return problem

    def unit(self) -> ControlUnit | None:
        if not self.enabled.value:
            return None
        return ControlUnit(self.kind, float(self.scale.value), float(self.start.value), float(self.end.value),
                           method=self.method.value, image=self.given_image)

    def show_map(self, image: Image.Image | None) -> None:
        self.map_image.value = placeholder() if image is None else display_png(image, 96)


__all__ = ["PLACEHOLDER_SIDE", "UnitRow", "captioned", "classed", "placeholder", "section", "thumb_image"]
