"""Control maps the user gives instead of a detector's ("preprocessor: none" in sd-webui-controlnet's words): an
OpenPose-editor skeleton, a depth map from another tool. A unit's ``image`` is one map, or for clips a folder of one
map per frame (sorted by name as clip folders are). The files are checked (header only) when the settings are
validated, decoded through the source intake's guard (pixel cap, corrupt files), resized to the run size as
detector maps are, and hashed for the run record so that a rerun can tell whether a map changed.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from PIL import Image

from ..errors import IntakeError, SettingsError

if TYPE_CHECKING:
    from ..settings import ControlUnit
    from .base import ControlMap

MAP_ALLOWED = "an image file (PNG, JPEG, WEBP, BMP, TIFF or GIF), or for clips a folder of one map image per frame"


def _setting(unit: ControlUnit) -> str:
    return f"controls[{unit.kind}].image"


def _name_key(path: Path) -> list[Any]:
    """map2 before map10, as the frames of a clip folder are ordered: digits compare as numbers."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", path.name)]


def map_files(unit: ControlUnit) -> list[Path]:
    """The map files of a unit with ``image``: the one file, or the folder's maps sorted by name."""
    from ..source.video import FRAME_SUFFIXES  # the images a folder of clip frames is read from

    path = Path(str(unit.image)).expanduser()
    if path.is_dir():
        files = sorted((f for f in path.iterdir() if f.is_file() and f.suffix.lower() in FRAME_SUFFIXES
                        and not f.name.startswith(".")), key=_name_key)
        if not files:
            raise SettingsError(_setting(unit), unit.image, MAP_ALLOWED, "The folder holds no map images.")
        return files
    return [path]


def check_given_image(unit: ControlUnit) -> list[Path]:
    """The unit's map file(s) exist and carry a readable image header within the pixel cap (no pixel is decoded).
    A clear SettingsError naming the unit otherwise. Returns the files."""
    from ..source.intake import validate_image_path

    if not isinstance(unit.image, str) or not unit.image.strip():
        raise SettingsError(_setting(unit), unit.image, MAP_ALLOWED)
    path = Path(unit.image).expanduser()
    if not path.exists():
        raise SettingsError(_setting(unit), unit.image, MAP_ALLOWED,
                            "No such file or folder (relative paths start at the current directory).")
    files = map_files(unit)
    for file in files:
        try:
            validate_image_path(file)
        except (IntakeError, OSError) as exc:
            raise SettingsError(_setting(unit), str(file), MAP_ALLOWED, f"It cannot be used: {exc}") from None
    return files


def check_given_units(units: Sequence[ControlUnit], settings: Any, frames: int | None = None) -> None:
    """Before any work: each given unit's files, one map per frame for a folder (``frames``: the frames the clip
    run makes; None for a still, which takes one map), and no hires pass that would detect over a given map."""
    given = [u for u in units if u.image is not None]
    for unit in given:
        files = check_given_image(unit)
        if Path(unit.image).expanduser().is_dir():
            if frames is None:
                raise SettingsError(_setting(unit), unit.image, "one map image for a still",
                                    "A folder of maps (one per frame) is for clips.")
            if len(files) != frames:
                raise SettingsError(_setting(unit), unit.image, f"a folder of {frames} maps, one per frame the "
                                    f"run makes", f"It holds {len(files)} map images, the run makes {frames} frames.")
    if given and getattr(settings, "hires_on", False) and getattr(settings, "hires_control_maps", "") == "detect":
        kinds = ", ".join(u.kind for u in given)
        raise SettingsError("hires_control_maps", "detect", "resize when a unit is given its map (" + kinds + ")",
                            "'detect' would run the detectors again at the hires size and replace your map; "
                            "'resize' resizes your map to it.")


@dataclass(frozen=True)
class GivenMaps:
    """The decoded maps of one unit at the run size, and what the record says of them."""

    images: list[Image.Image]
    record: dict[str, Any]


def _rgb_on_black(image: Image.Image) -> Image.Image:
    """Control maps are drawn on black: a transparent background becomes black, not the colour under it."""
    if image.mode == "RGBA":
        black = Image.new("RGBA", image.size, (0, 0, 0, 255))
        return Image.alpha_composite(black, image).convert("RGB")
    return image.convert("RGB")


def _decode(unit: ControlUnit, file: Path, size: tuple[int, int]) -> tuple[Image.Image, tuple[int, int]]:
    from ..source.intake import load_image

    try:
        loaded = load_image(file)
    except IntakeError as exc:
        raise SettingsError(_setting(unit), str(file), MAP_ALLOWED, f"It cannot be decoded: {exc}") from None
    image = _rgb_on_black(loaded.image)
    original = image.size
    if image.size != size:  # as detector maps reach the run size (base._output_image)
        image = image.resize(size, Image.BILINEAR)
    return image, original


def folder_digest(entries: Sequence[dict[str, Any]]) -> str:
    """One sha256 for a folder of maps: over each map's name and sha256, in order."""
    text = "".join(f"{e['name']}\t{e['sha256']}\n" for e in entries)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def given_digest(unit: ControlUnit) -> str:
    """The sha256 a record holds for the unit's map: the file's, or the folder digest of its maps."""
    from ..files import sha256_file

    path = Path(str(unit.image)).expanduser()
    if not path.is_dir():
        return sha256_file(path)
    return folder_digest([{"name": f.name, "sha256": sha256_file(f)} for f in map_files(unit)])


def load_given(unit: ControlUnit, size: tuple[int, int], frames: int | None = None) -> GivenMaps:
    """The unit's maps as RGB images of ``size`` (w, h): ``frames`` of them (one image repeated, or the folder's
    maps, one per frame), or one for a still (``frames`` None). Decoded through the intake's guard; the folder's
    count was checked by ``check_given_units``."""
    from ..files import sha256_file

    files = map_files(unit)
    path = Path(str(unit.image)).expanduser()
    decoded = [_decode(unit, file, size) for file in files]
    images = [image for image, _ in decoded]
    record: dict[str, Any] = {"given": True, "detector_ran": False, "image": str(path.resolve()),
                              "size": list(size)}
    if path.is_dir():
        entries = [{"name": f.name, "sha256": sha256_file(f)} for f in files]
        record.update(sha256=folder_digest(entries), files=entries, maps=len(files))
    else:
        record.update(sha256=sha256_file(path), image_size=list(decoded[0][1]))
    if frames is not None and len(images) == 1:
        images = images * frames
    return GivenMaps(images, record)


def given_control_map(unit: ControlUnit, size: tuple[int, int], method: str) -> ControlMap:
    """A still's ControlMap from the unit's given map. ``method`` is the detector the run measures the output's
    adherence with (none made this map: the record's params say so); an openpose map's keypoints are read back
    from its colours so that pose adherence has keypoints to compare."""
    from .base import ControlMap

    given = load_given(unit, size)
    image = given.images[0]
    found = bool(image.getbbox())
    warnings = [] if found else [f"the given {unit.kind} map is blank: the ControlNet gets an empty map."]
    keypoints = pose_keypoints_of(image) if unit.kind == "openpose" else None
    return ControlMap(unit.kind, method, image, found, keypoints, warnings,
                      {"kind": unit.kind, **given.record})


def pose_keypoints_of(image: Image.Image) -> Any:
    """Body keypoints of a rendered OpenPose map, read from the keypoint colours: (people, 18, 2) pixels, NaN where
    a part is missing; grouped per person, the shape the adherence measure reads for any number of people."""
    import numpy as np

    from ..metrics.adherence import keypoints_from_pose_map

    table = keypoints_from_pose_map(image)  # (people, 18, 3): x, y, found
    points = table[..., :2].astype(np.float32)
    points[table[..., 2] <= 0] = np.nan
    return points
