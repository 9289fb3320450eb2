"""Read-only views of what is on this machine and what the source is: the preset's components and detector files,
the device, a source's background analysis (with a warning when it is doubtful) and the preflight's reasons."""
from __future__ import annotations

import html
import sys
from typing import Any, Sequence

from .preflight import Problem
from .state import format_seconds
from .views import message_html

# A background analysis this unsure, or a subject this small or large, is shown with a warning and the override.
DOUBTFUL_CONFIDENCE = 0.6
SMALL_SUBJECT, LARGE_SUBJECT = 0.10, 0.90


def doubts(analysis: Any) -> list[str]:
    """Why the background analysis may be wrong (empty when it looks sound)."""
    found = []
    if analysis.confidence < DOUBTFUL_CONFIDENCE:
        found.append(f"the analysis is unsure (confidence {analysis.confidence:.2f})")
    if analysis.mask_fraction < SMALL_SUBJECT:
        found.append(f"the subject covers only {analysis.mask_fraction:.0%} of the image")
    elif analysis.mask_fraction > LARGE_SUBJECT:
        found.append(f"the subject covers {analysis.mask_fraction:.0%} of the image (almost no background)")
    return found


def analysis_html(loaded: Any, analysis: Any, override: str = "auto") -> str:
    """The Source tab's summary of a decoded source and its background analysis."""
    kind = html.escape(analysis.kind)
    lines = [f"<b>background</b>: {kind}" + (f" → <b>{html.escape(override)}</b> (your choice)"
                                              if override not in ("auto", analysis.kind) else ""),
             f"<b>confidence</b>: {analysis.confidence:.2f}",
             f"<b>subject</b>: {analysis.mask_fraction:.0%} of the image",
             f"<b>size</b>: {loaded.size[0]}×{loaded.size[1]} ({html.escape(str(loaded.format))}"
             + (", with alpha" if loaded.has_alpha else "") + ")"]
    lines += [f'<span class="zr-msg-warn">⚠ {html.escape(str(n))}</span>' for n in analysis.warnings]
    doubtful = doubts(analysis)
    if doubtful and override == "auto":
        lines.append(f'<span class="zr-msg-warn zr-analysis-doubt">⚠ The mask may be wrong: {"; ".join(doubtful)}. '
                     "Check the tinted picture; if the background kind is wrong, choose it under "
                     "'background kind'.</span>")
    return '<div style="margin-left:12px">' + "<br>".join(lines) + "</div>"


def component_table_html(statuses: Sequence[Any], how_to: str) -> str:
    rows = ['<tr><th>component</th><th>status</th><th style="text-align:right">size</th><th>where</th></tr>']
    for status in statuses:
        state = ('<span class="zr-msg-ok">present</span>' if status.present
                 else '<span class="zr-msg-error">missing</span>')
        size = f"{status.size_bytes / 2**20:.1f} MB" if status.present else "-"
        where = status.path if status.present and status.path else status.ref.describe()
        detail = f" ({status.detail})" if status.detail and not status.present else ""
        rows.append(f"<tr><td>{html.escape(status.role)}</td><td>{state}</td><td style='text-align:right'>{size}</td>"
                    f"<td><code>{html.escape(str(where))}</code>{html.escape(detail)}</td></tr>")
    table = '<table class="zr-table zr-component-table">' + "".join(rows) + "</table>"
    if how_to:
        table += f'<div class="zr-how-to zr-caption" style="text-align:left;max-width:none;margin-top:6px">' \
                 f'{html.escape(how_to)}</div>'
    return table


def annotator_table_html(annotator_folder: str | None) -> str:
    """The detector (annotator) checkpoints beside the ControlNets: they are separate files."""
    from ..control.annotators import ANNOTATORS, locate_annotator
    from ..errors import MissingWeightsError

    rows = ["<tr><th>detector</th><th>status</th><th>files</th></tr>"]
    for (kind, method), spec in ANNOTATORS.items():
        try:
            where = locate_annotator(kind, method, annotator_folder)
            state = ('<span class="zr-msg-ok">present</span>' if where.local_files_only
                     else '<span class="zr-msg-warn">downloaded on first use</span>')
        except MissingWeightsError:
            state = '<span class="zr-msg-error">missing</span>'
        rows.append(f"<tr><td>{html.escape(kind)} · {html.escape(method)}</td><td>{state}</td>"
                    f"<td><code>{html.escape(', '.join(spec.files))}</code></td></tr>")
    return ('<div style="margin-top:8px"><b>Detector checkpoints</b> (only the detectors marked "needs weights" '
            'read them)</div><table class="zr-table zr-annotator-table">' + "".join(rows) + "</table>")


def components_html(preset: str, annotator_folder: str | None = None) -> str:
    """Which of the preset's components and detector files are on disk, and how to get the missing ones."""
    from ..models.loading import locate
    from ..models.modelset import resolve_modelset, tiny_bundle_dir, tiny_modelset

    if preset == "tiny":
        folder = tiny_bundle_dir()
        if not folder.is_dir():
            return (f"<div>The tiny bundle is not built yet: the first Run builds it (about 21 MB, a few seconds) in "
                    f"<code>{html.escape(str(folder))}</code> (set ZREALISM_CACHE to choose the folder).</div>"
                    + annotator_table_html(annotator_folder))
        modelset = tiny_modelset(folder, build=False)
    else:
        modelset = resolve_modelset(preset)
    statuses = [locate(ref) for ref in modelset.components()]
    missing = [s for s in statuses if not s.present]
    if missing:
        how_to = (f"To get them: `zrealism models download {preset}` on a machine with internet access, or point a "
                  "component at local files (`--component ROLE=PATH`, ModelSet.with_component). The 'tiny' preset "
                  "runs offline on random weights.")
    else:
        how_to = "All model components are present."
    return component_table_html(statuses, how_to) + annotator_table_html(annotator_folder)


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
            f"<span class='zr-caption' style='text-align:left'>{html.escape(plan.reason)}</span>{loaded}")


def preflight_html(problems: Sequence[Problem]) -> str:
    """The reasons next to Run: blocking ones in the error colour, the rest as warnings."""
    return "".join(message_html(("Run is off: " if p.blocking else "⚠ ") + p.text, "error" if p.blocking else "warn")
                   for p in problems)


__all__ = ["DOUBTFUL_CONFIDENCE", "analysis_html", "annotator_table_html", "components_html", "device_html",
           "doubts", "preflight_html"]
