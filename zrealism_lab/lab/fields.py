"""Setting widgets made from the same Spec table the CLI and StaticSettings.validated() use, so a widget's range,
step and options can never disagree with what a run accepts."""
from __future__ import annotations

from typing import Any, Callable, Sequence

import ipywidgets as w

from ..spec import Spec
from .state import check_field, parse_number

LABEL_WIDTH = "150px"


def _label(text: str, help_text: str) -> w.HTML:
    return w.HTML(f'<span title="{_escape(help_text)}">{_escape(text)}</span>',
                  layout=w.Layout(width=LABEL_WIDTH, min_width=LABEL_WIDTH))


def _escape(text: str) -> str:
    import html

    return html.escape(str(text), quote=True)


def _decimals(step: float | None) -> int:
    if not step:
        return 2
    text = f"{step:g}"
    return len(text.split(".")[1]) if "." in text else 0


def input_for(spec: Spec, value: Any, *, kind: str = "auto", options: Sequence[Any] | None = None) -> w.ValueWidget:
    """The input widget for one spec. ``kind``: auto, slider, text, textarea or dropdown."""
    if spec.kind is bool:
        return w.Checkbox(value=bool(value), indent=False)
    if spec.choices is not None or options is not None:
        choices = list(options) if options is not None else list(spec.choices())
        return w.Dropdown(options=choices, value=value)
    if spec.optional and spec.kind in (int, float):
        # Text, not IntText: an optional number must be able to be empty ("auto")
        return w.Text(value="" if value is None else str(value), placeholder="auto",
                      layout=w.Layout(width="140px"))
    if spec.kind is str:
        if kind == "textarea":
            return w.Textarea(value=value or "", rows=3, layout=w.Layout(width="100%"))
        return w.Text(value=value or "")
    if kind == "slider" and spec.minimum is not None and spec.maximum is not None:
        if spec.kind is int:
            return w.IntSlider(value=int(value), min=int(spec.minimum), max=int(spec.maximum),
                               step=int(spec.step or 1), continuous_update=False)
        return w.FloatSlider(value=float(value), min=float(spec.minimum), max=float(spec.maximum),
                             step=float(spec.step or 0.01), continuous_update=False,
                             readout_format=f".{_decimals(spec.step)}f")
    # Free-entry numbers in Text boxes (not IntText/FloatText, not bounded widgets): IntText drops the '.' of "3.7"
    # and gives 37, a bounded widget clamps; here what was typed is kept and the message says what is wrong.
    return w.Text(value=str(value), layout=w.Layout(width="140px"))


class SpecField:
    """A labelled input with its validation message next to it; ``row`` is what goes in the layout."""

    def __init__(self, spec: Spec, value: Any, *, kind: str = "auto", label: str | None = None,
                 options: Sequence[Any] | None = None, css: str | None = None,
                 extra: Sequence[w.Widget] = ()) -> None:
        self.spec = spec
        self.input = input_for(spec, value, kind=kind, options=options)
        self.input.tooltip = f"{spec.help} ({spec.allowed()})"
        self.message = w.HTML("", layout=w.Layout(min_width="0"))
        self.message.add_class("zr-field-message")
        self.input.add_class(f"zr-field-{spec.name.replace('_', '-')}")
        if css:
            self.input.add_class(css)
        name = label if label is not None else spec.name.replace("_", " ")
        self.label = name
        self.row = w.HBox([_label(name, f"{spec.help} ({spec.allowed()})"), self.input, *extra, self.message],
                          layout=w.Layout(align_items="center", flex_flow="row wrap"))
        self._extra_check: Callable[[Any], str | None] | None = None
        self._note: Callable[[Any], str | None] | None = None
        self.input.observe(lambda change: self.validate(), names="value")

    @property
    def value(self) -> Any:
        value = self.input.value
        if self.spec.optional and (value is None or str(value).strip() == ""):
            return None
        if self.spec.kind in (int, float) and isinstance(value, str):
            return parse_number(self.spec, value)[0]  # the text itself when it is no number: validate() says why
        return value

    @value.setter
    def value(self, new: Any) -> None:
        if isinstance(self.input, w.Text) and self.spec.kind in (int, float):
            new = "" if new is None else str(new)
        self.input.value = new

    def set_extra_check(self, check: Callable[[Any], str | None]) -> None:
        """A rule beyond the spec (e.g. a prompt's character limit); runs after the spec's own check."""
        self._extra_check = check

    def validate(self) -> str | None:
        """Check the current value; show and return the message (None when fine)."""
        problem = None
        if self.spec.kind in (int, float) and isinstance(self.input.value, str):
            problem = parse_number(self.spec, self.input.value)[1]
        problem = problem or check_field(self.spec, self.value)
        if problem is None and self._extra_check is not None:
            problem = self._extra_check(self.value)
        self.show(problem)
        return problem

    def set_note(self, note: Callable[[Any], str | None]) -> None:
        """A remark shown beside a valid value (what a size becomes, say); never an error."""
        self._note = note
        self.validate()

    def show(self, problem: str | None) -> None:
        if problem:
            problem = problem.replace("(or none)", "(or empty for auto)")  # the box's placeholder says "auto"
            self.message.value = f'<span class="zr-invalid zr-msg-error">⚠ {_escape(problem)}</span>'
            return
        note = self._note(self.value) if self._note is not None else None
        self.message.value = f'<span class="zr-field-note">{_escape(note)}</span>' if note else ""
