"""Contact sheets: a sweep's outputs on an X/Y grid with the axis names and values drawn around it, one page per
combination of the remaining (Z) axes. Drawn with PIL so a sheet is an image like any other output."""
from __future__ import annotations

import itertools
import os
import textwrap
from pathlib import Path
from typing import Any, Mapping, Sequence

from PIL import Image, ImageDraw, ImageFont, ImageOps

from ..models.modelset import RANDOM_WEIGHTS_CAPTION
from .spec import format_value

BACKGROUND = (255, 255, 255)
INK = (30, 30, 30)
MUTED = (110, 110, 110)
FAILED_FILL = (250, 222, 222)
PENDING_FILL = (232, 232, 232)
GAP = 6


def _font(size: int) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow built without FreeType: the fixed bitmap font
        return ImageFont.load_default()


def _text_size(draw: ImageDraw.ImageDraw, text: str, font: Any) -> tuple[int, int]:
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    return right - left, bottom - top


def _message_tile(text: str, side: int, fill: tuple[int, int, int], font: Any) -> Image.Image:
    tile = Image.new("RGB", (side, side), fill)
    draw = ImageDraw.Draw(tile)
    chars = max(8, side // max(1, _text_size(draw, "n", font)[0]))
    lines = textwrap.wrap(text, chars)[: max(1, side // 14)]
    y = 4
    for line in lines:
        draw.text((4, y), line, fill=INK, font=font)
        y += _text_size(draw, line, font)[1] + 3
    return tile


def draw_contact_sheet(cells: Mapping[tuple[int, int], Image.Image | str | None], x_name: str | None,
                       x_values: Sequence[Any], y_name: str | None, y_values: Sequence[Any], *, title: str = "",
                       corner: Image.Image | None = None, corner_label: str = "source", cell: int = 128,
                       note: str | None = None) -> Image.Image:
    """A labelled grid. ``cells[(ix, iy)]`` is an image, or a text shown on a tinted tile (a failed job's error,
    'not run'); an empty X or Y axis is a single column or row. ``corner`` (the source) sits above the row labels."""
    x_values = list(x_values) or [None]
    y_values = list(y_values) or [None]
    head_font, label_font, small_font = _font(15), _font(12), _font(10)
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    row_labels = [format_value(v) if v is not None else "" for v in y_values]
    col_labels = [format_value(v) if v is not None else "" for v in x_values]
    line_h = _text_size(probe, "Ag", label_font)[1] + 6
    y_title_w = (_text_size(probe, "Ag", head_font)[1] + 10) if y_name else 0
    label_w = max([_text_size(probe, t, label_font)[0] for t in row_labels] + [0]) + 12
    left = y_title_w + max(label_w, cell if corner is not None else 0)
    title_h = (_text_size(probe, title, head_font)[1] + 14) if title else 0
    x_title_h = (_text_size(probe, x_name, head_font)[1] + 10) if x_name else 0
    note_h = (_text_size(probe, note, small_font)[1] + 10) if note else 0
    top = title_h + x_title_h + line_h
    width = left + len(x_values) * (cell + GAP) + GAP
    height = top + len(y_values) * (cell + GAP) + GAP + note_h
    width = max(width, _text_size(probe, title, head_font)[0] + 20 if title else 0,
                _text_size(probe, note, small_font)[0] + 20 if note else 0)
    sheet = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(sheet)

    if title:
        draw.text((GAP + 2, 6), title, fill=INK, font=head_font)
    grid_left = left + GAP
    if x_name:
        text_w = _text_size(draw, x_name, head_font)[0]
        grid_w = len(x_values) * (cell + GAP) - GAP
        draw.text((grid_left + max(0, (grid_w - text_w) // 2), title_h + 2), x_name, fill=INK, font=head_font)
    for ix, text in enumerate(col_labels):
        text_w = _text_size(draw, text, label_font)[0]
        draw.text((grid_left + ix * (cell + GAP) + (cell - text_w) // 2, title_h + x_title_h + 1), text,
                  fill=INK, font=label_font)
    grid_top = top + GAP
    if y_name:  # the Y axis name runs up the left edge, like a plot's
        text = y_name
        w, h = _text_size(draw, text, head_font)
        strip = Image.new("RGB", (w + 4, h + 8), BACKGROUND)
        ImageDraw.Draw(strip).text((2, 0), text, fill=INK, font=head_font)
        strip = strip.rotate(90, expand=True)
        grid_h = len(y_values) * (cell + GAP) - GAP
        sheet.paste(strip, (2, grid_top + max(0, (grid_h - strip.height) // 2)))
    for iy, text in enumerate(row_labels):
        w, h = _text_size(draw, text, label_font)
        draw.text((left - w - 6, grid_top + iy * (cell + GAP) + (cell - h) // 2), text, fill=INK, font=label_font)
    if corner is not None:
        thumb = ImageOps.contain(corner.convert("RGB"), (cell - 2 * GAP, cell - 2 * GAP - line_h))
        x0 = y_title_w + (left - y_title_w - thumb.width) // 2
        y0 = max(title_h, top - thumb.height - line_h)
        sheet.paste(thumb, (x0, y0))
        draw.text((x0, y0 + thumb.height + 2), corner_label, fill=MUTED, font=small_font)

    for ix, iy in itertools.product(range(len(x_values)), range(len(y_values))):
        content = cells.get((ix, iy))
        if isinstance(content, Image.Image):
            tile = ImageOps.contain(content.convert("RGB"), (cell, cell),
                                    method=Image.Resampling.NEAREST if max(content.size) < cell // 2
                                    else Image.Resampling.LANCZOS)
        else:
            text = content if isinstance(content, str) and content else "not run"
            tile = _message_tile(text, cell, FAILED_FILL if text.startswith("failed") else PENDING_FILL, small_font)
        x0 = grid_left + ix * (cell + GAP) + (cell - tile.width) // 2
        y0 = grid_top + iy * (cell + GAP) + (cell - tile.height) // 2
        sheet.paste(tile, (x0, y0))
    if note:
        draw.text((GAP + 2, height - note_h + 3), note, fill=MUTED, font=small_font)
    return sheet


# --------------------------------------------------------------------------------- sweep folders
def page_keys(axes: Sequence[Mapping[str, Any]]) -> list[tuple[int, ...]]:
    """Every combination of the Z axes' value indices (one page each); [()] when there are at most two axes."""
    return list(itertools.product(*[range(len(axis["values"])) for axis in axes[2:]]))


def sheets_from_rows(axes: Sequence[Mapping[str, Any]], rows: Sequence[Mapping[str, Any]],
                     images: Mapping[str, Image.Image | None], *, source: Image.Image | None = None, cell: int = 128,
                     title: str = "", note: str | None = None,
                     positions: Mapping[str, Sequence[int]] | None = None) -> list[tuple[str, Image.Image]]:
    """(page label, sheet) per Z page. ``images`` maps job id -> output (None: no output); ``positions`` maps
    job id -> its index on each axis (from the manifest)."""
    x_axis = axes[0] if len(axes) > 0 else None
    y_axis = axes[1] if len(axes) > 1 else None
    pages = []
    x_values = (x_axis.get("labels") or x_axis["values"]) if x_axis else []  # labels: an image axis's file names
    y_values = (y_axis.get("labels") or y_axis["values"]) if y_axis else []
    for page in page_keys(axes):
        cells: dict[tuple[int, int], Image.Image | str | None] = {}
        for row in rows:
            pos = list((positions or {}).get(row["job"], ()))
            if tuple(pos[2:]) != page:
                continue
            key = (pos[0] if len(pos) > 0 else 0, pos[1] if len(pos) > 1 else 0)
            image = images.get(row["job"])
            if image is not None:
                cells[key] = image
            elif row.get("status") == "failed":
                cells[key] = f"failed: {row.get('error') or 'no message'}"
            else:
                cells[key] = "not run"
        page_label = "  ·  ".join(f"{axis['name']} = {format_value((axis.get('labels') or axis['values'])[i])}"
                                  for axis, i in zip(axes[2:], page))
        full_title = "  |  ".join(t for t in (title, page_label) if t)
        sheet = draw_contact_sheet(cells, x_axis["name"] if x_axis else None, x_values,
                                   y_axis["name"] if y_axis else None, y_values,
                                   title=full_title, corner=source, cell=cell, note=note)
        pages.append((page_label, sheet))
    return pages


def sweep_contact_sheets(folder: str | os.PathLike, *, cell: int = 128,
                         rows: Sequence[Mapping[str, Any]] | None = None) -> list[tuple[str, Image.Image]]:
    """The contact sheet pages of a sweep folder, from its manifest and its jobs' run folders."""
    from .manifest import read_manifest
    from .results import collect_rows

    folder = Path(folder)
    manifest = read_manifest(folder)
    rows = list(rows) if rows is not None else collect_rows(folder, manifest)
    images = {}
    for row in rows:
        output = row.get("output")
        images[row["job"]] = _open(folder / output) if output else None
    positions = {job["id"]: job["position"] for job in manifest["jobs"]}
    clips = "clips " if manifest.get("run_kind") == "temporal" else ""
    if manifest.get("source"):
        source = _source_thumbnail(folder, rows, Path(manifest["source"]["path"]))
        image = manifest["source"]["image"]
        shown = image if image.startswith("sample:") else Path(image).name
    else:  # an image axis: the images are on an axis, no one source sits in the corner
        source = None
        shown = f"{len({job['source']['path'] for job in manifest['jobs']})} images"
    title = manifest.get("name") or f"sweep of {clips}{'of ' if clips else ''}{shown} ({manifest.get('preset')})"
    note = RANDOM_WEIGHTS_CAPTION if manifest.get("random_weights") else None
    return sheets_from_rows(manifest["axes"], rows, images, source=source, cell=cell, title=title, note=note,
                            positions=positions)


def _source_thumbnail(folder: Path, rows: Sequence[Mapping[str, Any]], source: Path) -> Image.Image | None:
    """The prepared source a run saw (transparency composited as the run did it; a clip's still), else the source
    file."""
    for row in rows:
        if row.get("status") != "completed":
            continue
        for name in ("source_prepared.png", "still.png"):
            prepared = folder / row["run_dir"] / name
            if prepared.is_file():
                return _open(prepared)
    return _open(source) if source.is_file() else None


def write_contact_sheets(folder: str | os.PathLike, pages: Sequence[tuple[str, Image.Image]]) -> list[Path]:
    """contact_sheet.png for a single page, contact_sheet_z1.png, _z2.png ... for Z pages (old pages removed)."""
    from ..files import atomic_write_bytes, png_bytes

    folder = Path(folder)
    for stale in folder.glob("contact_sheet*.png"):
        stale.unlink()
    paths = []
    for number, (label, sheet) in enumerate(pages, 1):
        path = folder / ("contact_sheet.png" if len(pages) == 1 else f"contact_sheet_z{number}.png")
        atomic_write_bytes(path, png_bytes(sheet, {"zrealism-page": label} if label else None))
        paths.append(path)
    return paths


def _open(path: Path) -> Image.Image:
    with Image.open(path) as image:
        image.load()
        return image.convert("RGB")
