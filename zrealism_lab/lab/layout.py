"""Every widget of the lab, where it sits and how it shows things: the run bar and the Source, Model, Controls,
Results and History tabs.

``LabLayout`` builds the widgets, shows what it is given and reads the settings back; ``Lab`` (app.py) connects the
widgets to the source, the engine, the runs and the history. The CSS classes are the browser tests' hooks, and every
range and option comes from the setting specs and the registries.
"""
from __future__ import annotations

import html
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import ipywidgets as w
from PIL import Image

from ..errors import SettingsError
from ..reports.media import display_png
from ..settings import SPECS, UNIT_SPECS, ControlUnit, StaticSettings
from .fields import SpecField
from .history import download_links_html
from .runner import Outcome
from .state import HistoryEntry, Phase, summarize_error
from .views import analysis_html, badge_html, gallery, message_html, metric_table_html, notes_html, plot_pictures, \
    pre_html
from .widgets import UnitRow, captioned, classed, placeholder, section

TAB_TITLES = ("Source", "Model", "Controls", "Results", "History", "Temporal")
RESULTS_TAB, TEMPORAL_TAB = TAB_TITLES.index("Results"), TAB_TITLES.index("Temporal")


def default_control_methods(preset: str) -> dict[str, str]:
    from ..models import modelset

    return modelset.default_control_methods(preset)


def default_units(preset: str) -> tuple[ControlUnit, ...]:
    """The preset's documented default control units, without building the tiny bundle just to read them."""
    from ..models import modelset

    return modelset.default_controls_for(preset if preset in ("tiny", "realistic-vision") else "realistic-vision")


class LabLayout:
    """The lab's widgets, built once; ``widget`` is the whole app. ``base`` holds the settings no widget shows."""

    def __init__(self, *, preset: str, presets: Sequence[str], base: StaticSettings, profiles: Mapping[str, Any],
                 profile_problem: str, export_dir: Path, preview_every: int, temporal_tab: w.Widget) -> None:
        self.base_settings = base
        self._build_run_bar(preview_every)
        source_tab = self._build_source_tab()
        model_tab = self._build_model_tab(preset, presets)
        controls_tab = self._build_controls_tab(preset, base, profiles, profile_problem)
        results_tab = self._build_results_tab(export_dir)
        history_tab = self._build_history_tab()
        self.tabs = classed(w.Tab(children=[source_tab, model_tab, controls_tab, results_tab, history_tab,
                                            temporal_tab], titles=TAB_TITLES), "zr-tabs")
        header = w.HTML('<h3 style="margin:4px 0">Z-Realism Lab</h3>')
        self.widget = classed(w.VBox([header, self.run_bar, self.tabs]), "zr-lab")

    def _build_run_bar(self, preview_every: int) -> None:
        self.run_button = classed(w.Button(description="Run", button_style="primary", icon="play",
                                           tooltip="generate a still with the settings of the Controls tab"),
                                  "zr-run-button")
        self.cancel_button = classed(w.Button(description="Cancel", button_style="warning", icon="stop",
                                              disabled=True, tooltip="stop after the current denoising step"),
                                     "zr-cancel-button")
        self.state_badge = classed(w.HTML(badge_html("idle")), "zr-state")
        self.progress = classed(w.IntProgress(value=0, min=0, max=1, layout=w.Layout(width="260px")), "zr-progress")
        self.progress_text = classed(w.HTML(""), "zr-progress-text")
        self.message = classed(w.HTML(""), "zr-message")
        self.error_text = classed(w.HTML(""), "zr-error-text")
        self.error_details = classed(w.Accordion(children=[self.error_text], titles=("error details",),
                                                 selected_index=None, layout=w.Layout(display="none")),
                                     "zr-error-details")
        self.preview_image = classed(w.Image(value=placeholder(), format="png"), "zr-preview")
        self.output_image = classed(w.Image(value=placeholder(), format="png"), "zr-output")
        live = w.HBox([captioned(self.preview_image, f"live preview (every {preview_every} steps)"),
                       captioned(self.output_image, "output")])
        buttons = w.HBox([self.run_button, self.cancel_button, self.state_badge, self.progress, self.progress_text],
                         layout=w.Layout(align_items="center"))
        self.run_bar = classed(w.VBox([buttons, self.message, self.error_details, live]), "zr-run-bar")

    def _build_source_tab(self) -> w.Widget:
        from ..source.samples import SAMPLE_NAMES

        self.sample_picker = classed(w.Dropdown(options=[(f"sample: {n}", n) for n in SAMPLE_NAMES],
                                                description="source", layout=w.Layout(width="300px")),
                                     "zr-sample-picker")
        self.upload = classed(w.FileUpload(accept="image/*", multiple=False, description="Upload image"), "zr-upload")
        self.source_message = classed(w.HTML(""), "zr-source-message")
        self.source_image = classed(w.Image(value=placeholder(), format="png"), "zr-source-image")
        self.mask_image = classed(w.Image(value=placeholder(), format="png"), "zr-mask-overlay")
        self.analysis_text = classed(w.HTML("<i>analysing ...</i>"), "zr-analysis")
        pictures = w.HBox([captioned(self.source_image, "source"),
                           captioned(self.mask_image, "subject mask (background tinted)"), self.analysis_text])
        return w.VBox([w.HBox([self.sample_picker, self.upload]), self.source_message, pictures])

    def _build_model_tab(self, preset: str, presets: Sequence[str]) -> w.Widget:
        from ..models.modelset import RANDOM_WEIGHTS_NOTE

        self.preset_picker = classed(w.Dropdown(options=list(presets), value=str(preset), description="preset"),
                                     "zr-preset")
        self.model_status = classed(w.HTML("<i>checking components ...</i>"), "zr-model-status")
        self.device_info = classed(w.HTML(""), "zr-device")
        self.check_device_button = classed(w.Button(description="Check device", icon="microchip",
                                                    tooltip="detect the device and dtype now (imports torch)"),
                                           "zr-check-device")
        self.model_note = classed(w.HTML(f'<div style="color:#6a1b9a">{html.escape(RANDOM_WEIGHTS_NOTE)}</div>'),
                                  "zr-tiny-note")
        self.tiny_note = RANDOM_WEIGHTS_NOTE
        return w.VBox([self.preset_picker, self.model_note, section("Components"), self.model_status,
                       section("Device"), w.HBox([self.device_info, self.check_device_button])])

    def _build_controls_tab(self, preset: str, base: StaticSettings, profiles: Mapping[str, Any],
                            profile_problem: str) -> w.Widget:
        from ..colour import COLOUR_METHODS
        from ..control import CONTROL_PROVIDERS
        from ..prompts import validate_prompt
        from ..schedulers import SCHEDULERS

        f: dict[str, SpecField] = {}
        # "" stands for no profile: a Dropdown shows a None value as no selection at all
        profile_options = [("none", "")] + [(name, name) for name in sorted(profiles)]
        f["profile"] = SpecField(SPECS["profile"], base.profile if base.profile in profiles else "",
                                 options=profile_options)
        self.profile_info = classed(w.HTML(message_html(profile_problem, "warn")), "zr-profile-info")
        f["prompt"] = SpecField(SPECS["prompt"], base.prompt, kind="textarea")
        f["negative_prompt"] = SpecField(SPECS["negative_prompt"], base.negative_prompt, kind="textarea")
        for name in ("prompt", "negative_prompt"):
            f[name].set_extra_check(_rule(validate_prompt, name))
        f["strength"] = SpecField(SPECS["strength"], base.strength, kind="slider")
        f["steps"] = SpecField(SPECS["steps"], base.steps)
        f["cfg"] = SpecField(SPECS["cfg"], base.cfg, kind="slider", label="CFG")
        self.randomise_button = classed(w.Button(description="", icon="dice", tooltip="draw a random seed",
                                                 layout=w.Layout(width="40px")), "zr-randomise-seed")
        f["seed"] = SpecField(SPECS["seed"], base.seed, extra=[self.randomise_button])
        f["scheduler"] = SpecField(SPECS["scheduler"], base.scheduler,
                                   options=[(choice.label, name) for name, choice in SCHEDULERS.items()])
        f["size"] = SpecField(SPECS["size"], base.size, label="size (long side)")
        f["colour_method"] = SpecField(SPECS["colour_method"], base.colour_method,
                                       options=COLOUR_METHODS.names(), label="colour anchoring")
        f["colour_strength"] = SpecField(SPECS["colour_strength"], base.colour_strength, kind="slider",
                                         label="colour strength")
        # The refinement passes' two switches; their finer settings stay with the CLI and Python.
        f["hires"] = SpecField(SPECS["hires"], base.hires, label="hires fix (factor)")
        f["hires_strength"] = SpecField(SPECS["hires_strength"], base.hires_strength, kind="slider",
                                        label="hires strength")
        f["face_detail"] = SpecField(SPECS["face_detail"], base.face_detail, label="face detail")
        self.fields = f

        kinds = [k for k in CONTROL_PROVIDERS.names() if k in UNIT_SPECS["kind"].choices()]
        units = base.controls if base.controls is not None else default_units(preset)
        defaults = {u.kind: u for u in units}
        methods = default_control_methods(preset)  # the detectors a unit naming none uses (tiny: weightless ones)
        self.unit_rows = {kind: UnitRow(kind, CONTROL_PROVIDERS.get(kind), defaults.get(kind), methods.get(kind))
                          for kind in kinds}
        self.maps_button = classed(w.Button(description="Preview control maps", icon="eye",
                                            layout=w.Layout(width="auto"),
                                            tooltip="detect the maps of the enabled kinds (no diffusion model)"),
                                   "zr-maps-button")
        return w.VBox([
            section("Character profile and prompts"), f["profile"].row, self.profile_info, f["prompt"].row,
            f["negative_prompt"].row,
            section("Control units (MultiControlNet)"), *[row.row for row in self.unit_rows.values()],
            self.maps_button,
            section("Generation"), f["strength"].row, f["steps"].row, f["cfg"].row, f["seed"].row,
            f["scheduler"].row, f["size"].row,
            section("Colour anchoring"), f["colour_method"].row, f["colour_strength"].row,
            section("Refinement"), f["hires"].row, f["hires_strength"].row, f["face_detail"].row,
        ])

    def _build_results_tab(self, export_dir: Path) -> w.Widget:
        self.results_title = classed(w.HTML("<i>no run yet: press Run</i>"), "zr-results-title")
        self.results_images = classed(w.HBox([], layout=w.Layout(flex_flow="row wrap")), "zr-results-images")
        self.results_notes = classed(w.HTML(""), "zr-results-notes")
        self.results_metrics = classed(w.HTML(""), "zr-metrics")
        self.results_plots = classed(w.HBox([], layout=w.Layout(flex_flow="row wrap")), "zr-plots")
        self.export_dir = classed(w.Text(value=str(export_dir), description="export to",
                                         layout=w.Layout(width="420px")), "zr-export-dir")
        self.save_png_button = classed(w.Button(description="Save PNG", icon="image"), "zr-save-png")
        self.save_record_button = classed(w.Button(description="Save record", icon="file"), "zr-save-record")
        self.report_button = classed(w.Button(description="Write report", icon="book",
                                              tooltip="a report notebook of this run (zrealism_lab.reports)"),
                                     "zr-save-report")
        self.export_message = classed(w.HTML(""), "zr-export-message")
        self.downloads = classed(w.HTML(""), "zr-downloads")
        exports = w.VBox([w.HBox([self.export_dir, self.save_png_button, self.save_record_button,
                                  self.report_button]), self.downloads, self.export_message])
        return w.VBox([self.results_title, self.results_images, self.results_notes, section("Metrics"),
                       self.results_metrics, self.results_plots, section("Save and export"), exports])

    def _build_history_tab(self) -> w.Widget:
        self.history_list = classed(w.Select(options=[], rows=8, layout=w.Layout(width="100%")), "zr-history")
        self.reopen_button = classed(w.Button(description="Reopen", icon="folder-open",
                                              tooltip="show the selected run on the Results tab"), "zr-reopen")
        wide = {"layout": w.Layout(width="42%")}
        self.compare_a = classed(w.Dropdown(options=[], description="compare", **wide), "zr-compare-a")
        self.compare_b = classed(w.Dropdown(options=[], description="with", **wide), "zr-compare-b")
        self.compare_button = classed(w.Button(description="Compare", icon="columns"), "zr-compare")
        self.compare_view = classed(w.VBox([]), "zr-compare-view")
        self.history_message = classed(w.HTML(""), "zr-history-message")
        return w.VBox([self.history_list, w.HBox([self.reopen_button]), self.history_message,
                       section("Compare two runs"), w.HBox([self.compare_a, self.compare_b, self.compare_button]),
                       self.compare_view])


    # ------------------------------------------------------------------------------------------- showing
    def say(self, text: str, level: str = "info") -> None:
        """Show ``text`` on the run bar's message line; level is info, ok, warn or error."""
        self.message.value = message_html(text, level)

    def show_phase(self, phase: Phase, message: str = "") -> None:
        """The run state's badge, Cancel only while running, the bar's colour once finished (a RunState listener)."""
        self.state_badge.value = badge_html(phase.value)
        self.cancel_button.disabled = phase is not Phase.RUNNING
        self.progress.bar_style = {Phase.DONE: "success", Phase.CANCELLED: "warning",
                                   Phase.ERROR: "danger"}.get(phase, "")

    def reset_run_bar(self) -> None:
        """The run bar as a job starts: no error, an empty bar, no preview."""
        self.error_details.layout.display = "none"
        self.progress.value, self.progress.max = 0, 1
        self.progress_text.value = "starting ..."
        self.preview_image.value = placeholder()

    def show_progress(self, step: int, total: int, text: str) -> None:
        total = max(1, int(total))
        if self.progress.max != total:
            self.progress.value = 0
            self.progress.max = total
        self.progress.value = min(int(step), total)
        self.progress_text.value = html.escape(text)

    def show_failure(self, outcome: Outcome) -> None:
        """A cancelled or failed job on the run bar: a short message, the traceback behind 'error details'."""
        if outcome.status == "cancelled":
            self.say(f"Cancelled: {outcome.error}", "warn")
            return
        report = summarize_error(outcome.error)
        self.say(report.short, "error")
        self.error_text.value = pre_html(report.details, "zr-traceback")
        self.error_details.selected_index = None
        self.error_details.layout.display = ""
        self.progress_text.value = html.escape(f"failed: {report.title}")

    def show_analysis(self, found: tuple[Any, Any]) -> None:
        """A decoded source (intake's LoadedImage) and its background analysis, on the Source tab."""
        loaded, analysis = found
        self.source_image.value = display_png(_flatten(loaded.image))
        self.mask_image.value = display_png(analysis.overlay(loaded.image))
        self.analysis_text.value = analysis_html(loaded, analysis)

    def show_maps(self, control_maps: Mapping[str, Any]) -> None:
        """Each unit row's latest control map (the placeholder for kinds without one)."""
        for kind, row in self.unit_rows.items():
            control_map = control_maps.get(kind)
            row.show_map(None if control_map is None else control_map.image)

    def show_result(self, entry: HistoryEntry) -> None:
        """A completed still on the Results tab, with its maps on the Controls tab and its download links."""
        result = entry.result
        self.results_title.value = f'<b class="zr-results-run">{html.escape(entry.label)}</b>'
        self.results_images.children = gallery(result)
        random_weights = bool(result.engine.get("models", {}).get("random_weights")) if result.engine else False
        self.results_notes.value = notes_html(result, random_weights, self.tiny_note)
        self.results_metrics.value = metric_table_html(result)
        self.results_plots.children = plot_pictures(result)
        self.show_maps(result.context.control_maps)
        self.downloads.value = download_links_html(entry)
        self.export_message.value = ""

    # ------------------------------------------------------------------------------------------- reading back
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
        settings = self.base_settings.replace(**values, controls=units)
        try:
            return settings.validated()
        except SettingsError as exc:
            if exc.name in self.fields:
                self.fields[exc.name].show(f"expected {exc.allowed}")
            raise


def _rule(check: Callable[[Any, str], Any], name: str) -> Callable[[Any], str | None]:
    """A registry check that raises SettingsError, as a field rule that returns the message instead."""

    def rule(value: Any) -> str | None:
        try:
            check(value, name)
        except SettingsError as exc:
            return f"expected {exc.allowed}"
        return None

    return rule


def _flatten(image: Image.Image) -> Image.Image:
    """An RGB picture of the source; transparency shows over light grey."""
    if image.mode == "RGBA":
        checker = Image.new("RGBA", image.size, (200, 200, 200, 255))
        return Image.alpha_composite(checker, image).convert("RGB")
    return image.convert("RGB")


__all__ = ["LabLayout", "RESULTS_TAB", "TAB_TITLES", "TEMPORAL_TAB", "default_units"]
