"""Read-only views for the lab: messages, badges, pictures (equal-size thumbnails that open at full resolution), a
run's gallery, headline numbers, its metric table, plots and notes, and the before/after wipe.

Each function takes core objects or a RunView and returns widgets or HTML; none of them changes any state. Colours
are the theme's variables (theme.py), so light and dark themes both read.
"""
from __future__ import annotations

import html
from typing import Any

import ipywidgets as w
from PIL import Image

from ..reports.media import data_uri, display_png, figure_png, for_display
from .run_view import RunView
from .state import format_seconds

THUMB_SIDE = 192  # every thumbnail meant for comparison sits in a square box of this side
ZOOM_SIDE = 512  # small pictures open at least this large (nearest neighbour: every pixel stays visible)

_PHASE_COLOURS = {"idle": "var(--zr-panel)", "running": "var(--jp-brand-color1, #1565c0)",
                  "cancelling": "var(--jp-warn-color0, #e65100)", "done": "var(--jp-success-color0, #1b5e20)",
                  "cancelled": "var(--jp-warn-color0, #e65100)", "error": "var(--jp-error-color0, #b71c1c)"}


def badge_html(phase: str) -> str:
    """The run state as a small status label (not a button: no border, no pointer)."""
    background = _PHASE_COLOURS.get(phase, "var(--zr-panel)")
    ink = "var(--zr-ink)" if phase == "idle" else "white"
    return (f'<span class="zr-state-badge zr-state-{html.escape(phase)}" style="display:inline-block;min-width:6em;'
            f'text-align:center;padding:1px 8px;border-radius:3px;color:{ink};background:{background};'
            f'font-size:12px;cursor:default">{html.escape(phase)}</span>')


def message_html(text: str, level: str = "info") -> str:
    """A message line; level is info, ok, warn, error or note (its colour comes from the theme)."""
    if not text:
        return ""
    level = html.escape(level)
    return f'<div class="zr-msg zr-msg-{level} zr-message-{level}">{html.escape(text)}</div>'


def pre_html(text: str, css: str = "") -> str:
    return (f'<pre class="{html.escape(css)}" style="font-size:11px;line-height:1.3;max-height:24em;overflow:auto;'
            f'white-space:pre-wrap">{html.escape(text)}</pre>')


def caption_html(text: str, css: str = "", width: int = THUMB_SIDE) -> str:
    style = f' style="max-width:{width}px"' if width != THUMB_SIDE else ""
    return f'<div class="zr-caption {html.escape(css)}"{style}>{html.escape(text)}</div>'


def picture_html(image: Image.Image, caption: str, css: str = "", side: int = THUMB_SIDE, zoom: bool = True) -> str:
    """A thumbnail in a ``side`` px square box (any aspect fits inside at the same scale as its neighbours), with
    its caption; clicking it opens the picture at full resolution under it (small ones enlarged, pixel-exact)."""
    thumb = data_uri(display_png(image, side), "image/png")
    img = (f'<img class="zr-thumb-img {html.escape(css)}" src="{thumb}" width="{side}" height="{side}" '
           f'style="width:{side}px;height:{side}px;object-fit:contain" alt="{html.escape(caption)}">')
    if zoom:
        full_side = max(ZOOM_SIDE, max(image.size))
        full = data_uri(display_png(image, max(image.size)), "image/png")
        scale = full_side / max(image.size)
        width, height = round(image.width * scale), round(image.height * scale)
        img = (f'<details class="zr-zoom"><summary title="click to open at full resolution ({image.width}×'
               f'{image.height} px)">{img}</summary><img class="zr-zoom-full {html.escape(css)}-full" src="{full}" '
               f'style="width:{width}px;height:{height}px"></details>')
    return (f'<div class="zr-picture" style="display:inline-block;vertical-align:top;margin:0 8px 8px 0">{img}'
            f'{caption_html(caption, width=side)}</div>')


def picture(image: Image.Image, caption: str, css: str = "", side: int = THUMB_SIDE) -> w.HTML:
    return w.HTML(picture_html(image, caption, css, side))


def gallery(view: RunView, side: int = THUMB_SIDE) -> list[w.HTML]:
    """Source (as prepared for the model), every control map, the raw output and the colour-anchored output, each in
    the same square box."""
    return [picture(item.image, item.caption, item.css, side) for item in view.pictures]


def wipe_image(before: Image.Image, after: Image.Image, fraction: float, side: int = 320) -> Image.Image:
    """``before`` left of the split at ``fraction`` of the width, ``after`` right of it, at one display size."""
    after_shown = for_display(after.convert("RGB"), side)
    before_shown = before.convert("RGB").resize(after_shown.size, Image.Resampling.LANCZOS)
    split = round(max(0.0, min(1.0, float(fraction))) * after_shown.width)
    out = after_shown.copy()
    if split > 0:
        out.paste(before_shown.crop((0, 0, split, after_shown.height)), (0, 0))
    if 0 < split < out.width:
        for y in range(out.height):
            out.putpixel((min(split, out.width - 1), y), (255, 214, 0))
    return out


HEADLINES = (("edge_f1", "edge F1"), ("ssim_luma", "SSIM"))


def headline_html(view: RunView) -> str:
    """Three numbers first: edge F1 and SSIM against the source, and the colour distance before → after anchoring."""
    flat = view.flat_metrics()
    parts = []
    for name, label in HEADLINES:
        if name in flat:
            parts.append(f'<span class="zr-headline zr-headline-{name}" title="{html.escape(_meaning(name))}">'
                         f'<b>{flat[name]:.3f}</b>{html.escape(label)}</span>')
    colour = view.colour
    if "delta_e_before" in colour and "delta_e_after" in colour:
        parts.append(f'<span class="zr-headline zr-headline-delta-e" title="mean CIEDE2000 colour distance to the '
                     f'source, before and after colour anchoring (lower is closer)"><b>{colour["delta_e_before"]:.1f}'
                     f' → {colour["delta_e_after"]:.1f}</b>ΔE00 to the source</span>')
    notes = getattr(view.metrics, "notes", None) or []
    lines = "".join(message_html(f"⚠ {note}", "warn") for note in notes if "adherence" in str(note))
    return f'<div class="zr-headlines">{"".join(parts)}</div>{lines}'


def _meaning(name: str) -> str:
    from ..metrics.registry import METRICS

    return METRICS.get(name).meaning if name in METRICS else ""


def metric_table_html(view: RunView) -> str:
    """Every metric in a folded table, with its meaning as the row's tooltip."""
    metrics = view.metrics
    if metrics is None:
        return "<i>no metrics for this run</i>"
    arrows = {"higher": "↑", "lower": "↓"}
    rows = ["<tr><th>group</th><th>metric</th><th>value</th><th>unit</th><th>better</th></tr>"]
    for metric in metrics.values:
        rows.append(f'<tr title="{html.escape(metric.meaning)}"><td>{html.escape(metric.group)}</td>'
                    f"<td>{html.escape(metric.name)}</td><td>{metric.value:.4g}</td><td>{html.escape(metric.unit)}"
                    f"</td><td>{arrows.get(metric.direction, '')}</td></tr>")
    notes = "".join(f"<div>note: {html.escape(str(n))}</div>" for n in metrics.notes)
    return (f'<details class="zr-all-metrics"><summary>all metrics ({len(metrics.values)})</summary>'
            f'<table class="zr-table zr-metric-table">{"".join(rows)}</table>{notes}</details>')


def notes_html(view: RunView, tiny_note: str) -> str:
    colour = view.colour
    lines = []
    if colour:
        lines.append(f"<b>colour anchoring</b> ({html.escape(str(colour.get('method')))}, strength "
                     f"{colour.get('strength', 0):g}): ΔE00 to the source {colour.get('delta_e_before', 0):.2f} → "
                     f"{colour.get('delta_e_after', 0):.2f}")
    if view.timings:
        timings = ", ".join(f"{html.escape(k)} {format_seconds(v)}" for k, v in view.timings.items())
        lines.append(f"<b>timings</b>: {timings}")
    background = view.background
    if background:
        lines.append(f"<b>background</b>: {html.escape(str(background.get('kind')))} (confidence "
                     f"{float(background.get('confidence', 0)):.2f})")
    if view.run_dir is not None:
        lines.append(f"<b>run folder</b>: <code>{html.escape(str(view.run_dir))}</code>")
    for warning in view.warnings:
        lines.append(f'<span class="zr-msg-warn">⚠ {html.escape(str(warning))}</span>')
    if view.random_weights:
        lines.append(f'<span class="zr-tiny-note">{html.escape(tiny_note)}</span>')
    return "<br>".join(lines)


def plot_pictures(view: RunView) -> list[w.Widget]:
    """The metric panel and the colour-moment bars (before / after anchoring / source) from zrealism_lab.plots, each
    at its own aspect (never stretched to its neighbour's height)."""
    try:
        from .. import plots
        from ..metrics import colour_moments
    except ImportError:
        return [w.HTML("<i>plots are not available in this installation</i>")]
    mask = view.mask

    def moments(image: Image.Image) -> dict[str, float]:
        fits = mask is not None and mask.shape == (image.height, image.width)
        return colour_moments(image.convert("RGB"), mask if fits else None)

    makers = []
    if view.metrics is not None and view.metrics.values:
        makers.append(("metric-panel", lambda: plots.plot_metric_panel(view.metrics)))
    if view.raw is not None and view.output is not None and view.source is not None:
        makers.append(("colour-moments", lambda: plots.plot_colour_moments(
            moments(view.raw), moments(view.output), moments(view.source))))
    pictures: list[w.Widget] = []
    for name, make in makers:
        try:
            png = figure_png(make())
        except Exception as exc:  # noqa: BLE001 - a plot that fails must not hide the run's results
            pictures.append(w.HTML(f"<i>{html.escape(name)} plot failed: {html.escape(str(exc)[:200])}</i>"))
            continue
        image = w.Image(value=png, format="png",
                        layout=w.Layout(max_width="560px", width="auto", height="auto", object_fit="contain",
                                        align_self="flex-start", margin="0 12px 12px 0"))
        image.add_class(f"zr-plot-{name}")
        image.add_class("zr-plot-img")
        pictures.append(image)
    return pictures


def download_buttons_html(files: list[tuple[bytes, str, str, str, str]]) -> str:
    """(data, file name, mime type, label, css) as download buttons: the browser saves the bytes, which works when
    the kernel runs on another machine."""
    links = [f'<a class="zr-button-link {html.escape(css)}" download="{html.escape(name)}" '
             f'href="{data_uri(data, mime)}" title="download {html.escape(name)}">⬇ {html.escape(label)}</a>'
             for data, name, mime, label, css in files]
    return f'<div class="zr-downloads-row">{"".join(links)}</div>' if links else ""


__all__ = ["THUMB_SIDE", "badge_html", "caption_html", "download_buttons_html", "gallery", "headline_html",
           "message_html", "metric_table_html", "notes_html", "picture", "picture_html", "plot_pictures", "pre_html",
           "wipe_image"]
