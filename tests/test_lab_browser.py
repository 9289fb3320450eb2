"""The lab in a real JupyterLab, driven through headless Chromium: run all cells, Run to the end, Run and Cancel.

Screenshots land in $ZREALISM_TEST_ARTIFACTS (default: test-artifacts/ in the repository)."""
from __future__ import annotations

import re
import shutil
import time

import pytest

from zrealism_lab.source.samples import sample_path
from browser_support import ROOT, chromium_path, launch_chromium, run_all_cells, screenshot, start_jupyterlab, \
    wait_kernel_idle

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM = chromium_path()
NOTEBOOK = ROOT / "notebooks" / "lab.ipynb"


@pytest.fixture(scope="module")
def lab_page(tmp_path_factory):
    """One JupyterLab server and one browser page with the lab notebook executed, shared by the module's tests."""
    if CHROMIUM is None:
        pytest.skip("Chromium is not installed (apt-get install chromium); browser tests need the system's Chromium")
    sync_api = pytest.importorskip("playwright.sync_api", reason="Python Playwright is not installed")
    root = tmp_path_factory.mktemp("lab-root")
    shutil.copy(NOTEBOOK, root / NOTEBOOK.name)
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


def test_lab_paints_with_sample_analysis(lab_page):
    page = lab_page
    assert _state(page) == "idle"
    page.wait_for_selector(".zr-analysis :text('confidence')", timeout=60_000)
    assert "transparent" in page.inner_text(".zr-analysis")
    screenshot(page, "lab-01-painted")
    # a real upload through the FileUpload widget: decoded by intake, analysed, and used by the runs below
    with page.expect_file_chooser() as chooser:
        page.click(".zr-upload")
    chooser.value.set_files(str(sample_path("light")))
    page.wait_for_selector(".zr-source-message :text('upload light.png')", timeout=30_000)
    page.wait_for_selector(".zr-analysis :text('background: light')", timeout=30_000)
    screenshot(page, "lab-01a-uploaded")
    page.click(".zr-tabs .lm-TabBar-tab:has-text('Model')")
    # a fresh cache: the tiny bundle is not built yet, and the tab says the first Run builds it
    page.wait_for_selector(".zr-model-status :text('first Run builds it')", timeout=30_000)
    assert "decided when the model loads" in page.inner_text(".zr-device")
    screenshot(page, "lab-01b-model")
    page.click(".zr-tabs .lm-TabBar-tab:has-text('Temporal')")
    page.wait_for_selector(".zr-temporal-note", timeout=10_000)
    screenshot(page, "lab-01c-temporal")


def test_run_reaches_the_end_and_shows_the_output(lab_page):
    page = lab_page
    before = _output_src(page)
    page.click(".zr-run-button")
    page.wait_for_selector(".zr-state-running", timeout=10_000)
    page.wait_for_selector(".zr-state-done, .zr-state-error", timeout=120_000)
    screenshot(page, "lab-02-run-done")
    assert _state(page) == "done", page.inner_text(".zr-message")
    text = page.inner_text(".zr-progress-text")
    assert "4/4" in text, text  # steps=6 at strength 0.7 -> 4 denoising steps
    bar = page.locator(".zr-progress .progress-bar")
    assert bar.evaluate("el => el.style.width") == "100%"
    assert _output_src(page) != before, "the output image did not change after the run"
    page.click(".zr-tabs .lm-TabBar-tab:has-text('Results')")
    page.wait_for_selector("img.zr-result-output")
    assert "ssim" in page.inner_text(".zr-metrics")
    screenshot(page, "lab-03-results")


def test_second_run_is_cancelled(lab_page):
    page = lab_page
    page.click(".zr-tabs .lm-TabBar-tab:has-text('Controls')")
    steps = page.locator(".zr-field-steps input")
    steps.fill("0")  # out of range: the message shows next to the field as it is edited
    steps.press("Enter")
    page.wait_for_selector(".zr-field-message:has-text('from 1 to 150')", timeout=10_000)
    screenshot(page, "lab-04a-invalid-steps")
    steps.fill("120")
    steps.press("Enter")
    page.wait_for_selector(".zr-field-message:has-text('from 1 to 150')", state="detached", timeout=10_000)
    page.click(".zr-run-button")
    page.wait_for_selector(".zr-progress-text:has-text('denoising step')", timeout=120_000)
    page.click(".zr-run-button")  # while busy: a message, nothing queued
    page.wait_for_selector(".zr-message:has-text('already in progress')", timeout=10_000)
    started = time.monotonic()
    page.click(".zr-cancel-button")
    page.wait_for_selector(".zr-state-cancelled, .zr-state-done, .zr-state-error", timeout=60_000)
    stopped_after = time.monotonic() - started
    screenshot(page, "lab-04b-cancelled")
    assert _state(page) == "cancelled", page.inner_text(".zr-message")
    message = page.inner_text(".zr-message")
    assert "Cancelled" in message and "record says 'cancelled'" in message, message
    done, total = _steps(page.inner_text(".zr-progress-text"))
    assert total == 84 and done < total  # steps=120 at strength 0.7
    assert stopped_after < 30, f"cancel took {stopped_after:.1f} s"
    page.click(".zr-tabs .lm-TabBar-tab:has-text('History')")
    rows = page.locator(".zr-history option")
    assert rows.count() == 2
    assert "cancelled" in rows.nth(0).inner_text() and "completed" in rows.nth(1).inner_text()
    screenshot(page, "lab-05-history")


def _steps(text: str) -> tuple[int, int]:
    found = re.search(r"(\d+)/(\d+)", text)
    assert found, text
    return int(found.group(1)), int(found.group(2))
