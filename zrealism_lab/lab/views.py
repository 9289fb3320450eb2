"""Read-only views for the lab: a run's pictures side by side, metric tables, plots, notes and comparisons; a
source's background analysis; the model's components and the device.

Each function takes core objects and returns widgets or HTML; none of them changes any state.
"""
from __future__ import annotations

import html
import sys
from typing import Any, Sequence

import ipywidgets as w
from PIL import Image

from ..reports.media import captioned_html, display_png, figure_png
from .state import HistoryEntry, format_seconds

_PHASE_COLOURS = {"idle": "#777", "running": "#1565c0", "cancelling": "#ef6c00", "done": "#2e7d32",
                  "cancelled": "#ef6c00", "error": "#c62828"}


def badge_html(phase: str) -> str:
    colour = _PHASE_COLOURS.get(phase, "#777")
    return (f'<span class="zr-state-badge zr-state-{html.escape(phase)}" style="display:inline-block;min-width:6em;'
            f'text-align:center;padding:2px 8px;border-radius:10px;color:white;background:{colour};'
            f'font-weight:600">{html.escape(phase)}</span>')


def message_html(text: str, level: str = "info") -> str:
    if not text:
        return ""
    colour = {"info": "#333", "ok": "#2e7d32", "warn": "#ef6c00", "error": "#c62828"}.get(level, "#333")
    return f'<div class="zr-message-{level}" style="color:{colour};white-space:pre-wrap">{html.escape(text)}</div>'


def pre_html(text: str, css: str = "") -> str:
    return (f'<pre class="{html.escape(css)}" style="font-size:11px;line-height:1.3;max-height:24em;overflow:auto;'
            f'white-space:pre-wrap">{html.escape(text)}</pre>')


def picture(image: Image.Image, caption: str, css: str = "", long_side: int = 192) -> w.VBox:
    """An image with its caption under it; ``css`` is the test hook on the image widget."""
    widget = w.Image(value=display_png(image, long_side), format="png")
    if css:
        widget.add_class(css)
    return w.VBox([widget, w.HTML(captioned_html(caption))], layout=w.Layout(margin="0 8px 8px 0"))


def gallery(result: Any, long_side: int = 192) -> list[w.VBox]:
    """Source (as prepared for the model), every control map, the raw output and the colour-anchored output."""
    context = result.context
    items = [picture(context.prepared.image, "source (prepared)", "zr-result-source", long_side)]
    for kind, control_map in context.control_maps.items():
        items.append(picture(control_map.image, f"{kind} map ({control_map.method})", f"zr-result-map-{kind}",
                             long_side))
    items.append(picture(result.raw, "raw output", "zr-result-raw", long_side))
    colour = result.colour
    items.append(picture(result.image, f"output ({colour.method} {colour.strength:g})", "zr-result-output",
                         long_side))
    return items


def metric_table_html(result: Any) -> str:
    metrics = getattr(result, "metrics", None)
    if metrics is None:
        return "<i>no metrics for this run</i>"
    return pre_html(metrics.as_table(), "zr-metric-table")


def notes_html(result: Any, random_weights: bool, tiny_note: str) -> str:
    colour = result.colour
    lines = [f"<b>colour anchoring</b> ({html.escape(colour.method)}, strength {colour.strength:g}): "
             f"ΔE00 to the source {colour.delta_e_before:.2f} → {colour.delta_e_after:.2f}"]
    timings = ", ".join(f"{html.escape(k)} {format_seconds(v)}" for k, v in result.timings.items())
    lines.append(f"<b>timings</b>: {timings}")
    analysis = result.context.analysis
    lines.append(f"<b>background</b>: {html.escape(analysis.kind)} (confidence {analysis.confidence:.2f})")
    if result.run_dir is not None:
        lines.append(f"<b>run folder</b>: <code>{html.escape(str(result.run_dir))}</code>")
    for warning in result.warnings:
        lines.append(f'<span style="color:#ef6c00">⚠ {html.escape(str(warning))}</span>')
    if random_weights:
        lines.append(f'<span class="zr-tiny-note" style="color:#6a1b9a">{html.escape(tiny_note)}</span>')
    return "<br>".join(lines)


def plot_pictures(result: Any) -> list[w.Widget]:
    """The metric panel and the colour-moment bars (before / after anchoring / source) from zrealism_lab.plots."""
    try:
        from .. import plots
        from ..metrics import colour_moments
    except ImportError:
        return [w.HTML("<i>plots are not available in this installation</i>")]
    context = result.context
    mask = getattr(context.prepared, "mask", None)

    def moments(image: Image.Image) -> dict[str, float]:
        fits = mask is not None and mask.shape == (image.height, image.width)
        return colour_moments(image, mask if fits else None)

    makers = []
    if getattr(result, "metrics", None) is not None:
        makers.append(("metric-panel", lambda: plots.plot_metric_panel(result.metrics)))
    makers.append(("colour-moments", lambda: plots.plot_colour_moments(
        moments(result.raw), moments(result.image), moments(context.prepared.image.convert("RGB")))))
    pictures: list[w.Widget] = []
    for name, make in makers:
        try:
            png = figure_png(make())
        except Exception as exc:  # noqa: BLE001 - a plot that fails must not hide the run's results
            pictures.append(w.HTML(f"<i>{html.escape(name)} plot failed: {html.escape(str(exc)[:200])}</i>"))
            continue
        image = w.Image(value=png, format="png", layout=w.Layout(max_width="560px"))
        image.add_class(f"zr-plot-{name}")
        pictures.append(image)
    return pictures


def comparison(first: HistoryEntry, second: HistoryEntry) -> w.Widget:
    """Two runs' outputs side by side with their settings that differ and their metrics with the difference."""
    columns = []
    for entry in (first, second):
        result = entry.result
        columns.append(w.VBox([
            w.Image(value=display_png(result.image, 256), format="png"),
            w.HTML(captioned_html(entry.label)),
        ], layout=w.Layout(margin="0 12px 0 0")))
    rows = ["<tr><th>setting</th><th>#%d</th><th>#%d</th></tr>" % (first.number, second.number)]
    a_settings, b_settings = first.settings.to_dict(), second.settings.to_dict()
    for key in a_settings:
        if a_settings[key] != b_settings.get(key):
            rows.append(f"<tr><td>{html.escape(key)}</td><td>{html.escape(_short(a_settings[key]))}</td>"
                        f"<td>{html.escape(_short(b_settings.get(key)))}</td></tr>")
    if len(rows) == 1:
        rows.append('<tr><td colspan="3"><i>same settings</i></td></tr>')
    metric_rows = _metric_rows(first.result, second.result)
    table = ('<table class="zr-compare-table" style="border-collapse:collapse;font-size:12px">'
             + "".join(rows) + metric_rows + "</table>")
    return w.VBox([w.HBox(columns), w.HTML(table)])


def _short(value: Any, limit: int = 60) -> str:
    text = str(value)
    return text if len(text) <= limit else text[:limit] + " ..."


def _metric_rows(first: Any, second: Any) -> str:
    if first.metrics is None or second.metrics is None:
        return ""
    a, b = first.metrics.flat(), second.metrics.flat()
    rows = ["<tr><th>metric</th><th>first</th><th>second</th><th>difference</th></tr>"]
    for name in a:
        if name in b:
            rows.append(f"<tr><td>{html.escape(name)}</td><td>{a[name]:.4g}</td><td>{b[name]:.4g}</td>"
                        f"<td>{b[name] - a[name]:+.4g}</td></tr>")
    return "".join(rows)


def component_table_html(statuses: Sequence[Any], how_to: str) -> str:
    rows = ['<tr><th align="left">component</th><th align="left">status</th><th align="right">size</th>'
            '<th align="left">where</th></tr>']
    for status in statuses:
        state = ('<span style="color:#2e7d32">present</span>' if status.present
                 else '<span style="color:#c62828">missing</span>')
        size = f"{status.size_bytes / 2**20:.1f} MB" if status.present else "-"
        where = status.path if status.present and status.path else status.ref.describe()
        detail = f" ({status.detail})" if status.detail and not status.present else ""
        rows.append(f"<tr><td>{html.escape(status.role)}</td><td>{state}</td><td align='right'>{size}</td>"
                    f"<td><code>{html.escape(str(where))}</code>{html.escape(detail)}</td></tr>")
    table = ('<table class="zr-component-table" style="border-collapse:collapse;font-size:12px">'
             + "".join(rows) + "</table>")
    if how_to:
        table += f'<div class="zr-how-to" style="white-space:pre-wrap;color:#555;margin-top:6px">{html.escape(how_to)}</div>'
    return table


def analysis_html(loaded: Any, analysis: Any) -> str:
    """The Source tab's summary of a decoded source and its background analysis."""
    lines = [f"<b>background</b>: {html.escape(analysis.kind)}",
             f"<b>confidence</b>: {analysis.confidence:.2f}",
             f"<b>subject</b>: {analysis.mask_fraction:.0%} of the image",
             f"<b>size</b>: {loaded.size[0]}×{loaded.size[1]} ({html.escape(str(loaded.format))}"
             + (", with alpha" if loaded.has_alpha else "") + ")"]
    lines += [f'<span style="color:#ef6c00">⚠ {html.escape(str(n))}</span>' for n in analysis.warnings]
    return '<div style="margin-left:12px">' + "<br>".join(lines) + "</div>"


def components_html(preset: str) -> str:
    """Which of the preset's components are on disk, and how to get the missing ones (loads no weights)."""
    from ..models.loading import locate, missing_weights_error
    from ..models.modelset import resolve_modelset, tiny_bundle_dir, tiny_modelset

    if preset == "tiny":
        folder = tiny_bundle_dir()
        if not folder.is_dir():
            return (f"<div>The tiny bundle is not built yet: the first Run builds it (about 12 MB, a few seconds) in "
                    f"<code>{html.escape(str(folder))}</code> (set ZREALISM_CACHE to choose the folder).</div>")
        modelset = tiny_modelset(folder, build=False)
    else:
        modelset = resolve_modelset(preset)
    statuses = [locate(ref) for ref in modelset.components()]
    missing = [s for s in statuses if not s.present]
    how_to = str(missing_weights_error(missing, modelset.name)) if missing else "All components are present."
    return component_table_html(statuses, how_to)


def device_html(engine: Any, device: str, check_now: bool) -> str:
    """The device plan of the loaded engine; without one, torch is imported only when asked or already loaded."""
    plan = getattr(engine, "plan", None)
    if plan is None and (check_now or "torch" in sys.modules):
        from ..device import plan_hardware

        plan = plan_hardware(device)
    if plan is None:
        return ("<i>decided when the model loads on the first Run: CUDA float16 (or Apple MPS) when present, "
                "else CPU float32. Press Check device to see it now.</i>")
    memory = f", {plan.total_memory_gb} GB" if plan.total_memory_gb else ""
    loaded = ""
    if engine is not None and engine.loaded_roles():
        loaded = "<br><b>loaded</b>: " + ", ".join(
            f"{html.escape(role)} ({format_seconds(engine.load_seconds.get(role))})" for role in engine.loaded_roles())
    return (f'<span class="zr-device-line"><b>device</b>: {html.escape(plan.device)}{memory} · <b>dtype</b>: '
            f"{html.escape(plan.dtype)} · <b>offload</b>: {html.escape(plan.offload)}</span><br>"
            f"<span style='color:#555'>{html.escape(plan.reason)}</span>{loaded}")
