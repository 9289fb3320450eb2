"""The interactive lab: ipywidgets over the same functions the CLI calls (run_static, understand_source).

Painting the lab loads no model and imports no torch; the model loads on the first Run, on a worker thread, with
"loading model ..." in the progress line. Every widget range and option comes from the setting specs and the
registries, so the widgets accept exactly what the CLI accepts. The widgets, and how they show things, are in
layout.py; this module connects them to the source, the engine, the runs and the history.
"""
from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any, Callable

import ipywidgets as w

from ..errors import SettingsError, ZRealismError
from ..progress import StepEvent
from ..reports.media import display_png
from ..settings import SPECS, StaticSettings
from . import history as on_disk
from .layout import RESULTS_TAB, TEMPORAL_TAB, LabLayout, default_units
from .runner import Job, JobContext, LatestOnly, Outcome, Runner
from .state import BUSY_MESSAGE, RunHistory, Throttle, format_seconds, progress_view, summarize_error
from .temporal_tab import TemporalPanel
from .views import comparison, components_html, device_html, message_html

UPLOAD_VALUE = "__upload__"
# Uploaded (or path-given) source files above this size are refused before they are read or decoded; the pixel
# cap of intake then guards the decode itself.
MAX_UPLOAD_BYTES = 256 * 2**20


class Lab(LabLayout):
    """The lab app. ``Lab(preset="tiny", size=64, steps=6)`` starts with those settings; any StaticSettings field
    can be given the same way. Runs write their folders under ``out_dir`` (None: no run folders)."""

    def __init__(self, preset: str = "realistic-vision", *, source: str | os.PathLike | bytes = "transparent",
                 out_dir: str | os.PathLike | None = "runs", preview_every: int = 2, device: str = "auto",
                 updates_per_second: float = 10.0, **settings: Any) -> None:
        from ..models.modelset import PRESETS

        base = StaticSettings.from_dict(settings).validated()
        self.presets = tuple(PRESETS) + (() if preset in PRESETS else (str(preset),))
        self.out_dir = None if out_dir is None else Path(out_dir)
        self.preview_every = int(preview_every)
        self.device = device
        self.runner = Runner()
        self.history = RunHistory()
        self._throttle = Throttle(1.0 / updates_per_second)
        self._stage: str | None = None
        self._engine: Any = None
        self._source: tuple[str, Any] = ("", None)  # (label, what run_static is given)
        self._upload: tuple[str, bytes] | None = None
        self._shown: Any = None  # the HistoryEntry on the results tab
        self._analysis_jobs, self._status_jobs = LatestOnly("analysis"), LatestOnly("model-status")
        self.profiles, profile_problem = _load_profiles()
        self.temporal = TemporalPanel(self)  # keeps the lab to run clips with; its tab goes into the layout

        super().__init__(preset=preset, presets=self.presets, base=base, profiles=self.profiles,
                         profile_problem=profile_problem, export_dir=(self.out_dir or Path("runs")) / "exports",
                         preview_every=self.preview_every, temporal_tab=self.temporal.widget)
        self._connect()
        self.runner.state.subscribe(self.show_phase)
        self.show_phase(self.runner.state.phase)
        self.set_source(source)
        self.refresh_model_status()

    def _connect(self) -> None:
        self.run_button.on_click(lambda _: self.run())
        self.cancel_button.on_click(lambda _: self.cancel())
        self.sample_picker.observe(self._on_sample, names="value")
        self.upload.observe(self._on_upload, names="value")
        self.preset_picker.observe(self._on_preset, names="value")
        self.check_device_button.on_click(lambda _: self.refresh_model_status(check_device=True))
        self.randomise_button.on_click(lambda _: self.randomise_seed())
        self.fields["profile"].input.observe(self._on_profile, names="value")
        self.maps_button.on_click(lambda _: self.preview_maps())
        self.save_png_button.on_click(lambda _: self._export(self.save_png))
        self.save_record_button.on_click(lambda _: self._export(self.save_record))
        self.report_button.on_click(lambda _: self.write_report())
        self.reopen_button.on_click(lambda _: self._reopen_selected())
        self.compare_button.on_click(lambda _: self._compare_selected())

    # ------------------------------------------------------------------------------------------- display
    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.widget._repr_mimebundle_(**kwargs)

    def display(self) -> None:
        from IPython.display import display

        display(self.widget)

    # ------------------------------------------------------------------------------------------- source
    @property
    def source_label(self) -> str:
        """How the current source is named in messages and the history ("sample dark", "upload me.png")."""
        return self._source[0]

    @property
    def source_value(self) -> Any:
        """The current source as run_static takes it: a sample's path or an upload's bytes."""
        return self._source[1]

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
        self._source = (label, value)
        self.source_message.value = message_html(f"source: {label}", "info")
        self.analysis_text.value = "<i>analysing the background ...</i>"
        self._analysis_jobs.submit(lambda: _analyse(value), self.show_analysis, self._analysis_failed)

    def _analysis_failed(self, exc: BaseException) -> None:
        self.analysis_text.value = ""
        self.source_message.value = message_html(summarize_error(exc).short, "error")

    # ------------------------------------------------------------------------------------------- model
    def _on_preset(self, change: dict) -> None:
        defaults = {u.kind: u for u in default_units(change["new"])}
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
            return components_html(preset), device_html(engine, self.device, check_device)

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

    # ------------------------------------------------------------------------------------------- runs
    def checked_settings(self) -> Any:
        """The widgets' settings when a job may start now; None, with the reason shown, when one is running or the
        settings are not valid."""
        if self.runner.busy:
            self.say(BUSY_MESSAGE, "warn")
            return None
        try:
            return self.current_settings()
        except ZRealismError as exc:
            self.say(f"Not started: {exc}", "error")
            return None

    def run(self) -> bool:
        """Start a generation (the Run button). False, with a message and nothing queued, when one is running or
        the settings are not valid."""
        settings = self.checked_settings()
        if settings is None:
            return False
        preset, source, label = self.preset, self.source_value, self.source_label

        def job(ctx: JobContext) -> Any:
            from ..generate.static import run_static

            engine = self.engine_for(ctx, preset)
            return run_static(source, settings, engine=engine, out_dir=self.out_dir, on_step=ctx.report,
                              cancel=ctx.cancel, preview_every=self.preview_every)

        def finish(outcome: Outcome) -> None:
            self._finish_run(outcome, settings, label)

        return self.start_job(job, finish, f"running: {label}")

    def preview_maps(self) -> bool:
        """Detect the enabled kinds' control maps for the current source (no diffusion model runs)."""
        settings = self.checked_settings()
        if settings is None:
            return False
        preset, source = self.preset, self.source_value

        def job(ctx: JobContext) -> Any:
            from ..generate.static import understand_source

            engine = self.engine_for(ctx, preset)
            ctx.report(StepEvent("controls", 0, 1, None, 0.0, None))
            return understand_source(source, settings, engine)

        def finish(outcome: Outcome) -> None:
            if outcome.status == "completed":
                self.show_maps(outcome.result.control_maps)
                notes = "; ".join(outcome.result.warnings)
                self.say(f"control maps ready ({', '.join(outcome.result.control_maps) or 'none enabled'})"
                         + (f". Notes: {notes}" if notes else ""), "ok")
                self.show_progress(1, 1, "control maps ready")
            else:
                self.show_failure(outcome)

        return self.start_job(job, finish, "detecting control maps ...")

    def cancel(self) -> bool:
        """Ask the active run to stop (the Cancel button); it stops within one denoising step."""
        if self.runner.cancel():
            self.say("cancelling: the run stops after the current denoising step ...", "warn")
            return True
        return False

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the active run ends (scripts and tests; the UI never needs this)."""
        return self.runner.wait(timeout)

    def start_job(self, job: Job, finish: Callable[[Outcome], None], message: str) -> bool:
        """Reset the run bar and start ``job`` on the worker thread; ``finish`` gets its Outcome there. False, with
        the busy message, when a run is active."""
        self._stage = None
        self._throttle.reset()
        self.reset_run_bar()
        if not self.runner.start(job, on_progress=self._on_step, on_finish=finish, message=message):
            self.say(BUSY_MESSAGE, "warn")
            return False
        self.say(message, "info")
        return True

    def engine_for(self, ctx: JobContext, preset: str) -> Any:
        """The engine of ``preset`` (kept between runs, loaded on the worker thread when the preset changed)."""
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
        self.show_progress(view.step, view.total, view.text)
        if event.preview is not None:
            self.preview_image.value = display_png(event.preview)

    def _finish_run(self, outcome: Outcome, settings: StaticSettings, label: str) -> None:
        """On the worker thread, before the state leaves 'running': the outputs are on screen by then."""
        if outcome.status == "completed":
            result = outcome.result
            entry = self.history.add("completed", settings, label, outcome.seconds, result=result)
            self.output_image.value = display_png(result.image)
            self.show_run(entry.number)
            where = f" · run folder {result.run_dir}" if result.run_dir else ""
            self.say(f"done in {format_seconds(outcome.seconds)}: run #{entry.number}{where}", "ok")
        elif outcome.status == "cancelled":
            # RunWriter.fail puts the run folder on the exception: run_static raises, so it cannot return it
            run_dir = getattr(outcome.error, "run_dir", None)
            recorded = on_disk.record_status(run_dir)
            self.history.add("cancelled", settings, label, outcome.seconds, error=str(outcome.error), folder=run_dir)
            suffix = f" · the run record says '{recorded}' ({run_dir})" if recorded else ""
            self.say(f"Cancelled: {outcome.error}{suffix}", "warn")
            self.show_progress(self.progress.value, self.progress.max,
                               f"stopped at step {self.progress.value}/{self.progress.max}")
        else:
            self.history.add("failed", settings, label, outcome.seconds, error=summarize_error(outcome.error).short)
            self.show_failure(outcome)
        self.refresh_history()
        self.refresh_model_status()

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
        self._shown = entry
        self.show_result(entry)

    def _shown_entry(self) -> Any:
        if self._shown is None:
            raise SettingsError("run", None, "a finished run on the Results tab", "Press Run first.")
        return self._shown

    def _export_folder(self) -> Path:
        return Path(self.export_dir.value).expanduser()

    def save_png(self) -> Path:
        return on_disk.save_png(self._shown_entry(), self._export_folder())

    def save_record(self) -> Path:
        return on_disk.save_record(self._shown_entry(), self._export_folder())

    def write_report(self) -> bool:
        """Re-run the shown run's settings through the static report notebook (papermill) into the export folder,
        on the worker thread; the HTML report's path shows next to the buttons."""
        try:
            entry = self._shown_entry()
            from ..reports.execute import notebook_parameters, notebook_path, run_report

            known = notebook_parameters(notebook_path("static"))
            folder = self._export_folder()
            parameters = on_disk.report_parameters(entry, self.preset, folder, known)
        except Exception as exc:  # noqa: BLE001 - shown next to the buttons
            self.export_message.value = message_html(summarize_error(exc).short, "error")
            return False

        def job(ctx: JobContext) -> Any:
            ctx.report(StepEvent("report", 0, 1, None, 0.0, None))
            return run_report("static", parameters, folder, progress=False)

        def finish(outcome: Outcome) -> None:
            if outcome.status == "completed":
                self.export_message.value = message_html(f"report written: {outcome.result.html}", "ok")
                self.say(f"report written in {format_seconds(outcome.seconds)}", "ok")
                self.show_progress(1, 1, "report written")
            else:
                self.show_failure(outcome)
                self.export_message.value = message_html(summarize_error(outcome.error).short, "error")

        return self.start_job(job, finish, "writing the report (the notebook re-runs this run's settings) ...")

    def _export(self, action: Callable[[], Path]) -> None:
        try:
            path = action()
        except Exception as exc:  # noqa: BLE001 - shown next to the buttons, never a traceback wall
            self.export_message.value = message_html(summarize_error(exc).short, "error")
            return
        self.export_message.value = message_html(f"saved {path}", "ok")

    # ------------------------------------------------------------------------------------------- history
    def refresh_history(self) -> None:
        """Fill the History tab's list and compare pickers from the session's runs (newest first)."""
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
        self.tabs.selected_index = TEMPORAL_TAB if temporal else RESULTS_TAB

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


def _load_profiles() -> tuple[dict[str, Any], str]:
    """The character profiles, and what is wrong with them ("" when nothing)."""
    from ..profiles import load_profiles

    try:
        return load_profiles(), ""
    except ZRealismError as exc:  # a broken user profile folder must not stop the lab from painting
        return {}, str(exc)


def _too_large(size: int) -> str:
    return (f"the file is {size / 2**20:.0f} MB, above the lab's upload limit of {MAX_UPLOAD_BYTES // 2**20} MB: "
            "downscale or re-encode it (a PNG or JPEG of a few MB is plenty for 512-1024 px runs)")


def _analyse(value: Any) -> tuple[Any, Any]:
    from ..source.background import analyze_background
    from ..source.intake import load_image

    loaded = load_image(value)
    return loaded, analyze_background(loaded.image)
