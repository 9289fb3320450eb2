"""Small widget pieces the lab's tabs are made of: CSS-classed widgets (the browser tests' hooks), the grey
placeholder picture, section titles, and one control unit's row."""
from __future__ import annotations

import html
from typing import Any, TypeVar

import ipywidgets as w
from PIL import Image

from ..reports.media import display_png
from ..settings import UNIT_SPECS, ControlUnit
from .state import check_unit_range

PLACEHOLDER_SIDE = 192

W = TypeVar("W", bound=w.Widget)


def classed(widget: W, *classes: str) -> W:
    """The widget with the given CSS classes added."""
    for css in classes:
        widget.add_class(css)
    return widget


def placeholder(colour: tuple[int, int, int] = (225, 225, 225)) -> bytes:
    """A plain grey PNG for picture widgets that have nothing to show yet."""
    return display_png(Image.new("RGB", (8, 8), colour), PLACEHOLDER_SIDE)


def section(title: str) -> w.HTML:
    return w.HTML(f'<h4 style="margin:10px 0 4px 0">{html.escape(title)}</h4>')


def captioned(widget: w.Widget, caption: str) -> w.VBox:
    """A picture with a small centred caption under it."""
    return w.VBox([widget, w.HTML(f'<div style="text-align:center;font-size:12px">{html.escape(caption)}</div>')])


class UnitRow:
    """One control kind: on/off, scale, guidance start/end, detector method, its latest map."""

    def __init__(self, kind: str, provider: Any, unit: ControlUnit | None, default_method: str | None = None) -> None:
        self.kind, self.provider = kind, provider
        self.default_method = default_method or provider.default_method
        default = unit or ControlUnit(kind)
        self.enabled = classed(w.Checkbox(value=unit is not None, description=provider.label, indent=False,
                                          layout=w.Layout(width="170px")), f"zr-unit-{kind}-enabled")
        self.scale = self._slider("scale", default.scale)
        self.start = self._slider("start", default.start)
        self.end = self._slider("end", default.end)
        methods = [(spec.label + (" (needs weights)" if spec.needs_weights else ""), name)
                   for name, spec in provider.methods.items()]
        self.method = classed(w.Dropdown(options=methods, value=default.method or self.default_method,
                                         layout=w.Layout(width="320px")), f"zr-unit-{kind}-method")
        self.map_image = classed(w.Image(value=placeholder(), format="png", width="96", height="96"),
                                 f"zr-unit-{kind}-map")
        self.message = classed(w.HTML(""), "zr-field-message")
        for widget in (self.start, self.end):
            widget.observe(lambda change: self.validate(), names="value")
        controls = w.VBox([w.HBox([self.scale, self.start, self.end]), w.HBox([self.method, self.message])])
        self.row = classed(w.HBox([self.enabled, controls, self.map_image], layout=w.Layout(align_items="center")),
                           f"zr-unit-{kind}")

    def _slider(self, name: str, value: float) -> w.FloatSlider:
        spec = UNIT_SPECS[name]
        slider = w.FloatSlider(value=value, min=spec.minimum, max=spec.maximum, step=spec.step, description=name,
                               continuous_update=False, readout_format=".2f", tooltip=spec.help,
                               style={"description_width": "40px"}, layout=w.Layout(width="230px"))
        return classed(slider, f"zr-unit-{self.kind}-{name}")

    def apply(self, unit: ControlUnit | None) -> None:
        self.enabled.value = unit is not None
        if unit is not None:
            self.scale.value, self.start.value, self.end.value = unit.scale, unit.start, unit.end
            self.method.value = unit.method or self.default_method

    def validate(self) -> str | None:
        problem = check_unit_range(self.start.value, self.end.value)
        self.message.value = "" if problem is None else \
            f'<span class="zr-invalid" style="color:#b00020">⚠ {html.escape(problem)}</span>'
        return problem

    def unit(self) -> ControlUnit | None:
        if not self.enabled.value:
            return None
        return ControlUnit(self.kind, float(self.scale.value), float(self.start.value), float(self.end.value),
                           method=self.method.value)

    def show_map(self, image: Image.Image | None) -> None:
        self.map_image.value = placeholder() if image is None else display_png(image, 96)


__all__ = ["PLACEHOLDER_SIDE", "UnitRow", "captioned", "classed", "placeholder", "section"]
