"""Display helpers for the report and teaching notebooks: settings from a parameters cell, and pictures, tables,
figures and clips as self-contained HTML (images embedded as base64 PNG, so an exported report needs no files and
no network).

Each ``*_html`` function returns a string (testable without a kernel); each ``show_*`` displays it in Jupyter.
"""
from __future__ import annotations

import html
import json
import math
import os
from pathlib import Path
from typing import Any, Iterable, Mapping

from PIL import Image

from ..errors import SettingsError
from ..models.modelset import RANDOM_WEIGHTS_CAPTION, RANDOM_WEIGHTS_NOTE

# The mime type under which a report notebook publishes its run folder, so whoever executed it (reports.py) finds
# the folder from the executed notebook itself, not by guessing from timestamps.
RUN_MIME = "application/vnd.zrealism.run+json"

_TABLE_STYLE = "border-collapse:collapse;font-size:12px;margin:4px 0 12px 0"
_CELL_STYLE = "border:1px solid #ccc;padding:2px 8px;text-align:left;vertical-align:top"


# ----------------------------------------------------------------- parameters -> validated objects
def settings_from_namespace(settings_class: Any, namespace: Mapping[str, Any]) -> Any:
    """Build and validate ``settings_class`` from the names of a parameters cell (``globals()``).

    Names that are not fields of the class are ignored; ``None`` for a prompt means the lab's default prompt;
    ``controls`` may be None (the model set's units), 'depth,canny' or a list of kinds / dicts. Raises SettingsError
    naming the first bad setting, so a report fails in its first cell instead of deep inside a run."""
    import dataclasses

    values: dict[str, Any] = {}
    for item in dataclasses.fields(settings_class):
        if item.name not in namespace:
            continue
        value = namespace[item.name]
        if value is None and item.name in ("prompt", "negative_prompt"):
            continue
        values[item.name] = value
    if isinstance(values.get("controls"), str):
        from ..settings import parse_controls

        values["controls"] = [unit.to_dict() for unit in parse_controls(values["controls"])]
    return settings_class.from_dict(values).validated()


def source_path(image: str | os.PathLike | None, sample: str = "transparent") -> Path:
    """The source file: ``image`` if given, else the bundled sample ``sample``; checked before any model loads."""
    from ..source.intake import validate_image_path
    from ..source.samples import sample_path

    if image in (None, ""):
        return sample_path(sample)
    return validate_image_path(image)


def temporal_inputs(image: str | os.PathLike | None, sample: str = "transparent",
                    clip: str | os.PathLike | None = None) -> dict[str, Any]:
    """run_temporal's input: {"clip": path} for a clip -> clip run, else {"source": path} (a still -> clip run)."""
    if clip not in (None, ""):
        from ..source.video import validate_clip_path

        validate_clip_path(clip)
        return {"clip": Path(clip)}
    return {"source": source_path(image, sample)}


def engine_for(preset: str, device: str = "auto", offload: str = "auto") -> Any:
    """The session's engine for a preset name or model folder (device and offload are checked here). The libraries'
    own progress bars and advice are silenced: in a report they would show as red stderr boxes."""
    from ..engine.engine import get_engine
    from ..models.modelset import PRESETS
    from ..progress import quiet_libraries

    quiet_libraries()

    if preset not in PRESETS and not Path(os.fspath(preset)).expanduser().is_dir():
        raise SettingsError("preset", preset, "one of " + ", ".join(PRESETS) + " or an existing model folder")
    return get_engine(preset, device=device, offload=offload)


def check_weights(engine: Any, settings: Any, temporal: bool = False) -> None:
    """Raise MissingWeightsError now, naming every missing component, rather than after the source is analysed."""
    units = settings.controls if settings.controls is not None else engine.models.default_controls
    engine.preflight(engine.roles_for([unit.kind for unit in units], temporal=temporal,
                                      safety_checker=bool(getattr(settings, "safety_checker", False))))


# ----------------------------------------------------------------- HTML pieces
def image_html(image: Image.Image, caption: str | None = None, side: int = 192) -> str:
    from .media import data_uri, display_png

    img = f'<img src="{data_uri(display_png(image, side), "image/png")}" alt="{html.escape(caption or "")}"' \
          f' style="image-rendering:pixelated;border:1px solid #ddd"/>'
    if caption is None:
        return img
    return (f'<figure style="display:inline-block;margin:4px 8px;text-align:center">{img}'
            f'<figcaption style="font-size:12px;color:#444">{html.escape(caption)}</figcaption></figure>')


def images_html(images: Mapping[str, Image.Image], side: int = 192) -> str:
    """A row of captioned pictures."""
    return "<div>" + "".join(image_html(img, name, side) for name, img in images.items()) + "</div>"


def table_html(rows: Iterable[Mapping[str, Any]] | Mapping[str, Any], title: str | None = None,
               css: str = "zr-table") -> str:
    """An HTML table from a list of dicts (one row each) or from one dict (a two-column key/value table)."""
    if isinstance(rows, Mapping):
        rows = [{"name": key, "value": value} for key, value in rows.items()]
    rows = list(rows)
    columns: list[str] = []
    for row in rows:
        columns += [key for key in row if key not in columns]
    head = "".join(f'<th style="{_CELL_STYLE}">{html.escape(str(c))}</th>' for c in columns)
    body = "".join("<tr>" + "".join(f'<td style="{_CELL_STYLE}">{html.escape(_cell(row.get(c, "")))}</td>'
                                    for c in columns) + "</tr>" for row in rows)
    caption = f"<caption style='text-align:left;font-weight:bold'>{html.escape(title)}</caption>" if title else ""
    return f'<table class="{css}" style="{_TABLE_STYLE}">{caption}<tr>{head}</tr>{body}</table>'


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}" if math.isfinite(value) else str(value)
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value, default=str)
    return str(value)


def metrics_html(report: Any, title: str = "Metrics") -> str:
    """A MetricReport as a table: group, metric, value, unit, which direction is better, the range and the
    meaning from the metric registry."""
    arrows = {"higher": "higher", "lower": "lower", "none": "-"}
    rows = []
    for metric in report.values:
        low, high = ("∞" if math.isinf(end) and end > 0 else "-∞" if math.isinf(end) else f"{end:g}"
                     for end in metric.range)
        rows.append({"group": metric.group, "metric": metric.name, "value": float(metric.value), "unit": metric.unit,
                     "better": arrows.get(metric.direction, "?"), "range": f"[{low}, {high}]",
                     "meaning": metric.meaning})
    notes = "".join(f"<li>{html.escape(n)}</li>" for n in getattr(report, "notes", []))
    return table_html(rows, title, css="zr-metrics") + (f"<ul style='font-size:12px'>{notes}</ul>" if notes else "")


def figure_html(figure: Any) -> str:
    """A matplotlib Figure as an embedded PNG (the figure is closed)."""
    from .media import data_uri, figure_png

    return f'<img src="{data_uri(figure_png(figure), "image/png")}" alt="figure"/>'


def clip_html(path: str | os.PathLike, width: int = 256) -> str:
    """An MP4 as an embedded looping player, or a GIF as an embedded picture."""
    from .media import data_uri, video_html

    data = Path(path).read_bytes()
    if str(path).lower().endswith(".gif"):
        return f'<img src="{data_uri(data, "image/gif")}" width="{width}" alt="clip"/>'
    return video_html(data, width=width)


def note_html(text: str, tone: str = "info") -> str:
    colour = {"info": "#eef5ff", "warn": "#fff4e0"}.get(tone, "#eef5ff")
    return (f'<div style="background:{colour};border-left:4px solid #88a;padding:6px 10px;margin:6px 0;'
            f'font-size:13px">{html.escape(text)}</div>')


def environment_rows(record: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Versions and hardware from a run record, one row each: name | value | group."""
    rows = [{"name": key, "value": (record.get("hardware") or {}).get(key), "group": "device"}
            for key in ("device", "dtype", "offload", "reason")]
    rows += [{"name": name, "value": version, "group": "version"}
             for name, version in (record.get("versions") or {}).items()]
    models = record.get("models") or {}
    rows.append({"name": "model set", "value": models.get("name"), "group": "models"})
    return rows


def run_link_html(run_dir: str | os.PathLike) -> str:
    """Links to the run record and the run folder. Relative, since the HTML export sits in the run folder."""
    folder = Path(run_dir)
    return (f'<p>Run folder: <code>{html.escape(str(folder))}</code> &middot; '
            f'<a href="record.json">run record (record.json)</a></p>')


# ----------------------------------------------------------------- teaching helpers (the walkthrough)
def control_gallery(engine: Any, context: Any) -> tuple[dict[str, Any], list[str]]:
    """One map of every control kind for a prepared source. With random weights (the tiny preset) only methods
    that need no checkpoint are used, so nothing is fetched; kinds that have none are left out with a note."""
    from ..control import CONTROL_PROVIDERS, available_methods
    from ..errors import MissingWeightsError

    prepared, maps, notes = context.prepared, {}, []
    annotators = engine.models.annotators if Path(str(engine.models.annotators)).expanduser().is_dir() else None
    for kind in CONTROL_PROVIDERS.names():
        provider = CONTROL_PROVIDERS.get(kind)
        methods = available_methods(kind, weightless_only=engine.models.random_weights)
        if not methods:
            notes.append(f"{kind}: every {provider.label} detector needs a checkpoint; run with real weights to see it.")
            continue
        for method in methods:
            try:
                maps[kind] = provider.detect(prepared.image, size=prepared.size, detect_resolution=prepared.size[0],
                                             mask=prepared.mask, method=method, annotator_dir=annotators)
                break
            except MissingWeightsError:
                notes.append(f"{kind}: the {method} detector's checkpoint is missing; trying the next method.")
    return maps, notes


def colour_method_rows(raw: Image.Image, source: Image.Image, mask: Any = None,
                       strength: float = 1.0) -> tuple[list[dict[str, Any]], dict[str, Image.Image]]:
    """Every registered colour method applied to one output: ΔE00 to the source before/after, and the pictures."""
    from ..colour import COLOUR_METHODS, anchor_colours

    rows, images = [], {}
    for method in COLOUR_METHODS.names():
        anchored = anchor_colours(raw, source, method=method, strength=strength, mask=mask)
        rows.append({"method": method, "ΔE00 before": anchored.delta_e_before, "ΔE00 after": anchored.delta_e_after})
        images[method] = anchored.image
    return rows, images


def metric_registry_rows(suite: str | None = None) -> list[dict[str, Any]]:
    """The metric registry as rows: name, suite, group, which way is better, unit, meaning and guide bands."""
    from ..metrics import METRICS

    rows = []
    for name, spec in METRICS.items():
        if suite is not None and spec.suite != suite:
            continue
        bands = ", ".join(f"{band.label} {band.low:g}..{band.high:g}" for band in spec.bands)
        rows.append({"metric": name, "suite": spec.suite, "group": spec.group, "better": spec.direction,
                     "unit": spec.unit, "meaning": spec.meaning, "guide bands": bands})
    return rows


# ----------------------------------------------------------------- show_* (Jupyter)
def _display_html(text: str) -> None:
    from IPython.display import HTML, display

    display(HTML(text))


def show_images(images: Mapping[str, Image.Image], side: int = 192) -> None:
    _display_html(images_html(images, side))


def show_table(rows: Iterable[Mapping[str, Any]] | Mapping[str, Any], title: str | None = None) -> None:
    _display_html(table_html(rows, title))


def show_metrics(report: Any, title: str = "Metrics") -> None:
    _display_html(metrics_html(report, title))


def show_figure(figure: Any) -> None:
    _display_html(figure_html(figure))


def show_plot(name: str, *args: Any, **kwargs: Any) -> None:
    """Show ``zrealism_lab.plots.<name>(*args, **kwargs)`` as an embedded picture."""
    import importlib

    try:
        plot = getattr(importlib.import_module(".plots", __package__), name)
    except (ImportError, AttributeError):  # a report still shows its tables when a plot is missing
        show_note(f"plot {name} is not available in this version of the lab.", "warn")
        return
    show_figure(plot(*args, **kwargs))


def show_clip(path: str | os.PathLike, width: int = 256) -> None:
    _display_html(clip_html(path, width))


def show_note(text: str, tone: str = "info") -> None:
    _display_html(note_html(text, tone))


def show_model_note(engine: Any) -> None:
    """Say plainly when the pictures come from random weights."""
    if engine.models.random_weights:
        show_note(RANDOM_WEIGHTS_NOTE, "warn")
    else:
        show_note(f"Model set: {engine.models.name}.")


def show_background(context: Any, side: int = 192) -> None:
    """The source, the subject mask overlay and the background analysis (kind, confidence, evidence)."""
    analysis = context.analysis
    show_images({"source": context.source.image, "subject mask overlay": analysis.overlay(context.source.image),
                 "prepared for the model": context.prepared.image}, side)
    summary = {"kind": analysis.kind, "confidence": float(analysis.confidence),
               "subject fraction": analysis.mask_fraction, "backdrop rgb": analysis.backdrop_rgb}
    show_table(summary, "Background analysis")
    show_table(dict(analysis.evidence), "Evidence")
    for warning in analysis.warnings:
        show_note(warning, "warn")


def show_controls(context: Any, side: int = 192) -> None:
    """Each control map with its method and whether the detector found anything."""
    maps = context.control_maps
    if not maps:
        show_note("No control units: plain img2img.")
        return
    show_images({f"{kind} ({cmap.method})": cmap.image for kind, cmap in maps.items()}, side)
    show_table([{"control": kind, "method": cmap.method, "found": cmap.found,
                 "scale": next((u.scale for u in context.units if u.kind == kind), None)}
                for kind, cmap in maps.items()], "Control units")


def show_side_by_side(context: Any, output: Image.Image, random_weights: bool = False) -> None:
    """Source, each control map and the output in one figure."""
    caption = RANDOM_WEIGHTS_CAPTION if random_weights else None
    show_plot("plot_side_by_side", context.prepared.image,
              {kind: cmap.image for kind, cmap in context.control_maps.items()}, output, caption=caption)


def colour_moments_rows(source: Image.Image, raw: Image.Image, anchored: Image.Image,
                        mask: Any = None) -> dict[str, dict[str, float]]:
    """L*a*b* mean/std/skew of the subject in the source, the raw output and the anchored output."""
    from ..metrics import colour_moments

    def at_source_size(image: Image.Image) -> Image.Image:  # a hires output is compared where the mask was made
        return image if image.size == source.size else image.resize(source.size, Image.LANCZOS)

    return {"source": colour_moments(source, mask), "before anchoring": colour_moments(at_source_size(raw), mask),
            "after anchoring": colour_moments(at_source_size(anchored), mask)}


def show_colour(result: Any) -> None:
    """ΔE00 before and after anchoring, the colour moments table and their plot."""
    context = result.context
    mask = context.prepared.mask if result.settings.colour_mask else None
    moments = colour_moments_rows(context.prepared.image, result.raw, result.image, mask)
    colour = result.colour
    show_table({"method": colour.method, "strength": colour.strength,
                "mean ΔE00 to the source before anchoring": colour.delta_e_before,
                "mean ΔE00 to the source after anchoring": colour.delta_e_after}, "Colour anchoring")
    show_table([{"image": name, **{k: round(v, 3) for k, v in values.items()}} for name, values in moments.items()],
               "Colour moments over the subject (L*a*b*)")
    show_plot("plot_colour_moments", moments["before anchoring"], moments["after anchoring"], moments["source"])


def frames_html(frames: list[Image.Image], side: int = 96, limit: int = 16) -> str:
    """A strip of numbered frames (evenly picked when there are more than ``limit``)."""
    step = max(1, math.ceil(len(frames) / limit))
    return images_html({f"frame {i + 1}": frames[i] for i in range(0, len(frames), step)}, side)


def show_frames(frames: list[Image.Image], side: int = 96, limit: int = 16) -> None:
    _display_html(frames_html(frames, side, limit))


def show_passes(result: Any, side: int = 192) -> None:
    """The refinement passes a run made (hires fix, face detail): what each did and its pictures, or a line saying
    that none was asked for."""
    passes = (result.record or {}).get("passes") or {}
    if not passes:
        show_note("No refinement pass was asked for (settings hires / hires_size, face_detail).")
        return
    hires = passes.get("hires")
    if hires:
        show_table({k: v for k, v in hires.items() if not isinstance(v, (dict, list))}, "Hires fix")
        if getattr(result, "hires", None) is not None:
            show_images({"first pass": result.hires.first, "after the hires pass": result.hires.image}, side=side)
    faces = passes.get("face_detail")
    if faces:
        show_table([{"face": i + 1, "box": face.get("box"), "origin": face.get("origin"), "score": face.get("score"),
                     "refined": face.get("refined"), "seam ratio": (face.get("seam") or {}).get("seam_ratio"),
                     "left because": face.get("reason")} for i, face in enumerate(faces.get("faces") or [])]
                   or [{"status": faces.get("status"), "notes": "; ".join(faces.get("notes") or [])}],
                   f"Face detail: {faces.get('status')} (seam bar {faces.get('seam_bar')})")
        run_dir = Path(result.run_dir) if result.run_dir is not None else None
        crops = {}
        for i, face in enumerate(faces.get("faces") or []):
            for when, name in (face.get("files") or {}).items():
                if run_dir is not None and (run_dir / name).is_file():
                    crops[f"face {i + 1} {when}"] = Image.open(run_dir / name).convert("RGB")
        if crops:
            show_images(crops, side=side // 2)


def adapter_rows(record: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One row per adapter a run applied (LoRAs, embeddings, the IP-Adapter), with its weight and short hash."""
    adapters = record.get("adapters") or {}
    rows = [{"adapter": "LoRA", "name": lora["name"], "weight / scale": lora["weight"], "hash": lora["hash"],
             "detail": f"{lora['format']} file, {' + '.join(lora['parts'])}, from the {lora['origin']}"}
            for lora in adapters.get("loras") or ()]
    rows += [{"adapter": "embedding", "name": e["token"], "weight / scale": "", "hash": e["hash"],
              "detail": f"{e['vectors']} vector(s), {e['format']} file"} for e in adapters.get("embeddings") or ()]
    ip = adapters.get("ip_adapter")
    if ip:
        rows.append({"adapter": "IP-Adapter", "name": ip["name"], "weight / scale": ip["scale"],
                     "hash": ip["sha256"][:12], "detail": f"{ip['variant']}, steps {ip['start']:g}-{ip['end']:g}, "
                                                          f"reference: {ip['image'] or 'the source'}"})
    return rows


def show_adapters(result: Any) -> None:
    """What adapters the run applied, or a line saying there were none."""
    record = result.record or {}
    rows = adapter_rows(record)
    if not rows:
        show_note("No adapter was applied (settings loras / <lora:NAME:W> in the prompt, embeddings, ip_adapter).")
        return
    fused = (record.get("adapters") or {}).get("lora_fuse")
    show_table(rows, "Adapters" + (" (LoRAs fused into the base weights)" if fused else ""))


def show_speed(result: Any) -> None:
    """The run's speed mode: the settings it changed and its notes (bf16 support, the few-step LoRA)."""
    speed = getattr(result, "speed", None) or {}
    if not speed or speed.get("mode") == "quality":
        show_note("Speed quality: the settings as given, no speed lever on.")
        return
    rows = [{"setting": name, "ran with": value if not isinstance(value, (list, tuple)) else
             ", ".join(f"{item[0]}:{item[1]:g}" if isinstance(item, (list, tuple)) else str(item) for item in value)}
            for name, value in (speed.get("changes") or {}).items()]
    rows.append({"setting": "bf16 autocast", "ran with": speed.get("autocast") or "off"})
    show_table(rows, f"Speed {speed.get('mode')}: what the mode changed")
    for note in speed.get("notes") or ():
        show_note(note)


def show_temporal_inputs(result: Any) -> None:
    """Still mode: the source and its background analysis. Clip mode: the first input frames and their masks."""
    inputs = result.inputs
    if inputs.context is not None:
        show_background(inputs.context)
        return
    show_table({key: value for key, value in (inputs.clip or {}).items() if key != "notes"}, "Input clip")
    if inputs.masks:
        from .media import for_display

        shown = {f"input frame {i + 1}": inputs.frames[i] for i in range(min(4, len(inputs.frames)))}
        shown.update({f"subject mask {i + 1}": Image.fromarray(inputs.masks[i].astype("uint8") * 255)
                      for i in range(min(4, len(inputs.masks)))})
        show_images({name: for_display(image) for name, image in shown.items()})


def show_temporal_colour(result: Any) -> None:
    """ΔE00 of each frame before and after anchoring, and the colour moments of the first frame."""
    if not result.colour:
        show_note("colour anchoring was not applied in this run.", "warn")
        return
    rows = [{"frame": i + 1, "ΔE00 before": c.delta_e_before, "ΔE00 after": c.delta_e_after}
            for i, c in enumerate(result.colour)]
    show_table(rows, f"Colour anchoring ({result.settings.colour_method}, strength {result.settings.colour_strength})")
    masks = result.inputs.masks if result.settings.colour_mask else None
    moments = colour_moments_rows(result.inputs.references[0], result.raw_frames[0], result.frames[0],
                                  masks[0] if masks else None)
    show_plot("plot_colour_moments", moments["before anchoring"], moments["after anchoring"], moments["source"])


def boxes_over(frame: Image.Image, boxes: Iterable[Any]) -> Image.Image:
    """A copy of ``frame`` with each box outlined and numbered (face 1, 2 ...)."""
    from PIL import ImageDraw

    out = frame.convert("RGB").copy()
    draw = ImageDraw.Draw(out)
    width = max(1, round(max(out.size) / 128))
    for number, box in enumerate(boxes, start=1):
        if box is not None:
            draw.rectangle(tuple(box), outline=(255, 40, 40), width=width)
            draw.text((box[0] + 2, box[1] + 1), str(number), fill=(255, 40, 40))
    return out


def clip_face_crops(result: Any, frame: int = 0) -> dict[str, Image.Image]:
    """Each tracked face of ``frame`` before and after the face pass (the square crop that was regenerated)."""
    from ..generate.face_detail import square_crop

    faces = result.faces
    crops: dict[str, Image.Image] = {}
    for number, track in enumerate(faces.tracks, start=1):
        box = track.track[frame]
        if box is None:
            continue
        crop = square_crop(box, faces.frames[frame].size, result.settings.face_padding)
        crops[f"face {number} before"] = faces.originals[frame].crop(crop)
        crops[f"face {number} after"] = faces.frames[frame].crop(crop)
    return crops


def show_clip_passes(result: Any, side: int = 192) -> None:
    """A clip's refinement passes: the hires first pass beside the result (first and middle frame), each face
    track (its boxes over the first frame, before/after crops) and the clip's flicker and warping with and without
    the face pass."""
    hires, faces = getattr(result, "hires", None), getattr(result, "faces", None)
    if hires is None and faces is None:
        show_note("No refinement pass was asked for (settings hires, face_detail).")
        return
    if hires is not None:
        show_table({k: v for k, v in hires.to_dict().items() if not isinstance(v, (dict, list))}, "Hires fix")
        shown = {}
        for index in sorted({0, len(hires.frames) // 2}):
            shown[f"first pass, frame {index + 1}"] = hires.first[index]
            shown[f"after the hires pass, frame {index + 1}"] = hires.frames[index]
        show_images(shown, side=side)
    if faces is None:
        return
    rows = [{"face": number, "origin": track.origin, "found on frames": sum(b is not None for b in track.detected),
             "jitter detected (px)": round(_jitter(track.detected), 2),
             "jitter track (px)": round(_jitter(track.track), 2),
             "mean seam ratio": _mean([s for s in track.seams if s is not None])}
            for number, track in enumerate(faces.tracks, start=1)]
    show_table(rows or [{"status": faces.status, "notes": "; ".join(faces.notes)}], f"Face tracks: {faces.status}")
    if not faces.tracks:
        return
    middle = len(faces.frames) // 2
    show_images({"tracks over frame 1": boxes_over(faces.originals[0], [t.track[0] for t in faces.tracks]),
                 f"tracks over frame {middle + 1}": boxes_over(faces.originals[middle],
                                                               [t.track[middle] for t in faces.tracks])}, side=side)
    show_images(clip_face_crops(result, 0), side=side // 2)
    if faces.metrics_with and faces.metrics_without:
        show_table([{"metric": name, "with the face pass": value, "without": faces.metrics_without.get(name)}
                    for name, value in faces.metrics_with.items()], "The clip with and without the face pass")


def _jitter(boxes: Any) -> float:
    from ..generate.face_track import track_jitter

    return track_jitter(boxes)


def _mean(values: list[float]) -> float | None:
    return round(sum(values) / len(values), 4) if values else None


def show_environment(record: Mapping[str, Any]) -> None:
    show_table(environment_rows(record), "Environment")


def publish_run(run_dir: str | os.PathLike) -> None:
    """Show the record link and publish the run folder for the code that executed this notebook."""
    from IPython.display import display

    folder = Path(run_dir).resolve()
    display({RUN_MIME: {"run_dir": str(folder)}, "text/html": run_link_html(folder),
             "text/plain": f"run folder: {folder}"}, raw=True)
