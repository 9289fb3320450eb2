"""The lab's UX rules without a browser: the source picker always names what Run uses, re-uploads and drops work,
doubtful analyses warn and can be overridden (and the override reaches the run), number boxes refuse "3.7",
every problem is named at once, the preflight blocks Run with its reason, history comes back from the run folders,
comparisons show every difference with better/worse, and the progress line reads through to "done in"."""
from __future__ import annotations

import base64
import datetime
import html
import json
import re

import numpy as np
import pytest
from PIL import Image

from zrealism_lab.errors import SettingsError
from zrealism_lab.lab.compare import judge, settings_rows, units_text
from zrealism_lab.lab.preflight import min_size_for, size_problems
from zrealism_lab.lab.state import HistoryEntry, parse_number, progress_view, size_note
from zrealism_lab.lab.status_views import analysis_html, doubts
from zrealism_lab.lab.views import wipe_image
from zrealism_lab.progress import StepEvent
from zrealism_lab.settings import BACKGROUND_KINDS, SPECS, ControlUnit, StaticSettings
from zrealism_lab.source.background import KINDS, BackgroundAnalysis, analyze_background, with_kind
from zrealism_lab.source.samples import sample_path


def _png(image: Image.Image) -> bytes:
    import io

    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    from zrealism_lab import Lab

    lab = Lab(preset="tiny", size=64, steps=4, out_dir=tmp_path_factory.mktemp("runs"), source="dark")
    lab._analysis_jobs.wait(30)
    yield lab
    lab.runner.cancel()
    lab.wait(60)


def _settle(lab):
    assert lab._analysis_jobs.wait(30) and lab._preflight_jobs.wait(30)


# ------------------------------------------------------------------------------------------------ source


def test_picking_an_earlier_upload_makes_it_the_source_again(lab):
    light = sample_path("light").read_bytes()
    assert lab.add_upload("light.png", light)
    _settle(lab)
    assert lab.source_label == "upload light.png" and lab.source_value == light
    lab.sample_picker.value = "dark"
    _settle(lab)
    assert lab.source_label == "sample dark"
    dark_picture = bytes(lab.source_image.value)
    upload_entry = next(value for label, value in lab.sample_picker.options if label == "uploaded: light.png")
    lab.sample_picker.value = upload_entry  # the dropdown says the upload: the source, picture and analysis follow
    _settle(lab)
    assert lab.source_label == "upload light.png" and lab.source_value == light
    assert bytes(lab.source_image.value) != dark_picture
    assert "background</b>: light" in lab.analysis_text.value


def test_uploading_the_same_file_again_switches_back_to_it(lab):
    light = sample_path("light").read_bytes()
    item = {"name": "again.png", "type": "image/png", "size": len(light), "content": memoryview(light),
            "last_modified": datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)}
    lab.upload.value = (item,)
    assert lab.upload.value == ()  # cleared, so the same file chosen again is a change the kernel hears about
    lab.sample_picker.value = "dark"
    _settle(lab)
    lab.upload.value = (item,)
    _settle(lab)
    assert lab.source_label == "upload again.png"


def test_a_dropped_or_pasted_file_becomes_the_source(lab):
    data = sample_path("scenic").read_bytes()
    lab.drop_data.value = json.dumps({"name": "dropped.png", "data": base64.b64encode(data).decode()})
    _settle(lab)
    assert lab.source_label == "upload dropped.png" and lab.drop_data.value == ""
    lab.drop_data.value = '{"name": "x.png", "data": "not base64!"}'
    assert "Cannot use" in lab.source_message.value and lab.source_label == "upload dropped.png"


def test_a_new_source_replaces_the_old_picture_at_once(lab):
    lab.sample_picker.value = "dark"
    _settle(lab)
    old_mask = bytes(lab.mask_image.value)
    lab.sample_picker.value = "scenic"
    # before the analysis is back: the new picture is on screen and the old mask is gone
    assert lab.source_label == "sample scenic" and bytes(lab.mask_image.value) != old_mask
    _settle(lab)


def test_unreadable_and_huge_files_are_refused_in_plain_words(lab):
    lab.sample_picker.value = "dark"
    _settle(lab)
    assert not lab.add_upload("notes.txt", b"just some text")
    message = html.unescape(lab.source_message.value)
    assert "Cannot use notes.txt" in message and "The source is still sample dark" in message
    huge = _png(Image.new("L", (9000, 9000)))
    assert not lab.add_upload("huge.png", huge)
    message = html.unescape(lab.source_message.value)
    assert "9000×9000 px (81 megapixels)" in message and "bytes" not in message and "max_pixels" not in message
    assert lab.source_label == "sample dark"
    assert lab.upload.tooltip and lab.upload.tooltip != "null"


def test_a_doubtful_analysis_warns_and_offers_the_override():
    mask = np.zeros((100, 100), bool)
    mask[40:50, 40:60] = True  # 2 % of the image
    analysis = BackgroundAnalysis("scenic", 0.54, mask, None)
    found = doubts(analysis)
    assert any("unsure" in d for d in found) and any("only 2%" in d for d in found)

    class Loaded:
        size, format, has_alpha = (100, 100), "PNG", False

    text = html.unescape(analysis_html(Loaded(), analysis))
    assert "zr-analysis-doubt" in text and "background kind" in text
    assert "your choice" in analysis_html(Loaded(), analysis, "flat")


def test_the_background_override_is_a_setting_that_reaches_the_source_stage(tiny_engine):
    from zrealism_lab.source.context import understand_source

    assert BACKGROUND_KINDS == ("auto", *KINDS)  # settings spells the kinds out to avoid an import cycle
    with pytest.raises(SettingsError, match="background_kind"):
        StaticSettings(background_kind="purple").validated()
    settings = StaticSettings(size=64, controls=(), background_kind="dark", keep_dark_backdrop=True).validated()
    context = understand_source(sample_path("light"), settings, tiny_engine)
    assert context.analysis.kind == "dark" and context.prepared.adaptations["background_kind"] == "dark"
    assert any("background_kind setting" in w for w in context.warnings)
    auto = understand_source(sample_path("light"), settings.replace(background_kind="auto"), tiny_engine)
    assert auto.analysis.kind == "light"
    image = Image.open(sample_path("light"))
    plain = with_kind(analyze_background(image), "flat", image)
    assert plain.kind == "flat" and plain.backdrop_rgb is not None and min(plain.backdrop_rgb) > 200


def test_the_lab_sends_its_background_override_with_the_settings(lab):
    field = lab.fields["background_kind"]
    field.value = "scenic"
    try:
        assert lab.current_settings().background_kind == "scenic"
        assert "your choice" in lab.analysis_text.value
    finally:
        field.value = "auto"


# ------------------------------------------------------------------------------------------------ numbers


def test_whole_number_boxes_refuse_decimals_and_exponents():
    assert parse_number(SPECS["steps"], "3.7")[1].startswith("'3.7' is not a whole number")
    assert parse_number(SPECS["seed"], "1e3")[1].startswith("'1e3' is not a whole number")
    assert parse_number(SPECS["steps"], " 12 ") == (12, None)
    assert parse_number(SPECS["cfg"], "7.5") == (7.5, None)
    assert size_note(100) == "100 → 96 px (sides are multiples of 8)" and size_note(96) is None
    assert size_note(100, (256, 192)) == "output 96×72 px (sides are multiples of 8)"


def test_the_lab_names_every_bad_field_at_once(lab):
    steps, seed = lab.fields["steps"], lab.fields["seed"]
    steps.value, seed.value = "3.7", "1e3"
    try:
        assert "not a whole number" in steps.message.value and "not a whole number" in seed.message.value
        with pytest.raises(SettingsError):
            lab.current_settings()
        assert not lab.run()
        message = html.unescape(lab.message.value)
        assert "Fix these first" in message and "steps ('3.7')" in message and "seed ('1e3')" in message
        assert lab.progress_text.value == ""  # no stale "done" line beside the refusal
    finally:
        steps.value, seed.value = 4, 0
    lab.fields["size"].value = 100
    assert "output 96×96 px" in html.unescape(lab.fields["size"].message.value)  # the dark sample is square
    lab.fields["size"].value = 64


def test_the_preflight_blocks_a_size_too_small_for_a_narrow_source(lab):
    assert min_size_for(240, 512) == 144
    problem = size_problems(100, (240, 512))[0]
    assert "at least 144" in problem.text and problem.blocking
    assert size_problems(144, (240, 512)) == []
    lab.add_upload("portrait.png", _png(Image.new("RGB", (240, 512), (30, 30, 30))))
    lab.fields["size"].value = 100
    _settle(lab)
    try:
        assert lab.run_button.disabled and "at least 144" in lab.preflight_text.value
        assert not lab.run()
    finally:
        lab.fields["size"].value = 64
        lab.sample_picker.value = "dark"
        _settle(lab)
    assert not lab.run_button.disabled


# ------------------------------------------------------------------------------------------------ views


def test_compare_rows_show_every_unit_in_full_and_judge_by_direction():
    a = StaticSettings(controls=(ControlUnit("depth", 0.9),))
    b = StaticSettings(controls=(ControlUnit("depth", 0.9), ControlUnit("canny", 0.5, method="canny")))
    rows = dict((key, (left, right)) for key, left, right in settings_rows(a, b))
    left, right = rows["controls"]
    assert left == "depth 0.9 [0–1]" and right == "depth 0.9 [0–1]\ncanny 0.5 [0–1] canny"
    assert units_text(None) == "the preset's default units"
    long_prompt = "x" * 300
    rows = settings_rows(a, a.replace(prompt=long_prompt))
    assert rows == [("prompt", a.prompt, long_prompt)]  # never cut
    assert judge("edge_f1", 0.5, 0.6) == "better" and judge("edge_f1", 0.6, 0.5) == "worse"
    assert judge("delta_e_output", 3.0, 2.0) in ("better", "")  # lower is better where registered
    assert judge("edge_f1", 0.5, 0.5) == ""


def test_wipe_puts_before_left_and_after_right():
    before, after = Image.new("RGB", (64, 64), (255, 0, 0)), Image.new("RGB", (64, 64), (0, 0, 255))
    shown = wipe_image(before, after, 0.25, side=128)
    assert shown.size == (128, 128)
    assert shown.getpixel((10, 64)) == (255, 0, 0) and shown.getpixel((100, 64)) == (0, 0, 255)
    assert wipe_image(before, after, 0.0).getpixel((0, 0)) == (0, 0, 255)


def test_progress_reads_through_the_stages_after_denoising():
    marker = progress_view(StepEvent("colour", 0, 1, None, 0.0, None))
    assert marker.marker and marker.text == "anchoring colours ..."
    assert progress_view(StepEvent("record", 0, 1, None, 0.0, None)).text == "saving the run folder ..."
    report = progress_view(StepEvent("report", 0, 0, None, 12.0, None))
    assert report.indeterminate and report.text == "writing the report · 12 s elapsed"
    assert "0/1" not in report.text and "ETA" not in report.text


def test_cancelled_and_failed_runs_reopen_with_a_plain_reason(lab):
    entry = lab.history.add("cancelled", StaticSettings(), "sample dark", 1.0, error="cancelled after 2 of 9")
    with pytest.raises(LookupError) as caught:
        lab.show_run(entry.number)
    text = str(caught.value)
    assert f"Run #{entry.number} was cancelled before its pictures were made" in text
    assert "setting '" not in text and "was failed" not in text
    lab.send_settings(entry.number)  # its settings still go back to the Controls tab


def test_a_clip_from_an_earlier_session_plays_from_its_folder(lab, tmp_path):
    from zrealism_lab.lab.run_view import clip_of

    (tmp_path / "clip.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42")
    entry = lab.history.add_entry(lambda number: HistoryEntry(number, "completed", None, "sample dark", 2.0,
                                                              folder=tmp_path, kind="temporal", record={},
                                                              from_disk=True))
    lab.show_run(entry.number)
    assert lab.temporal.player.value.startswith("<video") and "zr-download-mp4" in lab.temporal.player.value
    assert str(tmp_path) in html.unescape(lab.temporal.player.value)
    (tmp_path / "clip.mp4").unlink()
    with pytest.raises(LookupError):
        clip_of(entry)


# ------------------------------------------------------------------------------------------------ real runs


@pytest.mark.slow
def test_history_comes_back_from_the_run_folders(tmp_path):
    """Two real runs, then a new Lab over the same folder (a re-run cell, a restarted kernel): History lists
    both from disk, newest first, with thumbnails; they reopen, compare (canny added shows in full, metrics
    coloured) and send their settings back to the Controls tab."""
    from zrealism_lab import Lab

    first = Lab(preset="tiny", size=64, steps=4, out_dir=tmp_path, source="dark", preview_every=1)
    _settle(first)
    first.unit_rows["canny"].enabled.value = False
    assert first.run() and first.wait(180), first.message.value
    assert "done in" in first.progress_text.value and "run #1" in first.output_caption.value
    assert not first.reuse_seed_button.disabled
    first.unit_rows["canny"].enabled.value = True
    first.fields["seed"].value = 7
    assert first.run() and first.wait(180), first.message.value
    first.reuse_seed()
    assert first.fields["seed"].value == 7

    again = Lab(preset="tiny", size=64, steps=4, out_dir=tmp_path, source="dark")
    _settle(again)
    assert [label.split(" · ")[0] for label, _ in again.history_list.options] == ["#2", "#1"]
    assert all(e.from_disk for e in again.history.entries)
    assert again.history_gallery.value.count("<img") == 2
    again.history_list.value = 1
    again._reopen_selected()
    assert "#1" in again.results_title.value and "zr-result-output" in again.results_images.children[-1].value
    assert "zr-download-png" in again.downloads.value and "zr-button-link" in again.downloads.value
    view = again.compare(1, 2)
    table = view.children[1].value
    controls = re.search(r'<tr class="zr-diff-controls">(.*?)</tr>', table, re.S).group(1)
    assert "canny 0.5 [0–1]" in html.unescape(controls) and controls.count("depth") == 2  # both sides, in full
    assert "zr-better" in table or "zr-worse" in table
    assert "_source" not in table  # source-only metrics cannot differ
    again.fields["seed"].value = 123
    again.send_settings(2)
    assert again.fields["seed"].value == 7 and again.unit_rows["canny"].enabled.value


def test_the_speed_field_says_what_the_mode_changes_and_reaches_the_run_settings(lab):
    speed = lab.fields["speed"]
    assert speed.value == "quality" and "no lever on" in html.unescape(speed.message.value)
    speed.value = "fast"
    try:
        note = html.unescape(speed.message.value)
        assert "4 LCM steps with the few-step LoRA" in note and "guidance 1" in note
        assert lab.current_settings().speed == "fast"
        assert lab.temporal.settings().speed == "fast"  # the clip tab runs in the same mode
        lab.preset_picker.value = "realistic-vision"  # whose few-step LoRA is not on this machine
        assert "zrealism models download realistic-vision" in html.unescape(speed.message.value)
    finally:
        lab.preset_picker.value = "tiny"
        speed.value = "quality"


def test_a_unit_with_its_own_map_keeps_it_when_sent_back_to_controls(lab, tmp_path):
    from PIL import Image

    from zrealism_lab.settings import ControlUnit

    skeleton = tmp_path / "skeleton.png"
    Image.new("RGB", (64, 64)).save(skeleton)
    before = lab.current_settings()
    lab.apply_settings(before.replace(controls=(ControlUnit("depth", 0.7, image=str(skeleton)),)))
    try:
        row = lab.unit_rows["depth"]
        assert "own map skeleton.png" in row.given_note.value
        (unit,) = lab.current_settings().controls
        assert unit.image == str(skeleton) and unit.scale == 0.7
    finally:
        lab.apply_settings(before)
    assert lab.unit_rows["depth"].given_note.value == "" and all(u.image is None for u in lab.current_settings().controls)
