"""The lab's runs on disk: what a run folder's record says, and the PNG, record and report inputs exported from a
run of the session's history."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..errors import SettingsError
from .state import HistoryEntry
from .views import download_buttons_html


def record_status(run_dir: Path | None) -> str | None:
    """The status a run folder's record.json gives (None: no folder, no record, or an unreadable one)."""
    if run_dir is None or not (Path(run_dir) / "record.json").is_file():
        return None
    try:
        return json.loads((Path(run_dir) / "record.json").read_text()).get("status")
    except (OSError, ValueError):
        return None


def output_png(entry: HistoryEntry) -> bytes:
    """The run's output PNG: the run folder's file when there is one, since it carries the parameters metadata."""
    from ..files import png_bytes

    if entry.run_dir is not None and (Path(entry.run_dir) / "output.png").is_file():
        return (Path(entry.run_dir) / "output.png").read_bytes()
    if entry.result is None:
        raise SettingsError("run", entry.number, "a run with an output picture",
                            f"Run #{entry.number} has no output.png in its folder.")
    return png_bytes(entry.result.image)


def record_of(entry: HistoryEntry) -> dict[str, Any]:
    """The run's record: the one it wrote, else the same facts gathered from the result (a run without a folder)."""
    result = entry.result
    if result is None:
        return dict(entry.record or {})
    if result.record:
        return dict(result.record)
    return {"status": result.status, "settings": result.settings.to_dict(), "prompt": result.context.prompt,
            "negative_prompt": result.context.negative_prompt, "background": result.context.analysis.to_dict(),
            "colour": result.colour.to_dict(), "metrics": result.metrics.to_dict() if result.metrics else None,
            "timings": result.timings, "warnings": list(result.warnings), "engine": result.engine}


def download_links_html(entry: HistoryEntry, report: Path | None = None) -> str:
    """Download buttons for the output PNG (with its parameters text), the record and, once written, the report."""
    png = output_png(entry)
    record = json.dumps(record_of(entry), indent=2, default=str).encode()
    stem = f"zrealism-run{entry.number}"
    files = [(png, f"{stem}.png", "image/png", "output PNG", "zr-download-png"),
             (record, f"{stem}.json", "application/json", "record JSON", "zr-download-record")]
    if report is not None and Path(report).is_file():
        files.append((Path(report).read_bytes(), f"{stem}-report.html", "text/html", "report HTML",
                      "zr-download-report"))
    return download_buttons_html(files)


def save_png(entry: HistoryEntry, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"run{entry.number}-seed{getattr(entry.settings, 'seed', 'unknown')}.png"
    path.write_bytes(output_png(entry))
    return path


def save_record(entry: HistoryEntry, folder: Path) -> Path:
    from ..files import atomic_write_json

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"run{entry.number}-record.json"
    atomic_write_json(path, record_of(entry))
    return path


def report_parameters(entry: HistoryEntry, preset: str, folder: Path, known: dict[str, Any]) -> dict[str, Any]:
    """The static report notebook's parameters for re-running this run (only those the notebook declares)."""
    if entry.settings is None:
        raise SettingsError("run", entry.number, "a run whose settings this version reads",
                            "Its record's settings are from another version of the lab.")
    # Lists, not tuples: papermill writes a tuple it does not know as its text ("()" for no LoRA).
    values: dict[str, Any] = {k: _listed(v) for k, v in entry.settings.to_dict().items() if k in known}
    values["preset"] = preset
    if entry.result is None:  # a run folder from an earlier session: its source file, where it had one
        source = ((entry.record or {}).get("source") or {}).get("path")
        if not source or not Path(source).is_file():
            raise SettingsError("run", entry.number, "a run whose source file is still on disk",
                                "Its source was an upload (or has moved); reopen it here and press Run instead.")
        values["image"] = str(source)
        return {k: v for k, v in values.items() if k in known}
    source = getattr(entry.result.context.source, "path", None)
    if source:
        values["image"] = str(source)
    else:  # an upload: the report notebook reads a file, so keep the bytes beside the report
        from ..files import png_bytes

        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"run{entry.number}-source.png"
        path.write_bytes(png_bytes(entry.result.context.source.image))
        values["image"] = str(path)
    return {k: v for k, v in values.items() if k in known}


def _listed(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return [_listed(v) for v in value]
    return value


GALLERY_LIMIT = 24  # thumbnails in the History tab; the list below it holds every run
GALLERY_SIDE = 96


def thumbnail_of(entry: HistoryEntry) -> Any:
    """A picture for the run's History tile: its output, a clip's first frame; None when it has none."""
    from PIL import Image

    frames = getattr(entry.result, "frames", None)
    if frames:
        return frames[0]
    image = getattr(entry.result, "image", None)
    if image is not None:
        return image
    if entry.run_dir is None:
        return None
    folder = Path(entry.run_dir)
    for path in [folder / "output.png", *sorted((folder / "frames").glob("*.png"))[:1]]:
        if path.is_file():
            try:
                with Image.open(path) as found:
                    found.load()
                    return found.copy()
            except OSError:
                return None
    return None


def gallery_html(entries: list[HistoryEntry], limit: int = GALLERY_LIMIT) -> str:
    """The newest runs as equal tiles (picture and label); runs without a picture say why."""
    import html

    from ..reports.media import data_uri, display_png

    if not entries:
        return ("<i>no runs yet: finished runs, and those already in the run folder, show here newest first</i>")
    tiles = []
    for entry in list(reversed(entries))[:limit]:
        image = thumbnail_of(entry) if entry.status == "completed" else None
        picture = (f'<img class="zr-thumb-img" src="{data_uri(display_png(image, GALLERY_SIDE), "image/png")}" '
                   f'style="width:{GALLERY_SIDE}px;height:{GALLERY_SIDE}px;object-fit:contain">' if image is not None
                   else f'<div class="zr-thumb-img" style="width:{GALLERY_SIDE}px;height:{GALLERY_SIDE}px;'
                        f'display:flex;align-items:center;justify-content:center;background:var(--zr-panel)">'
                        f'{html.escape(entry.status)}</div>')
        where = " · earlier session" if entry.from_disk else ""
        tiles.append(f'<div class="zr-history-tile" title="{html.escape(entry.label)}" style="display:inline-block;'
                     f'vertical-align:top;margin:0 8px 8px 0;width:{GALLERY_SIDE + 24}px">{picture}'
                     f'<div class="zr-caption" style="max-width:{GALLERY_SIDE + 24}px">#{entry.number} '
                     f'{html.escape(entry.status)}{where}</div></div>')
    return "".join(tiles)


__all__ = ["GALLERY_LIMIT", "download_links_html", "gallery_html", "output_png", "record_of", "record_status",
           "report_parameters", "save_png", "thumbnail_of",
           "save_record"]
