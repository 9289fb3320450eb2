"""The interactive lab: ipywidgets over the same functions the CLI calls (run_static, understand_source).

Painting the lab loads no model and imports no torch; the model loads on the first Run, on a worker thread, with
"loading model ..." in the progress line. Every widget range and option comes from the setting specs and the
registries, so the widgets accept exactly what the CLI accepts.
"""
from __future__ import annotations

import html
import json
import os
import secrets
import sys
from pathlib import Path
from typing import Any, Callable

import ipywidgets as w
from PIL import Image

from ..errors import SettingsError, ZRealismError
from ..progress import StepEvent
from ..settings import SPECS, UNIT_SPECS, ControlUnit, StaticSettings
from .fields import SpecField
from ..reports.media import display_png, download_link
from .runner import JobContext, LatestOnly, Outcome, Runner
from .state import BUSY_MESSAGE, Phase, RunHistory, Throttle, check_unit_range, format_seconds, progress_view, \
    summarize_error
from .views import badge_html, comparison, component_table_html, gallery, message_html, metric_table_html, \
    notes_html, plot_pictures, pre_html

UPLOAD_VALUE = "__upload__"
# Uploaded (or path-given) source files above this size are refused before they are read or decoded; the pixel
# cap of intake then guards the decode itself.
MAX_UPLOAD_BYTES = 256 * 2**20
PLACEHOLDER_SIDE = 192


def _placeholder(text_colour: tuple[int, int, int] = (225, 225, 225)) -> bytes:
    return display_png(Image.new("RGB", (8, 8), text_colour), PLACEHOLDER_SIDE)


def _classed(widget: w.Widget, *classes: str) -> w.Widget:
    for css in classes:
        widget.add_class(css)
    return widget


def _section(title: str) -> w.HTML:
    return w.HTML(f'<h4 style="margin:10px 0 4px 0">{html.escape(title)}</h4>')


class UnitRow:
    """One control kind: on/off, scale, guidance start/end, detector method, its latest map."""

    def __init__(self, kind: str, provider: Any, unit: ControlUnit | None) -> None:
        self.kind, self.provider = kind, provider
        default = unit or ControlUnit(kind)
        self.enabled = _classed(w.Checkbox(value=unit is not None, description=provider.label, indent=False,
                                           layout=w.Layout(width="170px")), f"zr-unit-{kind}-enabled")
        self.scale = self._slider("scale", default.scale)
        self.start = self._slider("start", default.start)
        self.end = self._slider("end", default.end)
        methods = [(spec.label + (" (needs weights)" if spec.needs_weights else ""), name)
                   for name, spec in provider.methods.items()]
        self.method = _classed(w.Dropdown(options=methods, value=default.method or provider.default_method,
                                          layout=w.Layout(width="320px")), f"zr-unit-{kind}-method")
        self.map_image = _classed(w.Image(value=_placeholder(), format="png", width="96", height="96"),
                                  f"zr-unit-{kind}-map")
        self.message = _classed(w.HTML(""), "zr-field-message")
        for widget in (self.start, self.end):
            widget.observe(lambda change: self.validate(), names="value")
        controls = w.VBox([w.HBox([self.scale, self.start, self.end]), w.HBox([self.method, self.message])])
        self.row = _classed(w.HBox([self.enabled, controls, self.map_image], layout=w.Layout(align_items="center")),
                            f"zr-unit-{kind}")

    def _slider(self, name: str, value: float) -> w.FloatSlider:
        spec = UNIT_SPECS[name]
        slider = w.FloatSlider(value=value, min=spec.minimum, max=spec.maximum, step=spec.step, description=name,
                               continuous_update=False, readout_format=".2f", tooltip=spec.help,
                               style={"description_width": "40px"}, layout=w.Layout(width="230px"))
        return _classed(slider, f"zr-unit-{self.kind}-{name}")

    def apply(self, unit: ControlUnit | None) -> None:
        self.enabled.value = unit is not None
        if unit is not None:
            self.scale.value, self.start.value, self.end.value = unit.scale, unit.start, unit.end
            self.method.value = unit.method or self.provider.default_method

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
        self.map_image.value = _placeholder() if image is None else display_png(image, 96)


class Lab:
    """The lab app. ``Lab(preset="tiny", size=64, steps=6)`` starts with those settings; any StaticSettings field
    can be given the same way. Runs write their folders under ``out_dir`` (None: no run folders)."""

    def __init__(self, preset: str = "realistic-vision", *, source: str | os.PathLike | bytes = "transparent",
                 out_dir: str | os.PathLike | None = "runs", preview_every: int = 2, device: str = "auto",
                 updates_per_second: float = 10.0, **settings: Any) -> None:
        from ..models.modelset import PRESETS

        self._base = StaticSettings.from_dict(settings).validated()
        self.presets = tuple(PRESETS) + (() if preset in PRESETS else (str(preset),))
        self.out_dir = None if out_dir is None else Path(out_dir)
        self.preview_every = int(preview_every)
        self.device = device
        self.runner = Runner()
        self.history = RunHistory()
        self._throttle = Throttle(1.0 / updates_per_second)
        self._stage: str | None = None
        self._engine: Any = None
        self._source_label, self._source_value = "", None
        self._upload: tuple[str, bytes] | None = None
        self._shown: Any = None  # the HistoryEntry on the results tab
        self._analysis_jobs, self._status_jobs = LatestOnly("analysis"), LatestOnly("model-status")
        self.temporal: Any = None

        self._build(preset)
        self.runner.state.subscribe(self._on_phase)
        self._on_phase(self.runner.state.phase, "")
        self.set_source(source)
        self.refresh_model_status()

    # ------------------------------------------------------------------------------------------- building
    def _build(self, preset: str) -> None:
        self._build_run_bar()
        source_tab = self._build_source_tab()
        model_tab = self._build_model_tab(preset)
        controls_tab = self._build_controls_tab(preset)
        results_tab = self._build_results_tab()
        history_tab = self._build_history_tab()
        temporal_tab = self._build_temporal_tab()
        titles = ("Source", "Model", "Controls", "Results", "History", "Temporal")
        self.tabs = _classed(w.Tab(children=[source_tab, model_tab, controls_tab, results_tab, history_tab,
                                             temporal_tab], titles=titles), "zr-tabs")
        header = w.HTML('<h3 style="margin:4px 0">Z-Realism Lab</h3>')
        self.widget = _classed(w.VBox([header, self.run_bar, self.tabs]), "zr-lab")

    def _build_run_bar(self) -> None:
        self.run_button = _classed(w.Button(description="Run", button_style="primary", icon="play",
                                            tooltip="generate a still with the settings of the Controls tab"),
                                   "zr-run-button")
        self.cancel_button = _classed(w.Button(description="Cancel", button_style="warning", icon="stop",
                                               disabled=True, tooltip="stop after the current denoising step"),
                                      "zr-cancel-button")
        self.state_badge = _classed(w.HTML(badge_html("idle")), "zr-state")
        self.progress = _classed(w.IntProgress(value=0, min=0, max=1, layout=w.Layout(width="260px")),
                                 "zr-progress")
        self.progress_text = _classed(w.HTML(""), "zr-progress-text")
        self.message = _classed(w.HTML(""), "zr-message")
        self.error_text = _classed(w.HTML(""), "zr-error-text")
        self.error_details = _classed(w.Accordion(children=[self.error_text], titles=("error details",),
                                                  selected_index=None, layout=w.Layout(display="none")),
                                      "zr-error-details")
        self.preview_image = _classed(w.Image(value=_placeholder(), format="png"), "zr-preview")
        self.output_image = _classed(w.Image(value=_placeholder(), format="png"), "zr-output")
        self.run_button.on_click(lambda _: self.run())
        self.cancel_button.on_click(lambda _: self.cancel())
        live = w.HBox([
            w.VBox([self.preview_image, w.HTML('<div style="text-align:center;font-size:12px">live preview '
                                               f'(every {self.preview_every} steps)</div>')]),
            w.VBox([self.output_image, w.HTML('<div style="text-align:center;font-size:12px">output</div>')]),
        ])
        buttons = w.HBox([self.run_button, self.cancel_button, self.state_badge, self.progress, self.progress_text],
                         layout=w.Layout(align_items="center"))
        self.run_bar = _classed(w.VBox([buttons, self.message, self.error_details, live]), "zr-run-bar")

    def _build_source_tab(self) -> w.Widget:
        from ..source.samples import SAMPLE_NAMES

        self.sample_picker = _classed(w.Dropdown(options=[(f"sample: {n}", n) for n in SAMPLE_NAMES],
                                                 description="source", layout=w.Layout(width="300px")),
                                      "zr-sample-picker")
        self.upload = _classed(w.FileUpload(accept="image/*", multiple=False, description="Upload image"),
                               "zr-upload")
        self.source_message = _classed(w.HTML(""), "zr-source-message")
        self.source_image = _classed(w.Image(value=_placeholder(), format="png"), "zr-source-image")
        self.mask_image = _classed(w.Image(value=_placeholder(), format="png"), "zr-mask-overlay")
        self.analysis_text = _classed(w.HTML("<i>analysing ...</i>"), "zr-analysis")
        self.sample_picker.observe(self._on_sample, names="value")
        self.upload.observe(self._on_upload, names="value")
        pictures = w.HBox([
            w.VBox([self.source_image, w.HTML('<div style="text-align:center;font-size:12px">source</div>')]),
            w.VBox([self.mask_image, w.HTML('<div style="text-align:center;font-size:12px">subject mask '
                                            '(background tinted)</div>')]),
            self.analysis_text,
        ])
        return w.VBox([w.HBox([self.sample_picker, self.upload]), self.source_message, pictures])

    def _build_model_tab(self, preset: str) -> w.Widget:
        from ..models.modelset import RANDOM_WEIGHTS_NOTE

        self.preset_picker = _classed(w.Dropdown(options=list(self.presets), value=str(preset), description="preset"),
                                      "zr-preset")
        self.model_status = _classed(w.HTML("<i>checking components ...</i>"), "zr-model-status")
        self.device_info = _classed(w.HTML(""), "zr-device")
        self.check_device_button = _classed(w.Button(description="Check device", icon="microchip",
                                                     tooltip="detect the device and dtype now (imports torch)"),
                                            "zr-check-device")
        self.model_note = _classed(w.HTML(f'<div style="color:#6a1b9a">{html.escape(RANDOM_WEIGHTS_NOTE)}</div>'),
                                   "zr-tiny-note")
        self._tiny_note = RANDOM_WEIGHTS_NOTE
        self.preset_picker.observe(self._on_preset, names="value")
        self.check_device_button.on_click(lambda _: self.refresh_model_status(check_device=True))
        return w.VBox([self.preset_picker, self.model_note, _section("Components"), self.model_status,
                       _section("Device"), w.HBox([self.device_info, self.check_device_button])])

    def _build_controls_tab(self, preset: str) -> w.Widget:
        from ..colour import COLOUR_METHODS
        from ..control import CONTROL_PROVIDERS
        from ..profiles import load_profiles
        from ..prompts import validate_prompt
        from ..schedulers import SCHEDULERS

        base = self._base
        f: dict[str, SpecField] = {}
        try:
            self.profiles = load_profiles()
            profile_problem = ""
        except ZRealismError as exc:  # a broken user profile folder must not stop the lab from painting
            self.profiles, profile_problem = {}, str(exc)
        # "" stands for no profile: a Dropdown shows a None value as no selection at all
        profile_options = [("none", "")] + [(name, name) for name in sorted(self.profiles)]
        f["profile"] = SpecField(SPECS["profile"], base.profile if base.profile in self.profiles else "",
                                 options=profile_options)
        self.profile_info = _classed(w.HTML(message_html(profile_problem, "warn")), "zr-profile-info")
        f["prompt"] = SpecField(SPECS["prompt"], base.prompt, kind="textarea")
        f["negative_prompt"] = SpecField(SPECS["negative_prompt"], base.negative_prompt, kind="textarea")
        for name in ("prompt", "negative_prompt"):
            f[name].set_extra_check(_rule(validate_prompt, name))
        f["strength"] = SpecField(SPECS["strength"], base.strength, kind="slider")
        f["steps"] = SpecField(SPECS["steps"], base.steps)
        f["cfg"] = SpecField(SPECS["cfg"], base.cfg, kind="slider", label="CFG")
        self.randomise_button = _classed(w.Button(description="", icon="dice", tooltip="draw a random seed",
                                                  layout=w.Layout(width="40px")), "zr-randomise-seed")
        f["seed"] = SpecField(SPECS["seed"], base.seed, extra=[self.randomise_button])
        f["scheduler"] = SpecField(SPECS["scheduler"], base.scheduler,
                                   options=[(choice.label, name) for name, choice in SCHEDULERS.items()])
        f["size"] = SpecField(SPECS["size"], base.size, label="size (long side)")
        f["colour_method"] = SpecField(SPECS["colour_method"], base.colour_method,
                                       options=COLOUR_METHODS.names(), label="colour anchoring")
        f["colour_strength"] = SpecField(SPECS["colour_strength"], base.colour_strength, kind="slider",
                                         label="colour strength")
        self.fields = f
        self.randomise_button.on_click(lambda _: self.randomise_seed())
        f["profile"].input.observe(self._on_profile, names="value")

        kinds = [k for k in CONTROL_PROVIDERS.names() if k in UNIT_SPECS["kind"].choices()]
        units = base.controls if base.controls is not None else self._default_units(preset)
        defaults = {u.kind: u for u in units}
        self.unit_rows = {kind: UnitRow(kind, CONTROL_PROVIDERS.get(kind), defaults.get(kind)) for kind in kinds}
        self.maps_button = _classed(w.Button(description="Preview control maps", icon="eye",
                                             layout=w.Layout(width="auto"),
                                             tooltip="detect the maps of the enabled kinds (no diffusion model)"),
                                    "zr-maps-button")
        self.maps_button.on_click(lambda _: self.preview_maps())
        return w.VBox([
            _section("Character profile and prompts"), f["profile"].row, self.profile_info, f["prompt"].row,
            f["negative_prompt"].row,
            _section("Control units (MultiControlNet)"), *[row.row for row in self.unit_rows.values()],
            self.maps_button,
            _section("Generation"), f["strength"].row, f["steps"].row, f["cfg"].row, f["seed"].row,
            f["scheduler"].row, f["size"].row,
            _section("Colour anchoring"), f["colour_method"].row, f["colour_strength"].row,
        ])

    def _build_results_tab(self) -> w.Widget:
        self.results_title = _classed(w.HTML("<i>no run yet: press Run</i>"), "zr-results-title")
        self.results_images = _classed(w.HBox([], layout=w.Layout(flex_flow="row wrap")), "zr-results-images")
        self.results_notes = _classed(w.HTML(""), "zr-results-notes")
        self.results_metrics = _classed(w.HTML(""), "zr-metrics")
        self.results_plots = _classed(w.HBox([], layout=w.Layout(flex_flow="row wrap")), "zr-plots")
        default_export = (self.out_dir or Path("runs")) / "exports"
        self.export_dir = _classed(w.Text(value=str(default_export), description="export to",
                                          layout=w.Layout(width="420px")), "zr-export-dir")
        self.save_png_button = _classed(w.Button(description="Save PNG", icon="image"), "zr-save-png")
        self.save_record_button = _classed(w.Button(description="Save record", icon="file"), "zr-save-record")
        self.report_button = _classed(w.Button(description="Write report", icon="book",
                                               disabled=not _reports_available(),
                                               tooltip="a report notebook of this run (zrealism_lab.reports)"),
                                      "zr-save-report")
        self.export_message = _classed(w.HTML(""), "zr-export-message")
        self.downloads = _classed(w.HTML(""), "zr-downloads")
        self.save_png_button.on_click(lambda _: self._export(self.save_png))
        self.save_record_button.on_click(lambda _: self._export(self.save_record))
        self.report_button.on_click(lambda _: self.write_report())
        exports = w.VBox([w.HBox([self.export_dir, self.save_png_button, self.save_record_button,
                                  self.report_button]), self.downloads, self.export_message])
        return w.VBox([self.results_title, self.results_images, self.results_notes, _section("Metrics"),
                       self.results_metrics, self.results_plots, _section("Save and export"), exports])

    def _build_history_tab(self) -> w.Widget:
        self.history_list = _classed(w.Select(options=[], rows=8, layout=w.Layout(width="100%")), "zr-history")
        self.reopen_button = _classed(w.Button(description="Reopen", icon="folder-open",
                                               tooltip="show the selected run on the Results tab"), "zr-reopen")
        wide = {"layout": w.Layout(width="42%")}
        self.compare_a = _classed(w.Dropdown(options=[], description="compare", **wide), "zr-compare-a")
        self.compare_b = _classed(w.Dropdown(options=[], description="with", **wide), "zr-compare-b")
        self.compare_button = _classed(w.Button(description="Compare", icon="columns"), "zr-compare")
        self.compare_view = _classed(w.VBox([]), "zr-compare-view")
        self.history_message = _classed(w.HTML(""), "zr-history-message")
        self.reopen_button.on_click(lambda _: self._reopen_selected())
        self.compare_button.on_click(lambda _: self._compare_selected())
        return w.VBox([self.history_list, w.HBox([self.reopen_button]), self.history_message,
                       _section("Compare two runs"), w.HBox([self.compare_a, self.compare_b, self.compare_button]),
                       self.compare_view])

    def _build_temporal_tab(self) -> w.Widget:
        from .temporal_tab import TemporalPanel

        self.temporal = TemporalPanel(self)
        return self.temporal.widget

    # ------------------------------------------------------------------------------------------- display
    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.widget._repr_mimebundle_(**kwargs)

    def display(self) -> None:
        from IPython.display import display

        display(self.widget)

    # ------------------------------------------------------------------------------------------- source
    def set_source(self, source: str | os.PathLike | bytes) -> None:
        """A sample name, an image path or an image file's bytes; decode problems show on the Source tab."""
        from ..source.samples import SAMPLE_NAMES

        if isinstance(source, str) and source in SAMPLE_NAMES:
            if self.sample_picker.value == source:
                self._use_sample(source)
            else:
                self.sample_picker.value = source  # the observer switches the source
            return
        if isinstance(source, (bytes, bytearray)):
            self._use_upload("uploaded image", bytes(source))
            return
        path = Path(source).expanduser()
        if path.is_file() and path.stat().st_size > MAX_UPLOAD_BYTES:
            self.source_message.value = message_html(f"{path.name}: {_too_large(path.stat().st_size)}", "error")
            return
        self._use_upload(path.name, path.read_bytes() if path.is_file() else b"",
                         missing=str(source) if not path.is_file() else None)

    def _on_sample(self, change: dict) -> None:
        if change["new"] != UPLOAD_VALUE:
            self._use_sample(change["new"])

    def _use_sample(self, name: str) -> None:
        from ..source.samples import sample_path

        self._set_source(f"sample {name}", sample_path(name))

    def _on_upload(self, change: dict) -> None:
        files = change["new"]
        if not files:
            return
        item = files[0]
        content = item.get("content", b"")
        if len(content) > MAX_UPLOAD_BYTES:  # before copying or decoding it
            self.source_message.value = message_html(f"{item.get('name', 'upload')}: {_too_large(len(content))}",
                                                     "error")
            return
        self._use_upload(item.get("name", "upload"), bytes(content))

    def _use_upload(self, name: str, data: bytes, missing: str | None = None) -> None:
        from ..errors import IntakeError
        from ..source.intake import load_image

        try:
            if missing is not None:
                raise IntakeError(f"no such file: {missing}. Give an image file path, a sample name or bytes.")
            if len(data) > MAX_UPLOAD_BYTES:
                raise IntakeError(_too_large(len(data)))
            load_image(data)  # decode now so a bad file is reported at once, on the Source tab
        except ZRealismError as exc:
            self.source_message.value = message_html(f"{name}: {exc}", "error")
            return
        self._upload = (name, data)
        options = [o for o in self.sample_picker.options if o[1] != UPLOAD_VALUE]
        self.sample_picker.options = options + [(f"uploaded: {name}", UPLOAD_VALUE)]
        self.sample_picker.value = UPLOAD_VALUE
        self._set_source(f"upload {name}", data)

    def _set_source(self, label: str, value: Any) -> None:
        self._source_label, self._source_value = label, value
        self.source_message.value = message_html(f"source: {label}", "info")
        self.analysis_text.value = "<i>analysing the background ...</i>"
        self._analysis_jobs.submit(lambda: _analyse(value), self._show_analysis, self._analysis_failed)

    def _show_analysis(self, found: tuple[Any, Any]) -> None:
        loaded, analysis = found
        self.source_image.value = display_png(_flatten(loaded.image))
        self.mask_image.value = display_png(analysis.overlay(loaded.image))
        lines = [f"<b>background</b>: {html.escape(analysis.kind)}",
                 f"<b>confidence</b>: {analysis.confidence:.2f}",
                 f"<b>subject</b>: {analysis.mask_fraction:.0%} of the image",
                 f"<b>size</b>: {loaded.size[0]}×{loaded.size[1]} ({html.escape(str(loaded.format))}"
                 + (", with alpha" if loaded.has_alpha else "") + ")"]
        lines += [f'<span style="color:#ef6c00">⚠ {html.escape(str(n))}</span>' for n in analysis.warnings]
        self.analysis_text.value = '<div style="margin-left:12px">' + "<br>".join(lines) + "</div>"

    def _analysis_failed(self, exc: BaseException) -> None:
        self.analysis_text.value = ""
        self.source_message.value = message_html(summarize_error(exc).short, "error")

    # ------------------------------------------------------------------------------------------- model
    def _default_units(self, preset: str) -> tuple[ControlUnit, ...]:
        from ..models import modelset

        # The preset's documented default units, without building the tiny bundle just to read them.
        return modelset.default_controls_for(preset if preset in ("tiny", "realistic-vision") else "realistic-vision")

    def _on_preset(self, change: dict) -> None:
        defaults = {u.kind: u for u in self._default_units(change["new"])}
        for kind, row in self.unit_rows.items():
            row.apply(defaults.get(kind))
        self._engine = None
        self.refresh_model_status()

    @property
    def preset(self) -> str:
        return self.preset_picker.value

    def refresh_model_status(self, check_device: bool = False) -> None:
        preset = self.preset
        self.model_note.layout.display = "" if preset == "tiny" else "none"
        self.model_status.value = "<i>checking components ...</i>"
        engine = self._engine

        def work() -> tuple[str, str]:
            return _component_report(preset), _device_report(engine, self.device, check_device)

        def apply(found: tuple[str, str]) -> None:
            self.model_status.value, self.device_info.value = found

        def failed(exc: BaseException) -> None:
            self.model_status.value = message_html(summarize_error(exc).short, "error")

        self._status_jobs.submit(work, apply, failed)

    # ------------------------------------------------------------------------------------------- settings
    def randomise_seed(self) -> int:
        spec = SPECS["seed"]
        seed = secrets.randbelow(int(spec.maximum) + 1)
        self.fields["seed"].value = seed
        return seed

    def _on_profile(self, change: dict) -> None:
        profile = self.profiles.get(change["new"]) if change["new"] else None
        if profile is None:
            self.profile_info.value = ""
            return
        if profile.strength is not None:
            self.fields["strength"].value = profile.strength
        for kind, scale in profile.control_scales.items():
            if kind in self.unit_rows:
                self.unit_rows[kind].scale.value = scale
        text = profile.description or profile.prompt
        self.profile_info.value = message_html(f"{profile.name}: {text} (its prompt is added to yours at run time)")

    def current_settings(self) -> StaticSettings:
        """The settings the widgets show, checked like the CLI checks them. Raises SettingsError, and marks the
        field, when something is out of range."""
        problems = {name: field.validate() for name, field in self.fields.items()}
        unit_problems = {kind: row.validate() for kind, row in self.unit_rows.items() if row.enabled.value}
        for name, problem in problems.items():
            if problem:
                raise SettingsError(name, self.fields[name].value, problem.removeprefix("expected "))
        for kind, problem in unit_problems.items():
            if problem:
                raise SettingsError(f"controls[{kind}].end", self.unit_rows[kind].end.value,
                                    f"a value greater than its start ({self.unit_rows[kind].start.value:g})")
        values = {name: field.value for name, field in self.fields.items()}
        units = tuple(u for u in (row.unit() for row in self.unit_rows.values()) if u is not None)
        settings = self._base.replace(**values, controls=units)
        try:
            return settings.validated()
        except SettingsError as exc:
            if exc.name in self.fields:
                self.fields[exc.name].show(f"expected {exc.allowed}")
            raise

    # ------------------------------------------------------------------------------------------- runs
    def run(self) -> bool:
        """Start a generation (the Run button). False, with a message and nothing queued, when one is running or
        the settings are not valid."""
        if self.runner.busy:
            self._say(BUSY_MESSAGE, "warn")
            return False
        try:
            settings = self.current_settings()
        except ZRealismError as exc:
            self._say(f"Not started: {exc}", "error")
            return False
        preset, source, label = self.preset, self._source_value, self._source_label
        before = _run_folders(self.out_dir)

        def job(ctx: JobContext) -> Any:
            from ..generate.static import run_static

            engine = self._get_engine(ctx, preset)
            return run_static(source, settings, engine=engine, out_dir=self.out_dir, on_step=ctx.report,
                              cancel=ctx.cancel, preview_every=self.preview_every)

        def finish(outcome: Outcome) -> None:
            self._finish_run(outcome, settings, label, before)

        return self._start(job, finish, f"running: {label}")

    def preview_maps(self) -> bool:
        """Detect the enabled kinds' control maps for the current source (no diffusion model runs)."""
        if self.runner.busy:
            self._say(BUSY_MESSAGE, "warn")
            return False
        try:
            settings = self.current_settings()
        except ZRealismError as exc:
            self._say(f"Not started: {exc}", "error")
            return False
        preset, source = self.preset, self._source_value

        def job(ctx: JobContext) -> Any:
            from ..generate.static import understand_source

            engine = self._get_engine(ctx, preset)
            ctx.report(StepEvent("controls", 0, 1, None, 0.0, None))
            return understand_source(source, settings, engine)

        def finish(outcome: Outcome) -> None:
            if outcome.status == "completed":
                self._show_maps(outcome.result.control_maps)
                notes = "; ".join(outcome.result.warnings)
                self._say(f"control maps ready ({', '.join(outcome.result.control_maps) or 'none enabled'})"
                          + (f". Notes: {notes}" if notes else ""), "ok")
                self._set_progress(1, 1, "control maps ready")
            else:
                self._show_failure(outcome)

        return self._start(job, finish, "detecting control maps ...")

    def cancel(self) -> bool:
        """Ask the active run to stop (the Cancel button); it stops within one denoising step."""
        if self.runner.cancel():
            self._say("cancelling: the run stops after the current denoising step ...", "warn")
            return True
        return False

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the active run ends (scripts and tests; the UI never needs this)."""
        return self.runner.wait(timeout)

    def _start(self, job: Callable[[JobContext], Any], finish: Callable[[Outcome], None], message: str) -> bool:
        self._stage = None
        self._throttle.reset()
        self.error_details.layout.display = "none"
        self.progress.value, self.progress.max = 0, 1
        self.progress_text.value = "starting ..."
        self.preview_image.value = _placeholder()
        if not self.runner.start(job, on_progress=self._on_step, on_finish=finish, message=message):
            self._say(BUSY_MESSAGE, "warn")
            return False
        self._say(message, "info")
        return True

    def _get_engine(self, ctx: JobContext, preset: str) -> Any:
        from ..engine.engine import get_engine

        if self._engine is None or getattr(self._engine.models, "name", None) != preset:
            ctx.report(StepEvent("load", 0, 1, None, 0.0, None))
            self._engine = get_engine(preset, device=self.device)
        ctx.check_cancelled()
        return self._engine

    def _on_step(self, event: StepEvent) -> None:
        """Called on the worker thread for every step event; updates at most ~10 times a second, but always for
        a new stage, a preview and the last step."""
        force = event.stage != self._stage or event.step >= event.total or event.preview is not None
        if not self._throttle.ready(force):
            return
        self._stage = event.stage
        view = progress_view(event)
        self._set_progress(view.step, view.total, view.text)
        if event.preview is not None:
            self.preview_image.value = display_png(event.preview)

    def _set_progress(self, step: int, total: int, text: str) -> None:
        total = max(1, int(total))
        if self.progress.max != total:
            self.progress.value = 0
            self.progress.max = total
        self.progress.value = min(int(step), total)
        self.progress_text.value = html.escape(text)

    def _on_phase(self, phase: Phase, message: str) -> None:
        self.state_badge.value = badge_html(phase.value)
        self.cancel_button.disabled = phase is not Phase.RUNNING
        self.progress.bar_style = {Phase.DONE: "success", Phase.CANCELLED: "warning",
                                   Phase.ERROR: "danger"}.get(phase, "")

    def _finish_run(self, outcome: Outcome, settings: StaticSettings, label: str, before: set[str]) -> None:
        """On the worker thread, before the state leaves 'running': the outputs are on screen by then."""
        if outcome.status == "completed":
            result = outcome.result
            entry = self.history.add("completed", settings, label, outcome.seconds, result=result)
            self.output_image.value = display_png(result.image)
            self.show_run(entry.number)
            where = f" · run folder {result.run_dir}" if result.run_dir else ""
            self._say(f"done in {format_seconds(outcome.seconds)}: run #{entry.number}{where}", "ok")
        elif outcome.status == "cancelled":
            run_dir = _new_run_folder(self.out_dir, before)
            recorded = _record_status(run_dir)
            self.history.add("cancelled", settings, label, outcome.seconds, error=str(outcome.error), folder=run_dir)
            suffix = f" · the run record says '{recorded}' ({run_dir})" if recorded else ""
            self._say(f"Cancelled: {outcome.error}{suffix}", "warn")
            self._set_progress(self.progress.value, self.progress.max,
                              f"stopped at step {self.progress.value}/{self.progress.max}")
        else:
            self.history.add("failed", settings, label, outcome.seconds, error=summarize_error(outcome.error).short)
            self._show_failure(outcome)
        self._refresh_history()
        self.refresh_model_status()

    def _show_failure(self, outcome: Outcome) -> None:
        if outcome.status == "cancelled":
            self._say(f"Cancelled: {outcome.error}", "warn")
            return
        report = summarize_error(outcome.error)
        self._say(report.short, "error")
        self.error_text.value = pre_html(report.details, "zr-traceback")
        self.error_details.selected_index = None
        self.error_details.layout.display = ""
        self.progress_text.value = html.escape(f"failed: {report.title}")

    def _say(self, text: str, level: str = "info") -> None:
        self.message.value = message_html(text, level)

    def _show_maps(self, control_maps: dict[str, Any]) -> None:
        for kind, row in self.unit_rows.items():
            control_map = control_maps.get(kind)
            row.show_map(None if control_map is None else control_map.image)

    # ------------------------------------------------------------------------------------------- results
    @property
    def last_result(self) -> Any:
        completed = self.history.completed()
        return completed[-1].result if completed else None

    def show_run(self, number: int) -> None:
        """Show a completed run of this session on the Results tab (what Reopen does)."""
        entry = self.history.get(number)
        if entry.result is None:
            raise SettingsError("run", number, "a completed run of this session",
                                f"Run #{number} was {entry.status}; it has no pictures to show.")
        if entry.kind == "temporal":
            self.temporal.show(entry.result)
            return
        result = entry.result
        self._shown = entry
        self.results_title.value = f'<b class="zr-results-run">{html.escape(entry.label)}</b>'
        self.results_images.children = gallery(result)
        random_weights = bool(result.engine.get("models", {}).get("random_weights")) if result.engine else False
        self.results_notes.value = notes_html(result, random_weights, self._tiny_note)
        self.results_metrics.value = metric_table_html(result)
        self.results_plots.children = plot_pictures(result)
        self._show_maps(result.context.control_maps)
        self.downloads.value = self._download_links(entry)
        self.export_message.value = ""

    def _download_links(self, entry: Any) -> str:
        png = _output_png(entry)
        record = json.dumps(_record_of(entry), indent=2, default=str).encode()
        stem = f"zrealism-run{entry.number}"
        return ("download: " + download_link(png, f"{stem}.png", "image/png", "output PNG", "zr-download-png")
                + download_link(record, f"{stem}.json", "application/json", "record JSON", "zr-download-record"))

    def _shown_entry(self) -> Any:
        if self._shown is None:
            raise SettingsError("run", None, "a finished run on the Results tab", "Press Run first.")
        return self._shown

    def save_png(self) -> Path:
        entry = self._shown_entry()
        folder = Path(self.export_dir.value).expanduser()
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"run{entry.number}-seed{entry.settings.seed}.png"
        path.write_bytes(_output_png(entry))
        return path

    def save_record(self) -> Path:
        from ..files import atomic_write_json

        entry = self._shown_entry()
        folder = Path(self.export_dir.value).expanduser()
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"run{entry.number}-record.json"
        atomic_write_json(path, _record_of(entry))
        return path

    def write_report(self) -> bool:
        """Re-run the shown run's settings through the static report notebook (papermill) into the export folder,
        on the worker thread; the HTML report's path shows next to the buttons."""
        try:
            entry = self._shown_entry()
            from ..reports.execute import notebook_parameters, notebook_path, run_report

            known = notebook_parameters(notebook_path("static"))
            folder = Path(self.export_dir.value).expanduser()
            parameters = self._report_parameters(entry, folder, known)
        except Exception as exc:  # noqa: BLE001 - shown next to the buttons
            self.export_message.value = message_html(summarize_error(exc).short, "error")
            return False

        def job(ctx: JobContext) -> Any:
            ctx.report(StepEvent("report", 0, 1, None, 0.0, None))
            return run_report("static", parameters, folder, progress=False)

        def finish(outcome: Outcome) -> None:
            if outcome.status == "completed":
                self.export_message.value = message_html(f"report written: {outcome.result.html}", "ok")
                self._say(f"report written in {format_seconds(outcome.seconds)}", "ok")
                self._set_progress(1, 1, "report written")
            else:
                self._show_failure(outcome)
                self.export_message.value = message_html(summarize_error(outcome.error).short, "error")

        return self._start(job, finish, "writing the report (the notebook re-runs this run's settings) ...")

    def _report_parameters(self, entry: Any, folder: Path, known: dict[str, Any]) -> dict[str, Any]:
        values: dict[str, Any] = {k: v for k, v in entry.settings.to_dict().items() if k in known}
        values["preset"] = self.preset
        source = getattr(entry.result.context.source, "path", None)
        if source:
            values["image"] = str(source)
        else:  # an upload: the report notebook reads a file, so keep the bytes beside the report
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / f"run{entry.number}-source.png"
            from ..files import png_bytes

            path.write_bytes(png_bytes(entry.result.context.source.image))
            values["image"] = str(path)
        return {k: v for k, v in values.items() if k in known}

    def _export(self, action: Callable[[], Path]) -> None:
        try:
            path = action()
        except Exception as exc:  # noqa: BLE001 - shown next to the buttons, never a traceback wall
            self.export_message.value = message_html(summarize_error(exc).short, "error")
            return
        self.export_message.value = message_html(f"saved {path}", "ok")

    # ------------------------------------------------------------------------------------------- history
    def _refresh_history(self) -> None:
        self.history_list.options = self.history.options()
        completed = self.history.options(self.history.completed())
        self.compare_a.options = completed
        self.compare_b.options = completed
        if len(completed) >= 2:
            self.compare_a.value, self.compare_b.value = completed[1][1], completed[0][1]

    def _reopen_selected(self) -> None:
        number = self.history_list.value
        if number is None:
            self.history_message.value = message_html("Select a run first.", "warn")
            return
        try:
            self.show_run(number)
        except ZRealismError as exc:
            self.history_message.value = message_html(str(exc), "warn")
            return
        temporal = self.history.get(number).kind == "temporal"
        self.history_message.value = message_html(
            f"run #{number} is on the {'Temporal' if temporal else 'Results'} tab", "ok")
        self.tabs.selected_index = 5 if temporal else 3

    def compare(self, first: int, second: int) -> w.Widget:
        """Two completed runs side by side, with the settings that differ and the metric differences."""
        view = comparison(self.history.get(first), self.history.get(second))
        self.compare_view.children = [view]
        return view

    def _compare_selected(self) -> None:
        first, second = self.compare_a.value, self.compare_b.value
        if first is None or second is None:
            self.history_message.value = message_html("Two completed runs are needed to compare.", "warn")
            return
        self.compare(first, second)


# ----------------------------------------------------------------------------------------------- helpers


def _rule(check: Callable[[Any, str], Any], name: str) -> Callable[[Any], str | None]:
    def rule(value: Any) -> str | None:
        try:
            check(value, name)
        except SettingsError as exc:
            return f"expected {exc.allowed}"
        return None

    return rule


def _reports_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("zrealism_lab.reports") is not None


def _too_large(size: int) -> str:
    return (f"the file is {size / 2**20:.0f} MB, above the lab's upload limit of {MAX_UPLOAD_BYTES // 2**20} MB: "
            "downscale or re-encode it (a PNG or JPEG of a few MB is plenty for 512-1024 px runs)")


def _flatten(image: Image.Image) -> Image.Image:
    if image.mode == "RGBA":
        checker = Image.new("RGBA", image.size, (200, 200, 200, 255))
        return Image.alpha_composite(checker, image).convert("RGB")
    return image.convert("RGB")


def _analyse(value: Any) -> tuple[Any, Any]:
    from ..source.background import analyze_background
    from ..source.intake import load_image

    loaded = load_image(value)
    return loaded, analyze_background(loaded.image)


def _component_report(preset: str) -> str:
    from ..models.loading import locate, missing_weights_error
    from ..models.modelset import resolve_modelset, tiny_bundle_dir, tiny_modelset

    if preset == "tiny":
        folder = tiny_bundle_dir()
        if not folder.is_dir():
            return (f"<div>The tiny bundle is not built yet: the first Run builds it (about 12 MB, a few seconds) in "
                    f"<code>{html.escape(str(folder))}</code> (set ZREALISM_CACHE to choose the folder).</div>")
        modelset = tiny_modelset(folder, build=False)
    else:
        modelset = resolve_modelset(preset)
    statuses = [locate(ref) for ref in modelset.components()]
    missing = [s for s in statuses if not s.present]
    how_to = str(missing_weights_error(missing, modelset.name)) if missing else "All components are present."
    return component_table_html(statuses, how_to)


def _device_report(engine: Any, device: str, check_now: bool) -> str:
    plan = getattr(engine, "plan", None)
    if plan is None and (check_now or "torch" in sys.modules):
        from ..device import plan_hardware

        plan = plan_hardware(device)
    if plan is None:
        return ("<i>decided when the model loads on the first Run: CUDA float16 (or Apple MPS) when present, "
                "else CPU float32. Press Check device to see it now.</i>")
    memory = f", {plan.total_memory_gb} GB" if plan.total_memory_gb else ""
    loaded = ""
    if engine is not None and engine.loaded_roles():
        loaded = "<br><b>loaded</b>: " + ", ".join(
            f"{html.escape(role)} ({format_seconds(engine.load_seconds.get(role))})" for role in engine.loaded_roles())
    return (f'<span class="zr-device-line"><b>device</b>: {html.escape(plan.device)}{memory} · <b>dtype</b>: '
            f"{html.escape(plan.dtype)} · <b>offload</b>: {html.escape(plan.offload)}</span><br>"
            f"<span style='color:#555'>{html.escape(plan.reason)}</span>{loaded}")


def _run_folders(out_dir: Path | None) -> set[str]:
    if out_dir is None or not out_dir.is_dir():
        return set()
    return {p.name for p in out_dir.iterdir() if p.is_dir()}


def _new_run_folder(out_dir: Path | None, before: set[str]) -> Path | None:
    """The folder a cancelled run wrote its record into (run_static raises, so it cannot return it)."""
    if out_dir is None:
        return None
    new = sorted(_run_folders(out_dir) - before)
    return out_dir / new[-1] if new else None


def _record_status(run_dir: Path | None) -> str | None:
    if run_dir is None or not (run_dir / "record.json").is_file():
        return None
    try:
        return json.loads((run_dir / "record.json").read_text()).get("status")
    except (OSError, ValueError):
        return None


def _output_png(entry: Any) -> bytes:
    from ..files import png_bytes

    if entry.run_dir is not None and (Path(entry.run_dir) / "output.png").is_file():
        return (Path(entry.run_dir) / "output.png").read_bytes()  # keeps the PNG's parameters metadata
    return png_bytes(entry.result.image)


def _record_of(entry: Any) -> dict[str, Any]:
    result = entry.result
    if result.record:
        return dict(result.record)
    return {"status": result.status, "settings": result.settings.to_dict(), "prompt": result.context.prompt,
            "negative_prompt": result.context.negative_prompt, "background": result.context.analysis.to_dict(),
            "colour": result.colour.to_dict(), "metrics": result.metrics.to_dict() if result.metrics else None,
            "timings": result.timings, "warnings": list(result.warnings), "engine": result.engine}
