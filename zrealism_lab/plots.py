"""Figures for notebooks, widgets and reports.

Every function returns a ``matplotlib.figure.Figure`` built directly (not through pyplot), so nothing is
left in pyplot's global figure list and the figures render headless (Agg). One look for all of them comes
from ``house_style``.
"""
from __future__ import annotations

import functools
import io
import math
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

import numpy as np
from PIL import Image

from .errors import SettingsError

if TYPE_CHECKING:  # pragma: no cover - typing only; matplotlib is imported lazily
    from matplotlib.figure import Figure

    from .metrics.report import MetricReport

PALETTE = ("#33658a", "#f26419", "#2f9c95", "#86bbd8", "#9b5de5", "#f6ae2d", "#55514e")
BAND_COLOURS = {"good": "#cfe8cf", "fair": "#fbeec1", "poor": "#f5cfcf"}
_ARROW = {"higher": "↑ better", "lower": "↓ better", "none": ""}


def house_style() -> dict[str, Any]:
    """The rcParams every figure here is drawn with (applied temporarily, never globally)."""
    from cycler import cycler

    return {
        "font.size": 9,
        "axes.titlesize": 10,
        "axes.titleweight": "bold",
        "axes.labelsize": 9,
        "xtick.labelsize": 8,
        "ytick.labelsize": 8,
        "legend.fontsize": 8,
        "legend.frameon": False,
        "axes.spines.top": False,
        "axes.spines.right": False,
        "axes.grid": True,
        "grid.alpha": 0.25,
        "grid.linewidth": 0.6,
        "axes.prop_cycle": cycler(color=list(PALETTE)),
        "lines.linewidth": 1.6,
        "lines.markersize": 4.5,
        "figure.facecolor": "white",
        "axes.facecolor": "white",
        "image.interpolation": "nearest",
    }


def _styled(plot: Callable[..., "Figure"]) -> Callable[..., "Figure"]:
    @functools.wraps(plot)
    def wrapper(*args: Any, **kwargs: Any) -> "Figure":
        import matplotlib

        with matplotlib.rc_context(house_style()):
            return plot(*args, **kwargs)

    return wrapper


def _figure(width: float, height: float) -> "Figure":
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def figure_to_png_bytes(fig: "Figure", dpi: int = 100) -> bytes:
    """The figure as PNG bytes (Agg), e.g. for widgets.Image or a run record."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    if not isinstance(fig.canvas, FigureCanvasAgg):
        FigureCanvasAgg(fig)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, facecolor="white")
    return buffer.getvalue()


def _spec(name: str):
    from .metrics.registry import METRICS

    return METRICS.get(name) if name in METRICS else None


def _axis_label(name: str, unit: str | None = None, direction: str | None = None) -> str:
    spec = _spec(name)
    unit = unit if unit is not None else (spec.unit if spec else "")
    direction = direction if direction is not None else (spec.direction if spec else "none")
    label = name.replace("_", " ")
    if unit:
        label += f" [{unit}]"
    if _ARROW.get(direction):
        label += f"  ({_ARROW[direction]})"
    return label


# ------------------------------------------------------------------------------------ metric panel
def _display_limits(low: float, high: float, value: float, bands: Sequence[Any]) -> tuple[float, float]:
    """The span of a metric's axis: its guide bands (or its range), widened to show the value, never
    beyond the metric's range."""
    if bands:
        shown_low, shown_high = min(b.low for b in bands), max(b.high for b in bands)
    else:
        shown_low = low if math.isfinite(low) else min(value, 0.0)
        shown_high = high if math.isfinite(high) else max(1.0, value)
    margin = 0.12 * (shown_high - shown_low or 1.0)
    if value > shown_high:
        shown_high = min(high, value + margin)
    if value < shown_low:
        shown_low = max(low, value - margin)
    if shown_high <= shown_low:
        shown_high = shown_low + 1.0
    return shown_low, shown_high


def _draw_bands(ax: Any, bands: Sequence[Any], low: float, high: float, vertical: bool = True) -> None:
    """Shade guide bands; the first and last reach the axis ends so the whole axis is coloured."""
    ordered = sorted(bands, key=lambda band: band.low)
    for k, band in enumerate(ordered):
        start = low if k == 0 else max(band.low, low)
        end = high if k == len(ordered) - 1 else min(band.high, high)
        if end <= start:
            continue
        colour = BAND_COLOURS.get(band.label, "#eeeeee")
        if vertical:
            ax.axvspan(start, end, color=colour, lw=0, zorder=0)
        else:
            ax.axhspan(start, end, color=colour, alpha=0.45, lw=0, zorder=0)


@_styled
def plot_metric_panel(report: "MetricReport", names: Sequence[str] | None = None) -> "Figure":
    """One row per metric: its value on its scale, over shaded guide bands (green good, amber fair,
    red poor). By default the report's headline metrics."""
    if names is None:
        names = [m.name for m in report.values if (_spec(m.name) and _spec(m.name).headline)]
        if not names:
            names = [m.name for m in report.values if m.direction != "none"] or report.names()
    metrics = [report.get(name) for name in names]
    if not metrics:
        raise SettingsError("report", "an empty report", "a MetricReport with at least one metric")
    fig = _figure(7.0, 0.62 * len(metrics) + 0.9)
    axes = fig.subplots(len(metrics), 1, squeeze=False)[:, 0]
    for ax, metric in zip(axes, metrics):
        spec = _spec(metric.name)
        bands = spec.bands if spec else ()
        low, high = _display_limits(metric.range[0], metric.range[1], metric.value, bands)
        _draw_bands(ax, bands, low, high)
        shown = min(max(metric.value, low), high)
        ax.plot([shown], [0], marker="D", color="#222222", markersize=7, zorder=3, clip_on=False)
        clipped = "" if shown == metric.value else (" ▶" if metric.value > high else " ◀")
        ax.text(1.01, 0.5, f"{metric.value:.3g} {metric.unit}{clipped}", transform=ax.transAxes,
                va="center", ha="left", fontsize=8)
        ax.set_xlim(low, high)
        ax.set_ylim(-1, 1)
        ax.set_yticks([0])
        arrow = _ARROW.get(metric.direction, "")
        ax.set_yticklabels([f"{metric.name}\n{arrow}" if arrow else metric.name])
        ax.grid(axis="y", visible=False)
        ax.spines["left"].set_visible(False)
        ax.tick_params(axis="y", length=0)
    title = {"pair": "Image metrics", "clip": "Temporal metrics", "adherence": "Control adherence"}
    suffix = f" at {report.common_size[0]}x{report.common_size[1]} px" if report.common_size else ""
    fig.suptitle(title.get(report.kind, "Metrics") + suffix + "  (bands: rules of thumb)", fontsize=10)
    return fig


# ------------------------------------------------------------------------------------ images
def _as_displayable(image: Any) -> np.ndarray:
    if isinstance(image, Image.Image):
        return np.asarray(image.convert("RGB"))
    array = np.asarray(image)
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[..., 0]
    return array


@_styled
def plot_side_by_side(source: Any, control_maps: Mapping[str, Any], output: Any,
                      caption: str | None = None) -> "Figure":
    """Source, each control map, and the output in one row with titles (``caption`` goes underneath,
    e.g. to say that output from the tiny random-weight bundle is not meant to look like anything)."""
    panels = [("source", source)] + [(f"{kind} map", image) for kind, image in control_maps.items()]
    panels.append(("output", output))
    fig = _figure(2.4 * len(panels), 3.0 + (0.3 if caption else 0.0))
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (title, image) in zip(axes, panels):
        array = _as_displayable(image)
        grey = array.ndim == 2
        # grey maps are shown at their true levels (a flat mid-grey depth map must not turn black or white)
        limits = {"vmin": 0, "vmax": 255} if grey and array.dtype == np.uint8 else {}
        ax.imshow(array, cmap="gray" if grey else None, **limits)
        ax.set_title(f"{title}\n{array.shape[1]}x{array.shape[0]} px", fontsize=9)
        ax.set_axis_off()
    if caption:
        fig.supxlabel(caption, fontsize=8, style="italic")
    return fig


# ------------------------------------------------------------------------------------ colour moments
@_styled
def plot_colour_moments(before: Mapping[str, float], after: Mapping[str, float],
                        target: Mapping[str, float] | None = None,
                        labels: tuple[str, str, str] = ("before anchoring", "after anchoring", "source")) -> "Figure":
    """Mean, standard deviation and skewness of L*, a*, b* before and after colour anchoring (dicts from
    ``metrics.colour_moments``), with the source's moments as a third bar when ``target`` is given."""
    from .metrics.colour import CHANNELS, MOMENTS

    series = [(labels[0], before), (labels[1], after)] + ([(labels[2], target)] if target is not None else [])
    for label, moments in series:
        missing = [f"{c}_{m}" for c in CHANNELS for m in MOMENTS if f"{c}_{m}" not in moments]
        if missing:
            raise SettingsError(label, f"moments without {', '.join(missing)}",
                                "a dict from zrealism_lab.metrics.colour_moments")
    fig = _figure(8.0, 2.8)
    axes = fig.subplots(1, len(MOMENTS))
    units = {"mean": "L*a*b* units", "std": "L*a*b* units", "skew": "skewness (unitless)"}
    titles = {"mean": "mean", "std": "standard deviation", "skew": "skewness"}
    x = np.arange(len(CHANNELS))
    width = 0.8 / len(series)
    for ax, moment in zip(axes, MOMENTS):
        for k, (label, moments) in enumerate(series):
            values = [moments[f"{c}_{moment}"] for c in CHANNELS]
            ax.bar(x + (k - (len(series) - 1) / 2) * width, values, width, label=label,
                   color=PALETTE[k] if k < 2 else "#9e9e9e")
        ax.axhline(0, color="#444444", lw=0.6)
        ax.set_xticks(x)
        ax.set_xticklabels(["L*", "a*", "b*"])
        ax.set_title(titles[moment])
        ax.set_ylabel(units[moment])
        ax.grid(axis="x", visible=False)
    axes[0].legend(loc="best")
    fig.suptitle("Colour moments over the subject", fontsize=10)
    return fig


# ------------------------------------------------------------------------------------ temporal curves
@_styled
def plot_temporal_curves(per_frame: Mapping[str, Sequence[float]]) -> "Figure":
    """One panel per temporal measure; the output's curve solid and the reference clip's (``<name>_reference``)
    dashed in the same colour. The point at frame t compares it with frame t-1 (colour drift: with frame 0),
    the shape of ``MetricReport.series``."""
    bases: list[str] = []
    for name in per_frame:
        base = name[: -len("_reference")] if name.endswith("_reference") else name
        if base not in bases:
            bases.append(base)
    if not bases:
        raise SettingsError("per_frame", "an empty dict", "{name: [value per frame pair], ...}")
    columns = min(2, len(bases))
    rows = math.ceil(len(bases) / columns)
    fig = _figure(4.2 * columns, 2.6 * rows)
    axes = fig.subplots(rows, columns, squeeze=False).ravel()
    for k, (ax, base) in enumerate(zip(axes, bases)):
        colour = PALETTE[k % len(PALETTE)]
        for name, style, label in ((base, "-", "output"), (f"{base}_reference", "--", "reference (input)")):
            if name in per_frame:
                values = list(per_frame[name])
                ax.plot(range(1, len(values) + 1), values, style, color=colour,
                        marker="o" if len(values) < 40 else None, label=label)
        ax.set_title(base.replace("_", " "))
        ax.set_xlabel("frame (vs the first frame)" if base == "colour_drift" else "frame (vs the previous frame)")
        spec = _spec(base)
        ax.set_ylabel(spec.unit if spec else "value")
        ax.set_ylim(bottom=0)
        ax.xaxis.get_major_locator().set_params(integer=True)
        if any(f"{b}_reference" in per_frame for b in bases):
            ax.legend(loc="best")
    for ax in axes[len(bases):]:
        ax.set_visible(False)
    fig.suptitle("Per-frame stability (lower is steadier)", fontsize=10)
    return fig


# ------------------------------------------------------------------------------------ sweeps
def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


@_styled
def plot_metric_vs_parameter(rows: Sequence[Mapping[str, Any]], parameter: str, metric: str,
                             hue: str | None = None) -> "Figure":
    """A sweep's ``metric`` against ``parameter``, one line per value of ``hue``. Repeated settings (e.g.
    several seeds) are drawn as points with their mean as the line and their min-max range shaded."""
    if not rows:
        raise SettingsError("rows", "[]", "a non-empty list of sweep result dicts")
    for key in [parameter, metric] + ([hue] if hue else []):
        if not any(key in row for row in rows):
            keys = sorted({k for row in rows for k in row})
            raise SettingsError("column", key, "one of " + ", ".join(keys))
    usable = [row for row in rows if parameter in row and metric in row and row[metric] is not None]
    numeric_x = all(_is_number(row[parameter]) for row in usable)
    categories: list[Any] = []
    if not numeric_x:
        for row in usable:
            if row[parameter] not in categories:
                categories.append(row[parameter])
    groups: dict[Any, list[Mapping[str, Any]]] = {}
    for row in usable:
        groups.setdefault(row.get(hue) if hue else None, []).append(row)

    fig = _figure(5.6, 3.6)
    ax = fig.subplots()
    spec = _spec(metric)
    all_y: list[float] = []
    for k, (key, members) in enumerate(groups.items()):
        colour = PALETTE[k % len(PALETTE)]
        by_x: dict[Any, list[float]] = {}
        for row in members:
            by_x.setdefault(row[parameter], []).append(float(row[metric]))
        xs = sorted(by_x) if numeric_x else [c for c in categories if c in by_x]
        positions = [float(x) if numeric_x else categories.index(x) for x in xs]
        means = [float(np.mean(by_x[x])) for x in xs]
        all_y += [v for x in xs for v in by_x[x]]
        label = f"{hue} = {key}" if hue else None
        ax.plot(positions, means, "-o", color=colour, label=label, zorder=3)
        if any(len(by_x[x]) > 1 for x in xs):
            ax.fill_between(positions, [min(by_x[x]) for x in xs], [max(by_x[x]) for x in xs],
                            color=colour, alpha=0.18, lw=0, zorder=2)
            for position, x in zip(positions, xs):
                ax.plot([position] * len(by_x[x]), by_x[x], ".", color=colour, alpha=0.6, zorder=3)
    if not numeric_x:
        ax.set_xticks(range(len(categories)))
        ax.set_xticklabels([str(c) for c in categories])
    if all_y and spec is not None and spec.bands:
        # the data sets the view; the guide bands only colour its background
        pad = 0.1 * ((max(all_y) - min(all_y)) or abs(max(all_y)) or 1.0)
        view = (min(all_y) - pad, max(all_y) + pad)
        _draw_bands(ax, spec.bands, *view, vertical=False)
        ax.set_ylim(*view)
    ax.set_xlabel(parameter.replace("_", " "))
    ax.set_ylabel(_axis_label(metric))
    ax.set_title(f"{metric.replace('_', ' ')} vs {parameter.replace('_', ' ')}")
    if hue:
        ax.legend(loc="best")
    return fig
