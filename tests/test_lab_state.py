"""The lab without a browser: its state machine, one-run-at-a-time under threads, progress wording and throttling,
validation and error summaries, and a headless Lab() driving real tiny runs (done, cancelled, invalid settings)."""
from __future__ import annotations

import html
import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from zrealism_lab.errors import CancelledError, SettingsError
from zrealism_lab.lab.runner import LatestOnly, Runner
from zrealism_lab.lab.state import (
    BUSY_MESSAGE,
    Phase,
    RunHistory,
    RunState,
    Throttle,
    TransitionError,
    check_field,
    check_unit_range,
    format_seconds,
    progress_view,
    summarize_error,
)
from zrealism_lab.progress import StepEvent
from zrealism_lab.settings import SPECS, StaticSettings

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


# ------------------------------------------------------------------------------------------------ state machine


def test_state_machine_happy_path_and_listeners():
    state = RunState()
    seen = []
    state.subscribe(lambda phase, message: seen.append(phase))
    assert state.phase is Phase.IDLE and not state.busy
    assert state.try_start()
    assert state.busy
    state.finish()
    assert state.phase is Phase.DONE and not state.busy
    assert state.try_start()  # a finished run may be followed by a new one
    state.fail("ValueError: boom")
    assert state.phase is Phase.ERROR and state.message == "ValueError: boom"
    assert seen == [Phase.RUNNING, Phase.DONE, Phase.RUNNING, Phase.ERROR]


def test_state_machine_cancel_path():
    state = RunState()
    assert not state.request_cancel()  # nothing to cancel while idle
    state.try_start()
    assert state.request_cancel()
    assert state.phase is Phase.CANCELLING and state.busy
    assert not state.request_cancel()  # a second cancel changes nothing
    assert not state.try_start()  # still busy while cancelling
    state.mark_cancelled("cancelled after 2 of 8 denoising steps")
    assert state.phase is Phase.CANCELLED and not state.busy


@pytest.mark.parametrize("move", ["finish", "mark_cancelled"])
def test_state_machine_refuses_impossible_transitions(move):
    state = RunState()
    with pytest.raises(TransitionError):
        getattr(state, move)()
    with pytest.raises(TransitionError):
        state.fail("no run to fail")
    assert state.phase is Phase.IDLE


def test_try_start_is_atomic_across_threads():
    state = RunState()
    barrier = threading.Barrier(8)
    wins = []

    def press():
        barrier.wait()
        wins.append(state.try_start())

    threads = [threading.Thread(target=press) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(5)
    assert wins.count(True) == 1 and state.runs_started == 1


# ------------------------------------------------------------------------------------------------ runner


def test_runner_runs_one_job_at_a_time_and_queues_nothing():
    runner = Runner()
    release = threading.Event()
    calls = []

    def job(ctx):
        calls.append(threading.current_thread().name)
        release.wait(5)
        return "result"

    barrier = threading.Barrier(6)
    accepted = []

    def press():
        barrier.wait()
        accepted.append(runner.start(job))

    threads = [threading.Thread(target=press) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(5)
    assert accepted.count(True) == 1
    assert runner.busy and runner.state.phase is Phase.RUNNING
    release.set()
    assert runner.wait(5)
    assert runner.state.phase is Phase.DONE
    assert calls == ["zrealism-lab-run"]  # ran once, off the calling thread; the refused presses queued nothing
    assert runner.last_outcome.result == "result"
    assert runner.busy_message == BUSY_MESSAGE


def test_runner_cancel_reaches_the_job_and_ends_cancelled():
    runner = Runner()
    in_job = threading.Event()
    busy_while_finishing = []

    def job(ctx):
        in_job.set()
        for _ in range(500):  # a stand-in denoising loop that checks the token between steps
            if ctx.cancel.cancelled:
                raise CancelledError("cancelled after 1 step")
            threading.Event().wait(0.01)
        return "never"

    def finish(outcome):
        busy_while_finishing.append((outcome.status, runner.busy))

    assert runner.start(job, on_finish=finish)
    assert in_job.wait(5)
    assert runner.cancel()
    assert runner.state.phase in (Phase.CANCELLING, Phase.CANCELLED)
    assert runner.wait(5)
    assert runner.state.phase is Phase.CANCELLED
    # outputs are shown before the state leaves 'cancelling', so a new run cannot overtake them
    assert busy_while_finishing == [("cancelled", True)]
    assert not runner.cancel()  # nothing left to cancel


def test_runner_turns_a_failing_job_into_error_state():
    runner = Runner()

    def job(ctx):
        raise RuntimeError("decoder exploded")

    assert runner.start(job)
    assert runner.wait(5)
    assert runner.state.phase is Phase.ERROR
    assert isinstance(runner.last_outcome.error, RuntimeError)
    assert "decoder exploded" in runner.state.message
    assert runner.start(lambda ctx: 1) and runner.wait(5)  # the UI is not stuck after an error
    assert runner.state.phase is Phase.DONE


def test_runner_reports_a_failure_to_show_the_outcome():
    runner = Runner()

    def finish(outcome):
        raise ValueError("widget broke")

    runner.start(lambda ctx: 1, on_finish=finish)
    assert runner.wait(5)
    assert runner.state.phase is Phase.ERROR and "widget broke" in runner.state.message


def test_latest_only_drops_stale_results():
    jobs = LatestOnly("test")
    slow_may_finish = threading.Event()
    applied = []
    jobs.submit(lambda: slow_may_finish.wait(5) and "old", applied.append, applied.append)
    jobs.submit(lambda: "new", applied.append, applied.append)
    slow_may_finish.set()
    assert jobs.wait(5)
    assert applied == ["new"]


# ------------------------------------------------------------------------------------------------ wording and rules


def test_progress_wording():
    load = progress_view(StepEvent("load", 0, 1, None, 0.0, None))
    assert load.text == "loading model ..."
    middle = progress_view(StepEvent("denoise", 3, 6, 500.0, 1.5, 1.5))
    assert middle.text == "denoising step 3/6 · 1.5 s elapsed · ETA 1.5 s"
    assert middle.fraction == pytest.approx(0.5)
    last = progress_view(StepEvent("denoise", 6, 6, 1.0, 3.0, 0.0))
    assert "ETA" not in last.text and "6/6" in last.text
    assert format_seconds(0.05) == "50 ms" and format_seconds(75) == "1 min 15 s" and format_seconds(None) == "?"


def test_throttle_limits_rate_but_lets_forced_updates_through():
    now = [0.0]
    throttle = Throttle(0.1, clock=lambda: now[0])
    assert throttle.ready()
    passed = 0
    for _ in range(50):  # 50 events within 49 ms: only forced ones pass
        now[0] += 0.001
        passed += throttle.ready()
    assert passed == 0
    assert throttle.ready(force=True)
    now[0] += 0.2
    assert throttle.ready()


def test_field_checks_come_from_the_specs():
    assert check_field(SPECS["steps"], 20) is None
    assert "from 1 to 150" in check_field(SPECS["steps"], 0)
    assert "one of" in check_field(SPECS["scheduler"], "nope")
    assert check_field(SPECS["profile"], None) is None  # optional
    assert check_unit_range(0.2, 0.1) and check_unit_range(0.0, 1.0) is None


def test_error_summary_is_short_with_details_behind():
    own = summarize_error(SettingsError("steps", 0, "an integer from 1 to 150"))
    assert own.title == "Invalid setting" and "from 1 to 150" in own.message
    try:
        raise RuntimeError("first line\n" + "noise\n" * 200)
    except RuntimeError as exc:
        foreign = summarize_error(exc)
    assert foreign.title == "RuntimeError" and foreign.message.startswith("first line") and len(foreign.message) < 500
    assert "Traceback" in foreign.details and "noise" in foreign.details


def test_history_orders_and_filters():
    history = RunHistory()
    settings = StaticSettings(steps=4, size=64)
    history.add("completed", settings, "sample dark", 1.2, result=object())
    history.add("cancelled", settings, "sample dark", 0.4, error="cancelled")
    history.add("completed", settings, "sample dark", 2.0, result=object(), kind="temporal")
    assert [number for _, number in history.options()] == [3, 2, 1]
    assert [e.number for e in history.completed()] == [1]
    assert [e.number for e in history.completed(None)] == [1, 3]
    assert "cancelled" in history.get(2).label and "clip" in history.get(3).label
    with pytest.raises(KeyError):
        history.get(9)


def test_lab_modules_import_lightly():
    """The state machine needs no widgets, and painting the lab needs no torch (models load on the first Run)."""
    code = (
        "import sys, zrealism_lab.lab.state, zrealism_lab.lab.runner; "
        "assert 'ipywidgets' not in sys.modules, 'state/runner imported ipywidgets'; "
        "from zrealism_lab import Lab; lab = Lab(preset='tiny', out_dir=None); "
        "lab._analysis_jobs.wait(30); lab._status_jobs.wait(30); "
        "heavy = [m for m in ('torch', 'diffusers', 'transformers') if m in sys.modules]; "
        "assert not heavy, heavy; assert 'confidence' in lab.analysis_text.value, lab.analysis_text.value"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]


# ------------------------------------------------------------------------------------------------ headless Lab


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A Lab on the tiny preset with its own model cache and run folder; ipywidgets needs no frontend."""
    cache = tmp_path_factory.mktemp("zrealism-cache")
    runs = tmp_path_factory.mktemp("runs")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ZREALISM_CACHE", str(cache))
        from zrealism_lab import Lab

        lab = Lab(preset="tiny", size=64, steps=4, out_dir=runs, preview_every=1, source="dark")
        lab._analysis_jobs.wait(30)
        yield lab
        lab.runner.cancel()
        lab.wait(60)


def _watch(widget, name="value"):
    seen = []
    widget.observe(lambda change: seen.append(change["new"]), names=name)
    return seen


@pytest.mark.slow
def test_headless_lab_runs_tiny_and_fills_the_widgets(lab, tmp_path):
    assert lab.runner.state.phase is Phase.IDLE
    assert "dark" in lab.analysis_text.value
    progress_values, progress_texts = _watch(lab.progress), _watch(lab.progress_text)
    previews = _watch(lab.preview_image)
    assert lab.run()
    assert lab.wait(180), "the run did not finish"
    assert lab.runner.state.phase is Phase.DONE, lab.message.value
    # steps=4 at strength 0.7 -> 2 denoising steps; every step reached the progress bar and its label
    assert "loading model ..." in progress_texts
    assert any("denoising step 2/2" in text for text in progress_texts), progress_texts
    assert lab.progress.value == lab.progress.max == 2 and 1 in progress_values
    assert previews and all(bytes(p).startswith(PNG_MAGIC) for p in previews)
    assert bytes(lab.output_image.value).startswith(PNG_MAGIC)
    assert "done in" in lab.message.value
    result = lab.last_result
    assert result.status == "completed" and result.image.size == (64, 64)
    assert len(lab.results_images.children) == 3 + len(result.context.control_maps)  # source, maps, raw, output
    assert "ssim" in lab.results_metrics.value
    # device and dtype are known once the model has loaded
    lab._status_jobs.wait(30)
    assert "cpu" in lab.device_info.value and "float32" in lab.device_info.value
    # export buttons
    lab.export_dir.value = str(tmp_path / "exports")
    png, record = lab.save_png(), lab.save_record()
    assert png.read_bytes().startswith(PNG_MAGIC)
    assert json.loads(record.read_text())["status"] == "completed"
    assert "zr-download-png" in lab.downloads.value


@pytest.mark.slow
def test_headless_lab_cancel_stops_within_a_step_and_records_it(lab):
    lab.fields["steps"].value = 60  # 42 denoising steps: far more than a cancel lets run
    first_step = threading.Event()
    lab.progress_text.observe(lambda change: "denoising step" in change["new"] and first_step.set(), names="value")
    assert lab.run()
    assert not lab.run()  # pressing Run while busy: a message, nothing queued
    assert BUSY_MESSAGE in lab.message.value
    assert first_step.wait(120), "no denoising step was reported"
    assert lab.cancel()
    assert lab.wait(60)
    assert lab.runner.state.phase is Phase.CANCELLED, lab.message.value
    assert lab.progress.value < lab.progress.max == 42
    assert lab.progress.value <= 3  # stopped within one step of the cancel (allowing for throttled display)
    entry = lab.history.entries[-1]
    assert entry.status == "cancelled" and entry.run_dir is not None
    assert json.loads((Path(entry.run_dir) / "record.json").read_text())["status"] == "cancelled"
    assert "record says 'cancelled'" in html.unescape(lab.message.value)
    # the engine is usable again after a cancel: a short run completes
    lab.fields["steps"].value = 2
    assert lab.run() and lab.wait(120)
    assert lab.runner.state.phase is Phase.DONE, lab.message.value
    completed = [e.number for e in lab.history.completed()]
    lab.compare(completed[0], completed[-1])
    assert "zr-compare-table" in lab.compare_view.children[0].children[1].value
    lab.show_run(completed[0])
    assert f"#{completed[0]}" in lab.results_title.value


@pytest.mark.slow
def test_headless_lab_temporal_tab_plays_a_clip(lab):
    panel = lab.temporal
    lab.fields["steps"].value = 2
    panel.fields["frames"].value = 8
    panel.fields["context_length"].value = 8
    assert panel.run()
    assert lab.wait(180)
    assert lab.runner.state.phase is Phase.DONE, lab.message.value + lab.error_text.value
    assert panel.player.value.startswith("<video") and "data:video/mp4;base64," in panel.player.value
    entry = lab.history.entries[-1]
    assert entry.kind == "temporal" and entry.status == "completed" and len(entry.result.frames) == 8
    panel.fields["context_stride"].value = 8  # must be below the context length
    assert not panel.run() and "context stride 8 is not allowed" in panel.message.value


def test_headless_lab_refuses_invalid_settings_and_bad_uploads(lab):
    started = lab.runner.state.runs_started
    lab.fields["steps"].value = 0
    assert "from 1 to 150" in lab.fields["steps"].message.value  # shown as it is edited
    assert not lab.run()
    assert "Run not started" in lab.message.value and lab.runner.state.runs_started == started
    lab.fields["steps"].value = 4
    assert lab.fields["steps"].message.value == ""
    lab.unit_rows["depth"].start.value, lab.unit_rows["depth"].end.value = 0.8, 0.5
    assert "greater than start" in lab.unit_rows["depth"].message.value
    with pytest.raises(SettingsError):
        lab.current_settings()
    lab.unit_rows["depth"].start.value, lab.unit_rows["depth"].end.value = 0.0, 1.0
    source = lab.source_label
    lab._use_upload("broken.png", b"definitely not an image")
    assert "broken.png" in lab.source_message.value and lab.source_label == source


def test_headless_lab_preflight_blocks_a_detector_without_files(lab, tmp_path, monkeypatch):
    """A unit whose detector checkpoints are not on this machine switches Run off, with the reason next to Run and
    on the unit's row, before anything loads (no 25 s wait for a failure)."""
    monkeypatch.setenv("ZREALISM_ANNOTATOR_DIR", str(tmp_path / "no-annotators"))
    row = lab.unit_rows["openpose"]
    offline_default = row.method.value
    started = lab.runner.state.runs_started
    try:
        row.enabled.value = True
        row.method.value = "openpose"  # this detector needs weights that are not on this machine
        assert lab._preflight_jobs.wait(30)
        assert lab.run_button.disabled
        reason = html.unescape(lab.preflight_text.value)
        assert "body_pose_model.pth" in reason and "ZREALISM_ANNOTATOR_DIR" in reason
        assert "body_pose_model.pth" in html.unescape(row.preflight.value)  # on the unit's own row too
        assert not lab.run() and lab.runner.state.runs_started == started
        assert "Run not started" in lab.message.value
    finally:
        row.enabled.value = False
        row.method.value = offline_default
    assert lab._preflight_jobs.wait(30)
    assert not lab.run_button.disabled and lab.preflight_text.value == ""


@pytest.mark.slow
def test_headless_lab_shows_a_failed_run_as_a_short_message(lab, monkeypatch):
    from zrealism_lab.errors import MissingWeightsError

    def missing(ctx, preset):  # weights that vanish between the preflight and the load
        raise MissingWeightsError("Model weights are missing: base: looked for the folder x: no such folder")

    monkeypatch.setattr(lab, "engine_for", missing)
    assert lab.run()
    assert lab.wait(120)
    assert lab.runner.state.phase is Phase.ERROR
    message = html.unescape(lab.message.value)
    assert "weights" in message.lower() and "Traceback" not in message and len(message) < 1500
    assert lab.error_details.layout.display == "" and lab.error_details.selected_index is None  # collapsed
    assert "Traceback" in lab.error_text.value
    assert lab.history.entries[-1].status == "failed"


def test_headless_lab_model_tab_says_what_is_missing(lab, tmp_path, monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "empty-hub"))
    lab.preset_picker.value = "realistic-vision"  # offline, with an empty hub cache
    assert lab._status_jobs.wait(30)
    status = html.unescape(lab.model_status.value)
    assert "missing" in status and "zrealism models download realistic-vision" in status
    assert lab.unit_rows["openpose"].enabled.value  # the preset's default units follow the picker
    lab.preset_picker.value = "tiny"
    assert lab._status_jobs.wait(30)
    assert not lab.unit_rows["openpose"].enabled.value and lab.unit_rows["canny"].enabled.value


@pytest.mark.slow
def test_headless_lab_asks_for_hires_and_face_detail_with_two_controls(lab, tmp_path):
    lab.fields["hires"].value = 2.0
    lab.fields["face_detail"].value = True
    try:
        assert lab.run() and lab.wait(120)
        entry = lab.history.entries[-1]
        assert entry.status == "completed", lab.message.value
        assert entry.result.image.size == (2 * entry.result.context.prepared.size[0],
                                           2 * entry.result.context.prepared.size[1])
        passes = json.loads((Path(entry.run_dir) / "record.json").read_text())["passes"]
        assert passes["hires"]["upscaler"] == "lanczos" and "face_detail" in passes
    finally:
        lab.fields["hires"].value = None
        lab.fields["face_detail"].value = False
