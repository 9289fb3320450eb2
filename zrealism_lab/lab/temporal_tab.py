"""The lab's Temporal tab: a short clip from the current source (or the last still) with AnimateDiff, through the
same run bar, Cancel and history as a still."""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import ipywidgets as w

from ..errors import SettingsError
from ..settings import CLIP_HIRES_FIELDS, TEMPORAL_SPECS, TemporalSettings
from .fields import SpecField
from ..reports.media import figure_png, video_html
from .runner import JobContext, LabHost, Outcome
from .state import BUSY_MESSAGE, format_seconds, plain_message, summarize_error
from .views import message_html, pre_html
from .widgets import classed

# The motion settings this tab shows; everything else comes from the Controls tab.
TEMPORAL_FIELDS = ("frames", "fps", "motion_prompt", "context_length", "context_stride", "scheduler")
ANIMATE_CHOICES = (("the source (prepared like a still run)", "source"), ("the last still output", "still"))


class TemporalPanel:
    """The Temporal tab: its motion settings, Run clip, and the clip's player, metrics and curves."""

    def __init__(self, lab: LabHost) -> None:
        self.lab = lab
        self.note = classed(w.HTML(""), "zr-temporal-note")
        self.fields: dict[str, SpecField] = {}
        self.run_button = classed(w.Button(description="Run clip", button_style="primary", icon="film"),
                                   "zr-temporal-run")
        self.message = classed(w.HTML(""), "zr-temporal-message")
        self.player = classed(w.HTML(""), "zr-clip-player")
        self.metrics = classed(w.HTML(""), "zr-temporal-metrics")
        self.curves = classed(w.Image(format="png", layout=w.Layout(display="none")), "zr-temporal-curves")
        defaults = TemporalSettings()
        specs = TEMPORAL_SPECS
        from ..schedulers import SCHEDULERS

        for name in TEMPORAL_FIELDS:
            kind = "textarea" if name == "motion_prompt" else "auto"
            options = None
            if name == "scheduler":  # the registry's labels for the names the temporal engine accepts
                options = [(SCHEDULERS.get(n).label if n in SCHEDULERS else n, n) for n in specs[name].choices()]
            self.fields[name] = SpecField(specs[name], getattr(defaults, name), kind=kind, options=options)
        self.fields["frames"].value = max(int(specs["frames"].minimum), 8)
        self.animate = classed(w.Dropdown(options=list(ANIMATE_CHOICES), value="source", description="animate",
                                           layout=w.Layout(width="420px")),
                                "zr-temporal-animate")
        self.note.value = message_html(
            "A short clip (AnimateDiff + the ControlNets): the Controls tab's prompt, control units, strength, steps, "
            "CFG, seed, size and colour anchoring apply, plus these motion settings. Progress shows in the bar above; "
            "Cancel works the same.", "info")
        self.run_button.on_click(lambda _: self.run())
        self.widget = w.VBox([self.note, self.animate, *[f.row for f in self.fields.values()], self.run_button,
                              self.message, self.player, self.metrics, self.curves])

    def settings(self) -> Any:
        """TemporalSettings: the still settings plus this tab's fields, checked as the CLI checks them."""
        still = self.lab.current_settings()
        # The still's hires factor does not carry over: every frame through a second pass is a clip's own choice.
        names = (set(TEMPORAL_SPECS) - set(CLIP_HIRES_FIELDS)) | {"controls"}
        values = {k: v for k, v in still.to_dict().items() if k in names}
        values["controls"] = still.controls
        for name, field in self.fields.items():
            problem = field.validate()
            if problem:
                raise SettingsError(name, field.value, problem.removeprefix("expected "))
            values[name] = field.value
        try:
            return TemporalSettings(**values).validated()
        except SettingsError as exc:
            if exc.name in self.fields:
                self.fields[exc.name].show(f"expected {exc.allowed}")
            raise

    def run(self) -> bool:
        lab = self.lab
        if lab.runner.busy:
            self.message.value = message_html(BUSY_MESSAGE, "warn")
            return False
        try:
            settings = self.settings()
            source = lab.source_value
            if self.animate.value == "still":
                source = lab.last_result
                if source is None:
                    raise SettingsError("animate", "the last still", "a still made in this session",
                                        "Press Run first, or animate the source.")
        except Exception as exc:  # noqa: BLE001 - shown under the button
            self.message.value = message_html(f"Clip not started: {plain_message(exc)}", "error")
            return False
        preset, out_dir, label = lab.preset, lab.out_dir, lab.source_label
        if self.animate.value == "still":
            label = f"the last still (run #{lab.last_still_number})"
        from ..generate.temporal import run_temporal

        def job(ctx: JobContext) -> Any:
            engine = lab.engine_for(ctx, preset)
            return run_temporal(source, settings, engine=engine, out_dir=out_dir, on_step=ctx.report,
                                cancel=ctx.cancel, preview_every=lab.preview_every)

        def finish(outcome: Outcome) -> None:
            status = outcome.status
            lab.history.add(status if status != "completed" else "completed", settings, f"clip of {label}",
                            outcome.seconds, result=outcome.result, kind="temporal",
                            error=None if outcome.error is None else summarize_error(outcome.error).short)
            if status == "completed":
                self.show(outcome.result)
                lab.say(f"clip done in {format_seconds(outcome.seconds)}", "ok")
                self.message.value = message_html(f"clip done in {format_seconds(outcome.seconds)}", "ok")
            else:
                self.clear()  # the previous clip must not sit under "Cancelled" as if this run made it
                lab.show_failure(outcome)
                if status == "cancelled":
                    lab.show_stopped()
                self.message.value = message_html(summarize_error(outcome.error).short,
                                                  "warn" if status == "cancelled" else "error")
            lab.refresh_history()

        started = lab.start_job(job, finish, "running a clip ...")
        if started:
            self.message.value = message_html("running: progress is in the bar above", "info")
        return started

    def clear(self) -> None:
        self.player.value, self.metrics.value = "", ""
        self.curves.layout.display = "none"

    def show(self, result: Any) -> None:
        """Play a TemporalResult's clip, with its temporal metrics and per-frame curves, and its downloads."""
        mp4 = clip_bytes(result)
        self.player.value = (video_html(mp4) + clip_downloads_html(result, mp4)) if mp4 else \
            "<i>this clip has no MP4 to play</i>"
        metrics = getattr(result, "metrics", None)
        self.metrics.value = "" if metrics is None else pre_html(metrics.as_table(), "zr-temporal-metric-table")
        series = getattr(metrics, "series", None)
        if series:
            try:
                from ..plots import plot_temporal_curves

                self.curves.value = figure_png(plot_temporal_curves(series))
                self.curves.layout.display = ""
            except Exception:  # noqa: BLE001 - the clip and its numbers matter more than the figure
                self.curves.layout.display = "none"


def clip_downloads_html(result: Any, mp4: bytes) -> str:
    """Download buttons for the clip's MP4 and GIF, and where its run folder (with the frames) is."""
    import html

    from .views import download_buttons_html

    files = [(mp4, "zrealism-clip.mp4", "video/mp4", "clip MP4", "zr-download-mp4")]
    run_dir = getattr(result, "run_dir", None)
    gif = Path(run_dir) / "clip.gif" if run_dir is not None else None
    if gif is not None and gif.is_file():
        files.append((gif.read_bytes(), "zrealism-clip.gif", "image/gif", "clip GIF", "zr-download-gif"))
    where = f'<div class="zr-caption" style="text-align:left;max-width:none">run folder (frames, record): <code>' \
            f"{html.escape(str(run_dir))}</code></div>" if run_dir is not None else ""
    return download_buttons_html(files) + where


def clip_bytes(result: Any) -> bytes | None:
    """The clip's MP4: the run folder's clip.mp4, or one encoded now when the run wrote no folder."""
    run_dir = getattr(result, "run_dir", None)
    if run_dir is not None and (Path(run_dir) / "clip.mp4").is_file():
        return (Path(run_dir) / "clip.mp4").read_bytes()
    frames = getattr(result, "frames", None)
    if not frames:
        return None
    from ..source.video import write_mp4

    with tempfile.TemporaryDirectory(prefix="zrealism-clip-") as folder:
        path = Path(folder) / "clip.mp4"
        write_mp4(frames, path, result.fps)
        return path.read_bytes()


__all__ = ["TemporalPanel", "clip_bytes", "clip_downloads_html"]
