"""The interactive lab: ipywidgets over the same functions the CLI calls (run_static, understand_source).

Painting the lab loads no model and imports no torch; the model loads on the first Run, on a worker thread, with
"loading model ..." in the progress line. Every widget range and option comes from the setting specs and the
registries, so the widgets accept exactly what the CLI accepts. The widgets, and how they show things, are in
layout.py; the source panel's rules in source_panel.py; this module connects them to the engine, the runs and the
history.
"""
from __future__ import annotations

import os
import secrets
import threading
import time
from pathlib import Path
from typing import Any, Callable

import ipywidgets as w

from ..errors import ZRealismError
from ..progress import StepEvent
from ..reports.media import display_png
from ..settings import SPECS, StaticSettings
from . import history as on_disk
from .compare import comparison
from .disk_runs import load_history
from .layout import RESULTS_TAB, TEMPORAL_TAB, default_units
from .preflight import blocking
from .run_view import clip_of, view_of
from .runner import Job, JobContext, LatestOnly, Outcome, Runner
from .source_panel import SourcePanel
from .state import BUSY_MESSAGE, RunHistory, Throttle, format_seconds, plain_message, progress_view, \
    summarize_error
from .status_views import components_html, device_html
from .temporal_tab import TemporalPanel
from .views import caption_html, message_html


class Lab(SourcePanel):
    """The lab app. ``Lab(preset="tiny", size=64, steps=6)`` starts with those settings; any StaticSettings field
    can be given the same way. Runs write their folders under ``out_dir`` (None: no run folders); the runs already
    there fill the History tab."""

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
        self._shown: Any = None  # the HistoryEntry on the results tab
        self._report: Path | None = None  # the report written for the shown run
        self._last_seed: int | None = None
        self._status_jobs, self._preflight_jobs = LatestOnly("model-status"), LatestOnly("preflight")
        self.blocking_problems: list[Any] = []
        self.profiles, profile_problem = _load_profiles()
        self.temporal = TemporalPanel(self)  # keeps the lab to run clips with; its tab goes into the layout

        super().__init__(preset=preset, presets=self.presets, base=base, profiles=self.profiles,
                         profile_problem=profile_problem, export_dir=(self.out_dir or Path("runs")) / "exports",
                         preview_every=self.preview_every, temporal_tab=self.temporal.widget)
        self._connect()
        self.runner.state.subscribe(self.show_phase)
        self.show_phase(self.runner.state.phase)
        load_history(self.history, self.out_dir)
        self.refresh_history()
        self.set_source(source)
        self.refresh_model_status()

    def _connect(self) -> None:
        self.run_button.on_click(lambda _: self.run())
        self.cancel_button.on_click(lambda _: self.cancel())
        self.connect_source()
        self.preset_picker.observe(self._on_preset, names="value")
        self.check_device_button.on_click(lambda _: self.refresh_model_status(check_device=True))
        self.randomise_button.on_click(lambda _: self.randomise_seed())
        self.reuse_seed_button.on_click(lambda _: self.reuse_seed())
        self.fields["profile"].input.observe(self._on_profile, names="value")
        self.fields["size"].input.observe(lambda _: self.refresh_preflight(), names="value")
        for row in self.unit_rows.values():
            row.enabled.observe(lambda _: self.refresh_preflight(), names="value")
            row.method.observe(lambda _: self.refresh_preflight(), names="value")
        self.maps_button.on_click(lambda _: self.preview_maps())
        self.save_png_button.on_click(lambda _: self._export(self.save_png))
        self.save_record_button.on_click(lambda _: self._export(self.save_record))
        self.report_button.on_click(lambda _: self.write_report())
        self.reopen_button.on_click(lambda _: self._reopen_selected())
        self.send_button.on_click(lambda _: self._send_selected())
        self.compare_button.on_click(lambda _: self._compare_selected())
        self.wipe_slider.observe(lambda _: self.show_wipe(), names="value")

    # ------------------------------------------------------------------------------------------- display
    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.widget._repr_mimebundle_(**kwargs)

    def display(self) -> None:
        from IPython.display import display

        display(self.widget)

    # ------------------------------------------------------------------------------------------- model
    def _on_preset(self, change: dict) -> None:
        defaults = {u.kind: u for u in default_units(change["new"])}
        for kind, row in self.unit_rows.items():
            row.apply(defaults.get(kind))
        self._engine = None
        self.fields["speed"].validate()  # its note says whether this preset's few-step LoRA is here
        self.refresh_model_status()

    @property
    def preset(self) -> str:
        return self.preset_picker.value

    def refresh_model_status(self, check_device: bool = False) -> None:
        preset = self.preset
        self.model_note.layout.display = "" if preset == "tiny" else "none"
        self.model_status.value = "<i>checking components ...</i>"
        engine, folder = self._engine, self.annotator_folder()

        def work() -> tuple[str, str]:
            return components_html(preset, folder), device_html(engine, self.device, check_device)

        def apply(found: tuple[str, str]) -> None:
            self.model_status.value, self.device_info.value = found

        def failed(exc: BaseException) -> None:
            self.model_status.value = message_html(summarize_error(exc).short, "error")

        self._status_jobs.submit(work, apply, failed)
        self.refresh_preflight()

    def annotator_folder(self) -> str | None:
        """Where detector checkpoints are read from: ZREALISM_ANNOTATOR_DIR when set (else the hub cache)."""
        return os.environ.get("ZREALISM_ANNOTATOR_DIR") or None

    def preflight_now(self) -> list[Any]:
        """The preflight's problems for the settings on screen (weights, detector files, size for this source)."""
        from .preflight import model_problems, size_problems, unit_problems

        enabled = [(kind, row) for kind, row in self.unit_rows.items() if row.enabled.value]
        problems = model_problems(self.preset, [kind for kind, _ in enabled])
        folder = self.annotator_folder()
        for kind, row in enabled:
            problems += unit_problems(kind, row.label, row.method.value, folder)
        problems += size_problems(self.fields["size"].value, self.source_size)
        return problems

    def refresh_preflight(self) -> None:
        """Check again off the main thread (the hub cache is read); the newest answer is shown."""
        if not hasattr(self, "unit_rows"):
            return
        self._preflight_jobs.submit(self.preflight_now, self.show_preflight,
                                    lambda exc: self.say(summarize_error(exc).short, "error"))

    # ------------------------------------------------------------------------------------------- settings
    def randomise_seed(self) -> int:
        spec = SPECS["seed"]
        seed = secrets.randbelow(int(spec.maximum) + 1)
        self.fields["seed"].value = seed
        return seed

    def reuse_seed(self) -> int | None:
        """The last finished run's seed back in the seed box (A1111's recycle button)."""
        if self._last_seed is not None:
            self.fields["seed"].value = self._last_seed
        return self._last_seed

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
    def checked_settings(self, what: str = "Run") -> Any:
        """The widgets' settings when a job may start now; None, with every reason shown, when one is running,
        a field is not valid or the preflight blocks."""
        if self.runner.busy:
            self.say(BUSY_MESSAGE, "warn")
            return None
        problems = self.field_problems()
        if problems:
            listed = "; ".join(f"{label} ('{value}'): {message}" for _, label, value, message in problems)
            self.say(f"{what} not started. Fix {'this' if len(problems) == 1 else 'these'} first: {listed}", "error")
            self.reset_progress()
            return None
        try:
            settings = self.current_settings()
        except ZRealismError as exc:
            self.say(f"{what} not started: {plain_message(exc)}", "error")
            self.reset_progress()
            return None
        stops = blocking(self.preflight_now())
        if stops:
            self.say(f"{what} not started: " + " ".join(p.text for p in stops), "error")
            self.reset_progress()
            return None
        return settings

    def reset_progress(self) -> None:
        """A refused action leaves no stale 'done' bar behind it."""
        if not self.runner.busy:
            self.progress.value, self.progress.bar_style = 0, ""
            self.progress_text.value = ""

    def run(self) -> bool:
        """Start a generation (the Run button, Ctrl+Enter). False, with a message and nothing queued, when one is
        running or the settings are not valid."""
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
        settings = self.checked_settings("Map preview")
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
        """Ask the active run to stop (the Cancel button, Esc); it stops within one denoising step."""
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
        if self.runner.busy:
            self.say(BUSY_MESSAGE, "warn")
            return False
        self._stage = None
        self._throttle.reset()
        self.reset_run_bar()
        # Said before the start: a job that fails at once writes its error from the worker thread, which a
        # "running" line said afterwards would overwrite.
        self.say(message, "info")
        if not self.runner.start(job, on_progress=self._on_step, on_finish=finish, message=message):
            self.say(BUSY_MESSAGE, "warn")
            return False
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
        self.show_view(progress_view(event))
        if event.preview is not None:
            self.preview_image.value = display_png(event.preview)

    def show_stopped(self) -> None:
        """A cancelled job's progress line: where it stopped, no ETA left behind."""
        self.show_progress(self.progress.value, self.progress.max,
                           f"stopped at step {self.progress.value}/{self.progress.max}")

    def _finish_run(self, outcome: Outcome, settings: StaticSettings, label: str) -> None:
        """On the worker thread, before the state leaves 'running': the outputs are on screen by then."""
        if outcome.status == "completed":
            result = outcome.result
            entry = self.history.add("completed", settings, label, outcome.seconds, result=result)
            picture = display_png(result.image)
            self.output_image.value = picture
            self.preview_image.value = picture  # the last preview is a blurry latent: show the result instead
            self.output_caption.value = caption_html(f"output · run #{entry.number}")
            self._last_seed = settings.seed
            self.reuse_seed_button.disabled = False
            self.reuse_seed_button.tooltip = f"reuse seed {settings.seed} of run #{entry.number}"
            self.show_run(entry.number)
            where = f" · run folder {result.run_dir}" if result.run_dir else ""
            self.show_progress(self.progress.max, self.progress.max,
                               f"done in {format_seconds(outcome.seconds)}")
            self.say(f"done in {format_seconds(outcome.seconds)}: run #{entry.number}{where}", "ok")
        elif outcome.status == "cancelled":
            # RunWriter.fail puts the run folder on the exception: run_static raises, so it cannot return it
            run_dir = getattr(outcome.error, "run_dir", None)
            recorded = on_disk.record_status(run_dir)
            entry = self.history.add("cancelled", settings, label, outcome.seconds, error=str(outcome.error),
                                     folder=run_dir)
            suffix = f" · the run record says '{recorded}' ({run_dir})" if recorded else ""
            self.show_failure(outcome)
            self.say(self.message_text() + suffix, "warn")
            self.output_caption.value = caption_html(f"output of an earlier run (run #{entry.number} was cancelled)")
            self.show_stopped()
        else:
            self.history.add("failed", settings, label, outcome.seconds, error=summarize_error(outcome.error).short,
                             folder=getattr(outcome.error, "run_dir", None))
            self.show_failure(outcome)
        self.refresh_history()
        self.refresh_model_status()

    def message_text(self) -> str:
        """The run bar's message as plain text."""
        import html
        import re

        return html.unescape(re.sub(r"<[^>]+>", "", self.message.value))

    # ------------------------------------------------------------------------------------------- results
    @property
    def last_result(self) -> Any:
        completed = [e for e in self.history.completed() if e.result is not None]
        return completed[-1].result if completed else None

    @property
    def last_still_number(self) -> int | None:
        completed = [e for e in self.history.completed() if e.result is not None]
        return completed[-1].number if completed else None

    def show_run(self, number: int) -> None:
        """Show a finished run (this session's or from its folder) on the Results or Temporal tab (what Reopen
        does). LookupError, saying why, for a run without pictures."""
        entry = self.history.get(number)
        if entry.kind == "temporal":
            if entry.status != "completed":
                raise LookupError(_no_pictures(entry))
            self.temporal.show(clip_of(entry))
            return
        if not entry.viewable:
            raise LookupError(_no_pictures(entry))
        self._shown, self._report = entry, None
        self.show_result(view_of(entry), on_disk.download_links_html(entry))

    def _shown_entry(self) -> Any:
        if self._shown is None:
            raise LookupError("No run is shown on the Results tab yet: press Run, or reopen one from History.")
        return self._shown

    def _export_folder(self) -> Path:
        return Path(self.export_dir.value).expanduser()

    def save_png(self) -> Path:
        return on_disk.save_png(self._shown_entry(), self._export_folder())

    def save_record(self) -> Path:
        return on_disk.save_record(self._shown_entry(), self._export_folder())

    def write_report(self) -> bool:
        """Re-run the shown run's settings through the static report notebook (papermill) into the export folder,
        on the worker thread; a download button for the HTML report appears when it is written."""
        try:
            entry = self._shown_entry()
            from ..reports.execute import notebook_parameters, notebook_path, run_report

            known = notebook_parameters(notebook_path("static"))
            folder = self._export_folder()
            parameters = on_disk.report_parameters(entry, self.preset, folder, known)
        except Exception as exc:  # noqa: BLE001 - shown next to the buttons
            self.export_message.value = message_html(summarize_error(exc).message or str(exc), "error")
            return False

        def job(ctx: JobContext) -> Any:
            done = threading.Event()

            def tick() -> None:  # a report has no steps: the bar moves and the label counts the seconds
                while not done.is_set():
                    ctx.report(StepEvent("report", 0, 0, None, time.perf_counter() - ctx.started, None))
                    done.wait(0.5)

            threading.Thread(target=tick, name="zrealism-lab-report-clock", daemon=True).start()
            try:
                return run_report("static", parameters, folder, progress=False)
            finally:
                done.set()

        def finish(outcome: Outcome) -> None:
            if outcome.status == "completed":
                self._report = Path(outcome.result.html)
                self.downloads.value = on_disk.download_links_html(entry, self._report)
                self.export_message.value = message_html(f"report written: {outcome.result.html}", "ok")
                self.say(f"report written in {format_seconds(outcome.seconds)}", "ok")
                self.show_progress(1, 1, f"report done in {format_seconds(outcome.seconds)}")
            else:
                self.show_failure(outcome)
                self.export_message.value = message_html(summarize_error(outcome.error).short, "error")

        return self.start_job(job, finish, "writing the report (the notebook re-runs this run's settings) ...")

    def _export(self, action: Callable[[], Path]) -> None:
        try:
            path = action()
        except Exception as exc:  # noqa: BLE001 - shown next to the buttons, never a traceback wall
            self.export_message.value = message_html(str(exc) if isinstance(exc, LookupError)
                                                     else summarize_error(exc).short, "error")
            return
        self.export_message.value = message_html(f"saved {path}", "ok")

    # ------------------------------------------------------------------------------------------- history
    def refresh_history(self) -> None:
        """Fill the History tab's tiles, list and compare pickers (newest first), from this session and the run
        folders on disk."""
        self.history_list.options = self.history.options()
        completed = self.history.options(self.history.completed())
        self.compare_a.options = completed
        self.compare_b.options = completed
        if len(completed) >= 2:
            self.compare_a.value, self.compare_b.value = completed[1][1], completed[0][1]
        self.history_gallery.value = on_disk.gallery_html(self.history.entries)

    def _selected(self) -> Any:
        number = self.history_list.value
        if number is None:
            self.history_message.value = message_html("Select a run in the list first.", "warn")
        return number

    def _reopen_selected(self) -> None:
        number = self._selected()
        if number is None:
            return
        try:
            self.show_run(number)
        except LookupError as exc:
            self.history_message.value = message_html(str(exc), "warn")
            return
        temporal = self.history.get(number).kind == "temporal"
        self.history_message.value = message_html(
            f"run #{number} is on the {'Temporal' if temporal else 'Results'} tab", "ok")
        self.tabs.selected_index = TEMPORAL_TAB if temporal else RESULTS_TAB

    def send_settings(self, number: int) -> list[str]:
        """Load run ``number``'s settings into the Controls tab (A1111's "send to img2img")."""
        entry = self.history.get(number)
        if entry.settings is None:
            raise LookupError(f"Run #{number}'s settings are from another version of the lab and cannot be loaded.")
        settings = entry.settings if entry.kind == "static" else entry.settings.static_settings()
        hidden = self.apply_settings(settings)
        self.refresh_preflight()
        return hidden

    def _send_selected(self) -> None:
        number = self._selected()
        if number is None:
            return
        try:
            self.send_settings(number)
        except LookupError as exc:
            self.history_message.value = message_html(str(exc), "warn")
            return
        self.history_message.value = message_html(f"the settings of run #{number} are on the Controls tab", "ok")
        self.tabs.selected_index = 2

    def compare(self, first: int, second: int) -> w.Widget:
        """Two finished runs side by side, with the settings that differ and the metric differences."""
        a, b = self.history.get(first), self.history.get(second)
        view = comparison(view_of(a), view_of(b), a.settings, b.settings)
        self.compare_view.children = [view]
        return view

    def _compare_selected(self) -> None:
        first, second = self.compare_a.value, self.compare_b.value
        if first is None or second is None:
            self.history_message.value = message_html("Two finished runs are needed to compare.", "warn")
            return
        try:
            self.compare(first, second)
        except LookupError as exc:
            self.history_message.value = message_html(str(exc), "warn")
            return
        self.history_message.value = ""


# ----------------------------------------------------------------------------------------------- helpers


def _no_pictures(entry: Any) -> str:
    why = {"cancelled": "was cancelled before its pictures were made",
           "failed": "failed before its pictures were made"}.get(entry.status, f"ended as '{entry.status}'")
    error = f" ({entry.error})" if entry.error else ""
    return f"Run #{entry.number} {why}{error}. Its settings can still be sent to the Controls tab."


def _load_profiles() -> tuple[dict[str, Any], str]:
    """The character profiles, and what is wrong with them ("" when nothing)."""
    from ..profiles import load_profiles

    try:
        return load_profiles(), ""
    except ZRealismError as exc:  # a broken user profile folder must not stop the lab from painting
        return {}, str(exc)


__all__ = ["Lab"]
