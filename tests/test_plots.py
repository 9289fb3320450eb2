"""Plots render headless to PNG, leave no pyplot state, and carry readable labels."""
from __future__ import annotations

import io
import sys

import numpy as np
import pytest
from matplotlib.figure import Figure
from PIL import Image

from zrealism_lab import plots
from zrealism_lab.errors import SettingsError
from zrealism_lab.metrics import colour_moments, evaluate_clip, evaluate_pair

SIZE = 64


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(io.BytesIO(data)) as image:
        return image.size


def _texts(fig: Figure) -> str:
    return " ".join(text.get_text() for text in fig.findobj(lambda artist: hasattr(artist, "get_text")))


@pytest.fixture(scope="module")
def images() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    source = np.zeros((SIZE, SIZE, 3), np.uint8)
    source[16:48, 16:48] = (220, 80, 60)
    output = np.clip(source.astype(int) + rng.integers(-20, 21, source.shape), 0, 255).astype(np.uint8)
    return source, output


def test_metric_panel_renders_headline_metrics_with_bands(images):
    report = evaluate_pair(*images)
    fig = plots.plot_metric_panel(report)
    assert isinstance(fig, Figure)
    text = _texts(fig)
    assert "ssim_luma" in text and "delta_e2000_mean" in text and "↑ better" in text and "ΔE00" in text
    assert "L_mean_source" not in text  # descriptive values stay out of the headline panel
    assert any(len(ax.patches) >= 3 for ax in fig.axes)  # the good / fair / poor bands
    width, height = _png_size(plots.figure_to_png_bytes(fig))
    assert width > 300 and height > 200


def test_metric_panel_on_chosen_names_and_clip_reports(images):
    source, _ = images
    frames = np.stack([np.roll(source, t, axis=1) for t in range(4)])
    clip_report = evaluate_clip(frames, reference=frames)
    fig = plots.plot_metric_panel(clip_report, names=["flicker", "warp_error_ratio", "flicker_reference"])
    assert len(fig.axes) == 3
    _png_size(plots.figure_to_png_bytes(fig))


def test_side_by_side_shows_every_panel(images):
    source, output = images
    maps = {"depth": Image.new("L", (SIZE, SIZE), 128), "canny": np.zeros((SIZE, SIZE), np.uint8)}
    fig = plots.plot_side_by_side(Image.fromarray(source), maps, output, caption="random-weight bundle: not a real result")
    assert len(fig.axes) == 4
    text = _texts(fig)
    assert "source" in text and "depth map" in text and "canny map" in text and "output" in text
    assert "not a real result" in text
    _png_size(plots.figure_to_png_bytes(fig))


def test_colour_moments_before_after_and_target(images):
    source, output = images
    before, after = colour_moments(output), colour_moments(source)
    fig = plots.plot_colour_moments(before, after, target=colour_moments(source))
    assert len(fig.axes) == 3
    assert len(fig.axes[0].patches) == 9  # 3 channels x (before, after, source)
    assert "skewness (unitless)" in _texts(fig) and "L*a*b* units" in _texts(fig)
    _png_size(plots.figure_to_png_bytes(fig))
    with pytest.raises(SettingsError, match="colour_moments"):
        plots.plot_colour_moments({"L_mean": 1.0}, after)


def test_temporal_curves_pair_output_and_reference():
    fig = plots.plot_temporal_curves({
        "flicker": [1.0, 2.0, 1.5], "flicker_reference": [1.2, 1.9, 1.4], "warp_error": [0.5, 0.4, 0.6],
    })
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert len(visible) == 2
    flicker_ax = visible[0]
    assert [line.get_linestyle() for line in flicker_ax.get_lines()] == ["-", "--"]
    assert flicker_ax.get_ylabel() == "levels" and "previous frame" in flicker_ax.get_xlabel()
    _png_size(plots.figure_to_png_bytes(fig))
    with pytest.raises(SettingsError):
        plots.plot_temporal_curves({})


def test_temporal_curves_from_a_report(images):
    source, _ = images
    report = evaluate_clip(np.stack([np.roll(source, t, axis=0) for t in range(4)]))
    fig = plots.plot_temporal_curves(report.series)
    assert len([ax for ax in fig.axes if ax.get_visible()]) == len(report.series)
    _png_size(plots.figure_to_png_bytes(fig))


def test_metric_vs_parameter_numeric_with_hue_and_repeats():
    rows = [{"strength": s, "scheduler": sch, "seed": seed, "ssim_luma": 0.9 - 0.3 * s + 0.01 * seed + (0.05 if sch == "ddim" else 0)}
            for s in (0.3, 0.5, 0.7) for sch in ("euler", "ddim") for seed in (0, 1)]
    fig = plots.plot_metric_vs_parameter(rows, "strength", "ssim_luma", hue="scheduler")
    ax = fig.axes[0]
    assert ax.get_xlabel() == "strength"
    assert ax.get_ylabel() == "ssim luma [SSIM]  (↑ better)"
    assert len(ax.collections) >= 2  # min-max ranges of the repeated seeds
    legend = [text.get_text() for text in ax.get_legend().get_texts()]
    assert legend == ["scheduler = euler", "scheduler = ddim"]
    _png_size(plots.figure_to_png_bytes(fig))


def test_metric_vs_parameter_categorical_and_unknown_metric():
    rows = [{"scheduler": "euler", "score": 1.0}, {"scheduler": "ddim", "score": 2.0}]
    fig = plots.plot_metric_vs_parameter(rows, "scheduler", "score")
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["euler", "ddim"]
    _png_size(plots.figure_to_png_bytes(fig))
    with pytest.raises(SettingsError, match="one of"):
        plots.plot_metric_vs_parameter(rows, "scheduler", "missing_metric")


def test_plots_leave_no_pyplot_state_and_restore_rcparams(images):
    import matplotlib

    before = dict(matplotlib.rcParams)
    plots.plot_metric_panel(evaluate_pair(*images))
    assert dict(matplotlib.rcParams) == before
    if "matplotlib.pyplot" in sys.modules:
        assert sys.modules["matplotlib.pyplot"].get_fignums() == []
