"""Every widget of the lab, where it sits and how it shows things: the run bar and the Source, Model, Controls
(controls_tab.py), Results and History tabs.

``LabLayout`` builds the widgets, shows what it is given and reads the settings back; ``Lab`` (app.py) connects the
widgets to the source, the engine, the runs and the history. The CSS classes are the browser tests' hooks, and every
range and option comes from the setting specs and the registries. Colours are theme variables (theme.py).
"""
from __future__ import annotations

import html
from pathlib import Path
from typing import Any, Mapping, Sequence

import ipywidgets as w
from PIL import Image

from .adapters_section import adapters_html
from ..reports.media import display_png
from ..settings import SPECS, StaticSettings
from .controls_tab import ControlsTab, default_units
from .fields import SpecField
from .runner import Outcome
from .run_view import RunView
from .state import Phase, ProgressView, summarize_error
from .status_views import analysis_html, preflight_html
from .theme import STYLESHEET
from .views import badge_html, caption_html, gallery, headline_html, message_html, metric_table_html, notes_html, \
    plot_pictures, pre_html, wipe_image
from .widgets import captioned, classed, placeholder, section, thumb_image

TAB_TITLES = ("Source", "Model", "Controls", "Results", "History", "Temporal")
RESULTS_TAB, TEMPORAL_TAB = TAB_TITLES.index("Results"), TAB_TITLES.index("Temporal")
SOURCE_TAB = TAB_TITLES.index("Source")
EMPTY_OUTPUT = "output: press Run to generate"
# Dropped or pasted files travel as base64 text through a hidden box; larger ones go through the Upload button.
MAX_DROP_MB = 7

# Installed once per painted lab by an image that fails to load (a script tag in widget HTML would not run):
# Ctrl/Cmd+Enter runs and Escape cancels while focus is in the lab (JupyterLab's own shortcuts are suppressed
# there, so Ctrl+Enter does not re-run the cell); files dropped on or pasted into the drop zone are read in the
# browser and handed to the kernel through the hidden .zr-drop-data box.
_BROWSER_HOOKS = ("""<img src="data:," alt="" style="display:none" onerror="(function(img){
var root = img.closest('.zr-lab'); if (!root || root.dataset.zrHooks) return; root.dataset.zrHooks = '1';
root.setAttribute('data-lm-suppress-shortcuts', 'true');
root.addEventListener('keydown', function(e){
  if ((e.ctrlKey || e.metaKey) && e.key === 'Enter') { e.preventDefault(); e.stopPropagation();
    var b = root.querySelector('.zr-run-button'); if (b && !b.disabled) b.click(); }
  else if (e.key === 'Escape') { var c = root.querySelector('.zr-cancel-button'); if (c && !c.disabled) c.click(); }
}, true);
function send(file){
  var box = root.querySelector('.zr-drop-data textarea'); var say = root.querySelector('.zr-drop-hint');
  if (!file || !box) return;
  if (file.size > LIMIT * 1048576) {
    if (say) say.textContent = file.name + ' is over LIMIT MB: use Upload image'; return; }
  var reader = new FileReader();
  reader.onload = function(){ var data = String(reader.result); data = data.slice(data.indexOf(',') + 1);
    box.value = JSON.stringify({name: file.name || 'pasted image', data: data});
    box.dispatchEvent(new Event('input', {bubbles: true}));
    box.dispatchEvent(new Event('change', {bubbles: true})); };
  reader.readAsDataURL(file);
}
function first(list){ for (var i = 0; list && i < list.length; i++) {
  var f = list[i].getAsFile ? list[i].getAsFile() : list[i];
  if (f && /^image\\//.test(f.type || 'image/')) return f; } return null; }
root.addEventListener('dragover', function(e){ var z = e.target.closest && e.target.closest('.zr-drop');
  if (z) { e.preventDefault(); z.classList.add('zr-drop-over'); } });
root.addEventListener('dragleave', function(e){ var z = e.target.closest && e.target.closest('.zr-drop');
  if (z) z.classList.remove('zr-drop-over'); });
root.addEventListener('drop', function(e){ var z = e.target.closest && e.target.closest('.zr-drop');
  if (!z) return; e.preventDefault(); e.stopPropagation(); z.classList.remove('zr-drop-over');
  send(first(e.dataTransfer && e.dataTransfer.files)); });
root.addEventListener('paste', function(e){ var z = e.target.closest && e.target.closest('.zr-drop');
  if (!z) return; var data = e.clipboardData;
  var f = first(data && (data.files.length ? data.files : data.items));
  if (f) { e.preventDefault(); send(f); } });
})(this)">""").replace("LIMIT", str(MAX_DROP_MB)).replace("\n", " ")


class LabLayout(ControlsTab):
    """The lab's widgets, built once; ``widget`` is the whole app. ``base`` holds the settings no widget shows."""

    def __init__(self, *, preset: str, presets: Sequence[str], base: StaticSettings, profiles: Mapping[str, Any],
                 profile_problem: str, export_dir: Path, preview_every: int, temporal_tab: w.Widget) -> None:
        self.base_settings = base
        self.fields: dict[str, SpecField] = {}
        self._build_run_bar(preview_every)
        source_tab = self._build_source_tab(base)
        model_tab = self._build_model_tab(preset, presets)
        controls_tab = self._build_controls_tab(preset, base, profiles, profile_problem)
        results_tab = self._build_results_tab(export_dir)
        history_tab = self._build_history_tab()
        self.tabs = classed(w.Tab(children=[source_tab, model_tab, controls_tab, results_tab, history_tab,
                                            temporal_tab], titles=TAB_TITLES), "zr-tabs")
        header = w.HTML(STYLESHEET + _BROWSER_HOOKS + '<h3 style="margin:4px 0">Z-Realism Lab</h3>'
                        '<div class="zr-caption" style="text-align:left;max-width:none">1 Source → 2 Model → '
                        '3 Controls → Run (Ctrl+Enter) → Results and History</div>')
        self.widget = classed(w.VBox([header, self.run_bar, self.tabs]), "zr-lab")

    def _build_run_bar(self, preview_every: int) -> None:
        self.run_button = classed(w.Button(description="Run", button_style="primary", icon="play",
                                           tooltip="generate a still with the settings of the Controls tab "
                                                   "(Ctrl+Enter)"), "zr-run-button")
        self.cancel_button = classed(w.Button(description="Cancel", button_style="warning", icon="stop",
                                              disabled=True, tooltip="stop after the current denoising step (Esc)"),
                                     "zr-cancel-button")
        self.state_badge = classed(w.HTML(badge_html("idle")), "zr-state")
        self.progress = classed(w.IntProgress(value=0, min=0, max=1, layout=w.Layout(width="260px")), "zr-progress")
        self.busy_bar = classed(w.HTML('<div class="zr-indeterminate"></div>', layout=w.Layout(display="none")),
                                "zr-busy-bar")
        self.progress_text = classed(w.HTML(""), "zr-progress-text")
        self.preflight_text = classed(w.HTML(""), "zr-preflight")
        self.message = classed(w.HTML(""), "zr-message")
        self.error_text = classed(w.HTML(""), "zr-error-text")
        self.error_details = classed(w.Accordion(children=[self.error_text], titles=("error details",),
                                                 selected_index=None, layout=w.Layout(display="none")),
                                     "zr-error-details")
        self.preview_image = thumb_image("zr-preview")
        self.output_image = thumb_image("zr-output")
        self.output_caption = classed(w.HTML(caption_html(EMPTY_OUTPUT)), "zr-output-caption")
        live = w.HBox([captioned(self.preview_image, f"live preview (every {preview_every} steps)"),
                       captioned(self.output_image, self.output_caption)], layout=w.Layout(flex_flow="row wrap"))
        buttons = w.HBox([self.run_button, self.cancel_button, self.state_badge, self.progress, self.busy_bar,
                          self.progress_text], layout=w.Layout(align_items="center", flex_flow="row wrap"))
        self.run_bar = classed(w.VBox([buttons, self.preflight_text, self.message, self.error_details, live]),
                               "zr-run-bar")

    def _build_source_tab(self, base: StaticSettings) -> w.Widget:
        from ..source.samples import SAMPLE_NAMES

        self.sample_picker = classed(w.Dropdown(options=[(f"sample: {n}", n) for n in SAMPLE_NAMES],
                                                description="source",
                                                layout=w.Layout(width="auto", min_width="240px", max_width="420px")),
                                     "zr-sample-picker")
        self.upload = classed(w.FileUpload(accept="image/*", multiple=False, description="Upload image",
                                           tooltip="choose an image file (PNG, JPEG, WEBP, BMP, TIFF or GIF)"),
                              "zr-upload")
        self.drop_zone = classed(w.HTML(f'<div class="zr-drop" tabindex="0" title="drop an image file here, or click '
                                        f'here and paste one (Ctrl+V)"><span class="zr-drop-hint">or drop / paste an '
                                        f'image here (up to {MAX_DROP_MB} MB)</span></div>'), "zr-source-drop")
        self.drop_data = classed(w.Textarea(value="", layout=w.Layout(display="none")), "zr-drop-data")
        self.fields["background_kind"] = SpecField(SPECS["background_kind"], base.background_kind,
                                                   label="background kind", css="zr-background-kind")
        self.source_message = classed(w.HTML(""), "zr-source-message")
        self.source_image = thumb_image("zr-source-image")
        self.mask_image = thumb_image("zr-mask-overlay")
        self.analysis_text = classed(w.HTML("<i>analysing ...</i>"), "zr-analysis")
        pictures = w.HBox([captioned(self.source_image, "source (what Run uses)"),
                           captioned(self.mask_image, "subject mask (background tinted)"), self.analysis_text],
                          layout=w.Layout(flex_flow="row wrap"))
        return classed(w.VBox([w.HBox([self.sample_picker, self.upload, self.drop_zone, self.drop_data],
                                      layout=w.Layout(flex_flow="row wrap", align_items="center")),
                               self.source_message, pictures, self.fields["background_kind"].row]), "zr-source-tab")

    def _build_model_tab(self, preset: str, presets: Sequence[str]) -> w.Widget:
        from ..models.modelset import RANDOM_WEIGHTS_NOTE

        self.preset_picker = classed(w.Dropdown(options=list(presets), value=str(preset), description="preset"),
                                     "zr-preset")
        self.model_status = classed(w.HTML("<i>checking components ...</i>"), "zr-model-status")
        self.device_info = classed(w.HTML(""), "zr-device")
        self.check_device_button = classed(w.Button(description="Check device", icon="microchip",
                                                    tooltip="detect the device and dtype now (imports torch)"),
                                           "zr-check-device")
        self.model_note = classed(w.HTML(f'<div class="zr-tiny-note">{html.escape(RANDOM_WEIGHTS_NOTE)}</div>'),
                                  "zr-tiny-note-box")
        self.tiny_note = RANDOM_WEIGHTS_NOTE
        return w.VBox([self.preset_picker, self.model_note, section("Components"), self.model_status,
                       section("Device"), w.HBox([self.device_info, self.check_device_button],
                                                 layout=w.Layout(flex_flow="row wrap"))])

    def _build_results_tab(self, export_dir: Path) -> w.Widget:
        self.results_title = classed(w.HTML("<i>no run yet: press Run</i>"), "zr-results-title")
        self.results_headline = classed(w.HTML(""), "zr-headline-numbers")
        self.wipe_slider = classed(w.FloatSlider(value=0.5, min=0.0, max=1.0, step=0.01, description="wipe",
                                                 readout=False, continuous_update=True,
                                                 tooltip="drag: the source (prepared) left of the line, the output "
                                                         "right of it",
                                                 style={"description_width": "40px"},
                                                 layout=w.Layout(width="360px", max_width="100%")), "zr-wipe-slider")
        self.wipe_image = thumb_image("zr-wipe", 320)
        self.wipe_box = classed(w.VBox([self.wipe_image, self.wipe_slider,
                                        w.HTML(caption_html("left of the line: source (prepared) · right: output",
                                                            width=360))], layout=w.Layout(display="none")),
                                "zr-wipe-box")
        self.results_images = classed(w.HBox([], layout=w.Layout(flex_flow="row wrap")), "zr-results-images")
        self.results_notes = classed(w.HTML(""), "zr-results-notes")
        self.results_metrics = classed(w.HTML(""), "zr-metrics")
        self.results_plots = classed(w.HBox([], layout=w.Layout(flex_flow="row wrap", align_items="flex-start")),
                                     "zr-plots")
        self.export_dir = classed(w.Text(value=str(export_dir), description="export to",
                                         layout=w.Layout(width="auto", min_width="260px", max_width="420px")),
                                  "zr-export-dir")
        self.save_png_button = classed(w.Button(description="Save PNG", icon="image"), "zr-save-png")
        self.save_record_button = classed(w.Button(description="Save record", icon="file"), "zr-save-record")
        self.report_button = classed(w.Button(description="Write report", icon="book",
                                              tooltip="a report notebook of this run (zrealism_lab.reports)"),
                                     "zr-save-report")
        self.export_message = classed(w.HTML(""), "zr-export-message")
        self.downloads = classed(w.HTML(""), "zr-downloads")
        exports = w.VBox([self.downloads, w.HBox([self.export_dir, self.save_png_button, self.save_record_button,
                                                  self.report_button], layout=w.Layout(flex_flow="row wrap")),
                          self.export_message])
        return w.VBox([self.results_title, self.results_headline, self.results_plots,
                       section("Before / after"), self.wipe_box, self.results_images, self.results_notes,
                       self.results_metrics, section("Download and export"), exports])

    def _build_history_tab(self) -> w.Widget:
        self.history_gallery = classed(w.HTML("<i>no runs yet: finished runs (and those already in the run folder) "
                                              "show here, newest first</i>"), "zr-history-gallery")
        self.history_list = classed(w.Select(options=[], rows=8, layout=w.Layout(width="auto", max_width="100%")),
                                    "zr-history")
        self.reopen_button = classed(w.Button(description="Reopen", icon="folder-open",
                                              tooltip="show the selected run on the Results tab"), "zr-reopen")
        self.send_button = classed(w.Button(description="Send to Controls", icon="share",
                                            tooltip="load the selected run's settings into the Controls tab"),
                                   "zr-send-settings")
        wide = {"layout": w.Layout(width="auto", min_width="200px", max_width="460px")}
        self.compare_a = classed(w.Dropdown(options=[], description="compare", **wide), "zr-compare-a")
        self.compare_b = classed(w.Dropdown(options=[], description="with", **wide), "zr-compare-b")
        self.compare_button = classed(w.Button(description="Compare", icon="columns",
                                               layout=w.Layout(min_width="110px")), "zr-compare")
        self.compare_view = classed(w.VBox([]), "zr-compare-view")
        self.history_message = classed(w.HTML(""), "zr-history-message")
        return w.VBox([self.history_gallery, self.history_list, w.HBox([self.reopen_button, self.send_button]),
                       self.history_message, section("Compare two runs"),
                       w.HBox([self.compare_a, self.compare_b, self.compare_button],
                              layout=w.Layout(flex_flow="row wrap")), self.compare_view])

    # ------------------------------------------------------------------------------------------- showing
    def say(self, text: str, level: str = "info") -> None:
        """Show ``text`` on the run bar's message line; level is info, ok, warn or error."""
        self.message.value = message_html(text, level)

    def show_phase(self, phase: Phase, message: str = "") -> None:
        """The run state's badge, Cancel only while running, Run off while busy, the bar's colour once finished
        (a RunState listener)."""
        self.state_badge.value = badge_html(phase.value)
        self.cancel_button.disabled = phase is not Phase.RUNNING
        self.progress.bar_style = {Phase.DONE: "success", Phase.CANCELLED: "warning",
                                   Phase.ERROR: "danger"}.get(phase, "")
        if phase not in (Phase.RUNNING, Phase.CANCELLING):
            self.busy_bar.layout.display = "none"
            self.progress.layout.display = ""
        self.update_run_button()

    def update_run_button(self) -> None:
        """Run is off while a job runs or while the preflight has a blocking problem (its reason shows beside)."""
        busy = self.runner.busy if hasattr(self, "runner") else False
        self.run_button.disabled = busy or bool(getattr(self, "blocking_problems", ()))

    def reset_run_bar(self) -> None:
        """The run bar as a job starts: no error, an empty bar, no preview."""
        self.error_details.layout.display = "none"
        self.progress.value, self.progress.max = 0, 1
        self.progress.bar_style = ""
        self.progress_text.value = "starting ..."
        self.preview_image.value = placeholder()

    def show_progress(self, step: int, total: int, text: str) -> None:
        if total <= 0:  # a stage of unknown length: a moving bar, and the label counts time
            self.progress.layout.display = "none"
            self.busy_bar.layout.display = ""
            self.progress_text.value = html.escape(text)
            return
        self.busy_bar.layout.display = "none"
        self.progress.layout.display = ""
        total = max(1, int(total))
        if self.progress.max != total:
            self.progress.value = 0
            self.progress.max = total
        self.progress.value = min(int(step), total)
        self.progress_text.value = html.escape(text)

    def show_view(self, view: ProgressView) -> None:
        if view.marker:  # after denoising: the bar stays where denoising left it
            self.progress_text.value = html.escape(view.text)
            return
        self.show_progress(view.step, 0 if view.indeterminate else view.total, view.text)

    def show_failure(self, outcome: Outcome) -> None:
        """A cancelled or failed job on the run bar: a short message, the traceback behind 'error details'."""
        if outcome.status == "cancelled":
            self.say(f"Cancelled: {_sentence(str(outcome.error))}", "warn")
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
        self.mask_image.value = display_png(analysis.overlay(loaded.image))
        self.analysis_text.value = analysis_html(loaded, analysis, self.fields["background_kind"].value)

    def show_source_picture(self, image: Image.Image | None) -> None:
        self.source_image.value = placeholder() if image is None else display_png(_flatten(image))

    def show_maps(self, control_maps: Mapping[str, Any]) -> None:
        """Each unit row's latest control map (the placeholder for kinds without one)."""
        for kind, row in self.unit_rows.items():
            control_map = control_maps.get(kind)
            row.show_map(None if control_map is None else control_map.image)

    def show_preflight(self, problems: Sequence[Any]) -> None:
        """The preflight's reasons beside Run and on the unit rows they belong to; blocking ones switch Run off."""
        self.blocking_problems = [p for p in problems if p.blocking]
        self.preflight_text.value = preflight_html(problems)
        for kind, row in self.unit_rows.items():
            row.preflight.value = preflight_html([p for p in problems if p.where == f"unit:{kind}"])
        self.update_run_button()

    def show_result(self, view: RunView, downloads: str) -> None:
        """A finished still on the Results tab: the headline numbers and panel first, the pictures in equal boxes,
        the before/after wipe, the full metric table folded, the download buttons."""
        self.results_title.value = f'<b class="zr-results-run">{html.escape(view.label)}</b>'
        self.results_headline.value = headline_html(view)
        self.results_plots.children = plot_pictures(view)
        self.results_images.children = gallery(view)
        self.results_notes.value = adapters_html(view.adapters) + notes_html(view, self.tiny_note)
        self.results_metrics.value = metric_table_html(view)
        self.wipe_view = view
        self.wipe_box.layout.display = "" if view.source is not None and view.output is not None else "none"
        self.show_wipe()
        self.downloads.value = downloads
        self.export_message.value = ""

    def show_wipe(self) -> None:
        view = getattr(self, "wipe_view", None)
        if view is None or view.source is None or view.output is None:
            return
        self.wipe_image.value = display_png(wipe_image(view.source, view.output, self.wipe_slider.value), 320)


def _sentence(text: str) -> str:
    """'cancelled after 4 of 33 ...' after 'Cancelled:' reads 'after 4 of 33 ...' (no doubled word)."""
    return text[len("cancelled "):] if text.lower().startswith("cancelled ") else text


def _flatten(image: Image.Image) -> Image.Image:
    """An RGB picture of the source; transparency shows over light grey."""
    if image.mode == "RGBA":
        checker = Image.new("RGBA", image.size, (200, 200, 200, 255))
        return Image.alpha_composite(checker, image).convert("RGB")
    return image.convert("RGB")


__all__ = ["EMPTY_OUTPUT", "LabLayout", "RESULTS_TAB", "SOURCE_TAB", "TAB_TITLES", "TEMPORAL_TAB", "default_units"]
