"""The lab in a real JupyterLab, driven through headless Chromium, as a user meets it: sources (upload, re-upload,
the picker, drop and paste), equal-size pictures, number boxes, the preflight, Run to the end and Ctrl+Enter,
Results (headline numbers, undistorted plots, zoom, the before/after wipe, downloads), Cancel, Compare, a 900 px
window, the dark theme, a cancelled clip, a report, and History after the cell runs again.

The tests share one page and run in file order. Screenshots land in $ZREALISM_TEST_ARTIFACTS (default:
test-artifacts/ in the repository): the lab in the light theme, the dark theme and at 900 px among them."""
from __future__ import annotations

import re
import shutil
import time

import pytest
from PIL import Image

from zrealism_lab.source.samples import sample_path
from browser_support import ROOT, box, chromium_path, contrast, drop_file, launch_chromium, run_all_cells, \
    screenshot, set_theme, start_jupyterlab, wait_kernel_idle

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM = chromium_path()
NOTEBOOK = ROOT / "notebooks" / "lab.ipynb"
FILES: dict = {}


@pytest.fixture(scope="module")
def lab_page(tmp_path_factory):
    """One JupyterLab server and one browser page with the lab notebook executed, shared by the module's tests."""
    if CHROMIUM is None:
        pytest.skip("Chromium is not installed (apt-get install chromium); browser tests need the system's Chromium")
    sync_api = pytest.importorskip("playwright.sync_api", reason="Python Playwright is not installed")
    root = tmp_path_factory.mktemp("lab-root")
    shutil.copy(NOTEBOOK, root / NOTEBOOK.name)
    files = tmp_path_factory.mktemp("lab-files")
    Image.open(sample_path("dark")).convert("RGB").resize((240, 512)).save(files / "portrait.png")
    shutil.copy(sample_path("scenic"), files / "scenic.png")
    tiny_subject = Image.new("RGB", (256, 256), (250, 250, 250))
    tiny_subject.paste((40, 30, 30), (120, 110, 146, 140))  # a subject of about 1 % of the picture
    tiny_subject.save(files / "tiny-subject.png")
    FILES.update(portrait=files / "portrait.png", scenic=files / "scenic.png", tiny=files / "tiny-subject.png",
                 root=root)
    home = tmp_path_factory.mktemp("lab-home")
    cache = tmp_path_factory.mktemp("lab-cache")
    server = start_jupyterlab(root, home, extra_env={"ZREALISM_CACHE": str(cache), "HF_HUB_OFFLINE": "1"})
    try:
        with sync_api.sync_playwright() as playwright:
            browser = launch_chromium(playwright, CHROMIUM)
            page = browser.new_page(viewport={"width": 1400, "height": 2200})
            page.set_default_timeout(60_000)
            try:
                page.goto(server.notebook_url(NOTEBOOK.name))
                wait_kernel_idle(page)
                run_all_cells(page)
                page.wait_for_selector(".zr-lab .zr-run-button", state="visible")
                yield page
            except Exception:
                screenshot(page, "lab-failure")
                print(server.log_tail())
                raise
            finally:
                browser.close()
    finally:
        server.shutdown()
    assert server.process.poll() is not None, "the server did not stop through /api/shutdown"


def _state(page) -> str:
    return page.inner_text(".zr-state").strip()


def _output_src(page) -> str:
    return page.get_attribute("img.zr-output", "src") or ""


def _tab(page, title: str) -> None:
    page.click(f".zr-tabs .lm-TabBar-tab:has-text('{title}')")


def _upload(page, path) -> None:
    with page.expect_file_chooser() as chooser:
        page.click(".zr-upload")
    chooser.value.set_files(str(path))


def _pick(page, label: str) -> None:
    page.locator(".zr-sample-picker select").select_option(label=label)


def _source_is(page, label: str) -> None:
    page.wait_for_selector(f".zr-source-message :text('source: {label}')", timeout=30_000)


def _wait_done(page, timeout: float = 120_000) -> None:
    page.wait_for_selector(".zr-state-running", timeout=10_000)
    page.wait_for_selector(".zr-state-done, .zr-state-error, .zr-state-cancelled", timeout=timeout)


# ------------------------------------------------------------------------------------------------ source


def test_lab_paints_with_sample_analysis(lab_page):
    page = lab_page
    assert _state(page) == "idle"
    page.wait_for_selector(".zr-analysis :text('confidence')", timeout=60_000)
    assert "transparent" in page.inner_text(".zr-analysis")
    assert "press Run" in page.inner_text(".zr-output-caption")  # an empty state, not a blank grey box
    assert page.get_attribute(".zr-upload", "title") not in (None, "", "null")
    screenshot(page, "lab-01-painted-light-theme")
    _upload(page, sample_path("light"))  # a real upload through the FileUpload widget
    _source_is(page, "upload light.png")
    page.wait_for_selector(".zr-analysis :text('background: light')", timeout=30_000)
    _tab(page, "Model")
    # a fresh cache: the tiny bundle is not built yet, and the tab says the first Run builds it
    page.wait_for_selector(".zr-model-status :text('first Run builds it')", timeout=30_000)
    assert "decided when the model loads" in page.inner_text(".zr-device")
    assert "Detector checkpoints" in page.inner_text(".zr-model-status")
    screenshot(page, "lab-01b-model")
    _tab(page, "Temporal")
    page.wait_for_selector(".zr-temporal-note", timeout=10_000)
    _tab(page, "Source")


def test_the_picker_entry_of_an_upload_brings_it_back(lab_page):
    page = lab_page
    _pick(page, "sample: dark")
    _source_is(page, "sample dark")
    page.wait_for_selector(".zr-analysis :text('background: dark')", timeout=30_000)
    _pick(page, "uploaded: light.png")  # the dropdown says the upload: what Run uses follows it
    _source_is(page, "upload light.png")
    page.wait_for_selector(".zr-analysis :text('background: light')", timeout=30_000)


def test_uploading_the_same_file_again_is_not_ignored(lab_page):
    page = lab_page
    _pick(page, "sample: dark")
    _source_is(page, "sample dark")
    _upload(page, sample_path("light"))
    _source_is(page, "upload light.png")


def test_drop_and_paste_an_image(lab_page):
    page = lab_page
    drop_file(page, ".zr-drop", FILES["scenic"], "drop")
    _source_is(page, "upload scenic.png")
    _pick(page, "sample: dark")
    _source_is(page, "sample dark")
    drop_file(page, ".zr-drop", FILES["scenic"], "paste")
    _source_is(page, "upload scenic.png")


def test_a_doubtful_analysis_warns_and_can_be_overridden(lab_page):
    page = lab_page
    _upload(page, FILES["tiny"])
    _source_is(page, "upload tiny-subject.png")
    page.wait_for_selector(".zr-analysis .zr-analysis-doubt", timeout=30_000)
    assert "the subject covers only" in page.inner_text(".zr-analysis")
    page.locator(".zr-background-kind select").select_option(label="scenic")
    page.wait_for_selector(".zr-analysis :text('(your choice)')", timeout=10_000)
    assert page.locator(".zr-analysis .zr-analysis-doubt").count() == 0
    screenshot(page, "lab-02a-background-override")
    page.locator(".zr-background-kind select").select_option(label="auto")
    _pick(page, "sample: dark")
    _source_is(page, "sample dark")


def test_pictures_meant_for_comparison_have_one_size(lab_page):
    page = lab_page
    _upload(page, FILES["portrait"])
    _source_is(page, "upload portrait.png")
    page.wait_for_selector(".zr-analysis :text('240×512')", timeout=30_000)
    screenshot(page, "lab-02-portrait-source")
    source, mask = box(page, "img.zr-source-image"), box(page, "img.zr-mask-overlay")
    assert source == mask == (192, 192), (source, mask)
    assert box(page, "img.zr-preview") == box(page, "img.zr-output") == (192, 192)
    _pick(page, "sample: dark")
    _source_is(page, "sample dark")


# ------------------------------------------------------------------------------------------------ settings


def test_number_boxes_refuse_decimals_and_name_every_problem(lab_page):
    page = lab_page
    _tab(page, "Controls")
    steps, seed = page.locator(".zr-field-steps input"), page.locator(".zr-field-seed input")
    steps.fill("3.7")
    steps.press("Tab")
    seed.fill("1e3")
    seed.press("Tab")
    page.wait_for_selector(".zr-field-message:has-text(\"'3.7' is not a whole number\")", timeout=10_000)
    page.wait_for_selector(".zr-field-message:has-text(\"'1e3' is not a whole number\")", timeout=10_000)
    assert steps.input_value() == "3.7"  # kept as typed, never turned into 37
    page.click(".zr-run-button")
    page.wait_for_selector(".zr-message:has-text('Fix these first')", timeout=10_000)
    message = page.inner_text(".zr-message")
    assert "steps ('3.7')" in message and "seed ('1e3')" in message
    screenshot(page, "lab-03-invalid-numbers")
    steps.fill("6")
    steps.press("Tab")
    seed.fill("0")
    seed.press("Tab")
    page.wait_for_selector(".zr-field-message:has-text('whole number')", state="detached", timeout=10_000)
    size = page.locator(".zr-field-size input")
    size.fill("100")
    size.press("Tab")
    page.wait_for_selector(".zr-field-message:has-text('output 96×96 px')", timeout=10_000)
    size.fill("64")
    size.press("Tab")


def test_preflight_switches_run_off_with_the_reason(lab_page):
    page = lab_page
    _tab(page, "Controls")
    page.click(".zr-unit-openpose-enabled input")
    needs_weights = page.locator(".zr-unit-openpose-method option").filter(has_text="needs weights").first
    page.locator(".zr-unit-openpose-method select").select_option(label=needs_weights.inner_text())
    page.wait_for_selector(".zr-preflight:has-text('body_pose_model.pth')", timeout=30_000)
    assert page.locator(".zr-run-button").is_disabled()
    assert "body_pose_model.pth" in page.inner_text(".zr-unit-openpose-preflight")
    screenshot(page, "lab-04-preflight-blocks-run")
    page.click(".zr-unit-openpose-enabled input")
    page.wait_for_selector(".zr-preflight:has-text('body_pose_model.pth')", state="detached", timeout=30_000)
    assert page.locator(".zr-run-button").is_enabled()


# ------------------------------------------------------------------------------------------------ runs


def test_run_reaches_the_end_and_shows_the_output(lab_page):
    page = lab_page
    before = _output_src(page)
    page.click(".zr-run-button")
    _wait_done(page)
    screenshot(page, "lab-05-run-done")
    assert _state(page) == "done", page.inner_text(".zr-message")
    text = page.inner_text(".zr-progress-text")
    assert re.fullmatch(r"done in [\d.]+ m?s", text.strip()), text
    bar = page.locator(".zr-progress .progress-bar")
    assert bar.evaluate("el => el.style.width") == "100%"
    assert _output_src(page) != before, "the output image did not change after the run"
    assert "run #1" in page.inner_text(".zr-output-caption")
    assert page.locator(".zr-reuse-seed").is_enabled()


def test_results_lead_with_numbers_and_keep_pictures_comparable(lab_page):
    page = lab_page
    _tab(page, "Results")
    page.wait_for_selector("img.zr-result-output")
    assert "edge F1" in page.inner_text(".zr-headline-numbers") and "ΔE00" in page.inner_text(".zr-headline-numbers")
    assert not page.locator(".zr-all-metrics").evaluate("el => el.open")  # the full table is folded
    sizes = {box(page, f".zr-results-images img.{css}")
             for css in ("zr-result-source", "zr-result-raw", "zr-result-output")}
    assert sizes == {(192, 192)}, sizes
    plot = page.locator("img.zr-plot-colour-moments").first
    natural = plot.evaluate("el => el.naturalWidth / el.naturalHeight")
    shown = plot.evaluate("el => el.getBoundingClientRect().width / el.getBoundingClientRect().height")
    assert abs(shown - natural) / natural < 0.03, (shown, natural)  # not squashed to its neighbour's height
    # click to zoom: the output opens at full resolution under its thumbnail, pixel-exact
    page.click(".zr-results-images img.zr-result-output")
    full = page.locator("img.zr-result-output-full")
    full.wait_for(state="visible")
    assert full.evaluate("el => el.naturalWidth") == 64 and box(page, "img.zr-result-output-full")[0] >= 512
    # the before/after wipe follows its slider
    wipe = page.get_attribute("img.zr-wipe", "src")
    handle = page.locator(".zr-wipe-slider .noUi-handle").bounding_box()
    page.mouse.move(handle["x"] + handle["width"] / 2, handle["y"] + handle["height"] / 2)
    page.mouse.down()
    page.mouse.move(handle["x"] - 120, handle["y"] + handle["height"] / 2, steps=5)
    page.mouse.up()
    page.wait_for_function("old => document.querySelector('img.zr-wipe').src !== old", arg=wipe, timeout=10_000)
    links = page.locator(".zr-downloads a.zr-button-link")
    assert links.count() == 2 and links.first.get_attribute("download").endswith(".png")
    screenshot(page, "lab-06-results")


def test_ctrl_enter_runs_from_the_prompt(lab_page):
    page = lab_page
    _tab(page, "Controls")
    prompts = page.locator(".jp-InputArea-prompt").all_inner_texts()
    page.locator(".zr-field-prompt textarea").click()
    page.keyboard.press("Control+Enter")
    _wait_done(page)
    assert _state(page) == "done" and "run #2" in page.inner_text(".zr-output-caption")
    assert page.locator(".jp-InputArea-prompt").all_inner_texts() == prompts  # the cell was not run again


def test_second_run_is_cancelled(lab_page):
    page = lab_page
    _tab(page, "Controls")
    steps = page.locator(".zr-field-steps input")
    steps.fill("0")  # out of range: the message shows next to the field as it is edited
    steps.press("Enter")
    page.wait_for_selector(".zr-field-message:has-text('from 1 to 150')", timeout=10_000)
    steps.fill("120")
    steps.press("Enter")
    page.wait_for_selector(".zr-field-message:has-text('from 1 to 150')", state="detached", timeout=10_000)
    page.click(".zr-run-button")
    page.wait_for_selector(".zr-progress-text:has-text('denoising step')", timeout=120_000)
    assert page.locator(".zr-run-button").is_disabled()  # busy: Run is off, nothing can be queued
    started = time.monotonic()
    page.click(".zr-cancel-button")
    page.wait_for_selector(".zr-state-cancelled, .zr-state-done, .zr-state-error", timeout=60_000)
    stopped_after = time.monotonic() - started
    screenshot(page, "lab-07-cancelled")
    assert _state(page) == "cancelled", page.inner_text(".zr-message")
    message = page.inner_text(".zr-message")
    assert "Cancelled: after" in message and "record says 'cancelled'" in message, message
    done, total = _steps(page.inner_text(".zr-progress-text"))
    assert total == 84 and done < total  # steps=120 at strength 0.7
    assert "ETA" not in page.inner_text(".zr-progress-text")
    assert "cancelled" in page.inner_text(".zr-output-caption")  # the old picture is labelled as such
    assert stopped_after < 30, f"cancel took {stopped_after:.1f} s"
    steps.fill("6")
    steps.press("Enter")


def test_compare_shows_every_difference_with_better_and_worse(lab_page):
    page = lab_page
    _tab(page, "Controls")
    page.click(".zr-unit-canny-enabled input")  # run #4 differs from #2 only by its control units
    page.click(".zr-run-button")
    _wait_done(page)
    _tab(page, "History")
    tiles = page.locator(".zr-history-gallery .zr-history-tile")
    assert tiles.count() == 4 and page.locator(".zr-history-gallery img").count() == 3
    page.locator(".zr-compare-a select").select_option(label=page.locator(
        ".zr-compare-a option").filter(has_text="#2 ").first.inner_text())
    page.click(".zr-compare")
    page.wait_for_selector(".zr-compare-table")
    controls = page.inner_text(".zr-compare-table .zr-diff-controls")
    assert controls.count("depth") == 2 and "canny" in controls, controls  # in full, not cut at 60 characters
    assert page.locator(".zr-compare-table .zr-better, .zr-compare-table .zr-worse").count() > 0
    shown = {box(page, f"img.zr-compare-output-{n}") for n in (2, 4)}
    assert len(shown) == 1, shown
    screenshot(page, "lab-08-compare")


# ------------------------------------------------------------------------------------------------ look


def test_a_900_px_window_keeps_the_controls_usable(lab_page):
    page = lab_page
    page.set_viewport_size({"width": 900, "height": 2200})
    try:
        _tab(page, "Controls")
        page.wait_for_timeout(500)
        screenshot(page, "lab-09-900px-controls")
        for name in ("scale", "start", "end"):
            track = box(page, f".zr-unit-depth-{name} .slider-container")
            assert track[0] >= 90, (name, track)  # the tracks wrap onto new lines instead of collapsing
        _tab(page, "History")
        assert box(page, ".zr-compare")[0] >= 100  # "Compare", not "Co..."
        screenshot(page, "lab-09b-900px-history")
    finally:
        page.set_viewport_size({"width": 1400, "height": 2200})


def test_the_dark_theme_reads(lab_page):
    page = lab_page
    set_theme(page, "JupyterLab Dark")
    try:
        _tab(page, "Source")
        checks = {".zr-source-message .zr-msg-info": 4.5, ".zr-lab .zr-caption": 4.5, ".zr-message .zr-msg": 4.5}
        _tab(page, "Results")
        checks.update({".zr-results-notes .zr-tiny-note": 4.5, ".zr-results-notes": 4.5})
        for selector, wanted in checks.items():
            found = contrast(page, selector)
            assert found >= wanted, (selector, found)
        screenshot(page, "lab-10-dark-theme-results")
        _tab(page, "Source")
        assert contrast(page, ".zr-source-message .zr-msg-info") >= 4.5
        screenshot(page, "lab-10b-dark-theme-source")
        _tab(page, "Model")
        assert contrast(page, ".zr-tiny-note") >= 4.5
    finally:
        set_theme(page, "JupyterLab Light")
    assert contrast(page, ".zr-message .zr-msg") >= 4.5


def test_a_cancelled_clip_leaves_no_old_clip_or_eta(lab_page):
    page = lab_page
    _tab(page, "Temporal")
    page.click(".zr-temporal-run")
    _wait_done(page, 180_000)
    page.wait_for_selector(".zr-clip-player video")
    assert page.locator(".zr-clip-player a.zr-download-mp4").count() == 1
    assert page.locator(".zr-clip-player a.zr-download-gif").count() == 1
    _tab(page, "Controls")
    steps = page.locator(".zr-field-steps input")
    steps.fill("60")
    steps.press("Enter")
    _tab(page, "Temporal")
    page.click(".zr-temporal-run")
    page.wait_for_selector(".zr-progress-text:has-text('denoising step')", timeout=120_000)
    page.click(".zr-cancel-button")
    page.wait_for_selector(".zr-state-cancelled, .zr-state-done, .zr-state-error", timeout=60_000)
    assert _state(page) == "cancelled"
    assert page.locator(".zr-clip-player video").count() == 0
    assert "ETA" not in page.inner_text(".zr-progress-text")
    screenshot(page, "lab-11-clip-cancelled")
    _tab(page, "Controls")
    steps.fill("6")
    steps.press("Enter")


def test_a_report_shows_a_moving_bar_and_a_download(lab_page):
    page = lab_page
    _tab(page, "Results")
    page.click(".zr-save-report")
    page.wait_for_selector(".zr-busy-bar .zr-indeterminate", state="visible", timeout=30_000)
    page.wait_for_selector(".zr-progress-text:has-text('writing the report')", timeout=30_000)
    assert "0/1" not in page.inner_text(".zr-progress-text")
    page.wait_for_selector(".zr-state-done, .zr-state-error", timeout=240_000)
    assert _state(page) == "done", page.inner_text(".zr-message")
    page.wait_for_selector(".zr-downloads a.zr-download-report")


def test_history_survives_running_the_cell_again(lab_page):
    page = lab_page
    run_all_cells(page)
    page.wait_for_selector(".zr-lab .zr-run-button", state="visible")
    page.wait_for_timeout(2000)
    _tab(page, "History")
    rows = page.locator(".zr-history option")
    assert rows.count() >= 6, rows.all_inner_texts()  # 4 stills, 2 clips, read back from the run folders
    newest = rows.nth(0).inner_text().replace("\xa0", " ")
    assert newest.startswith("#") and "cancelled clip" in newest, newest
    screenshot(page, "lab-12-history-after-rerun")
    page.locator(".zr-history select").select_option(label=rows.nth(1).inner_text())  # the finished clip
    page.click(".zr-reopen")
    page.wait_for_selector(".zr-clip-player video", timeout=30_000)  # played from its run folder


def _steps(text: str) -> tuple[int, int]:
    found = re.search(r"(\d+)/(\d+)", text)
    assert found, text
    return int(found.group(1)), int(found.group(2))


def test_a_lora_switched_on_with_its_slider_reaches_the_run(lab_page):
    """Last: its run would shift the run numbers the tests above count on."""
    page = lab_page
    _tab(page, "Controls")
    page.click(".zr-adapters-rescan")  # the tiny preset's LoRAs are on disk once the first run built its bundle
    switch = page.locator(".zr-lora-tiny-detail-enabled input")
    switch.wait_for(timeout=30_000)
    switch.check()
    readout = page.locator(".zr-lora-tiny-detail-weight .widget-readout")
    readout.click()
    page.keyboard.press("Control+A")
    page.keyboard.type("0.8")
    page.keyboard.press("Enter")
    page.wait_for_function("() => document.querySelector('.zr-lora-tiny-detail-weight .widget-readout')"
                           ".textContent.trim() === '0.80'")
    screenshot(page, "lab-06-lora-slider")
    page.click(".zr-run-button")
    _wait_done(page)
    assert _state(page) == "done", page.inner_text(".zr-message")
    _tab(page, "Results")
    assert "LoRA tiny-detail 0.8" in page.inner_text(".zr-result-adapters")
    _tab(page, "Controls")
    switch.uncheck()
