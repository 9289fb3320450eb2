"""Sweep specs: base settings plus axes over any setting, expanded into fully specified, validated jobs.

    {"image": "sample:transparent", "preset": "tiny",
     "base": {"size": 64, "steps": 4},
     "axes": {"strength": [0.5, 0.6, 0.7], "controls.depth.scale": [0.5, 1.0]},
     "seeds": [0, 1]}

Axes are a cartesian product in the order given: the first axis is the contact sheet's X, the second its Y and the
rest its pages (Z). ``seeds`` is a shorthand for a last axis named ``seed``. An axis is a setting name of
``StaticSettings`` (strength, cfg, seed, scheduler, colour_method, profile, ...), ``controls.KIND.FIELD`` for one
control unit's scale, start, end or method, or ``controls`` itself (each value a unit list such as "depth,canny").

``image`` is an axis too: a list of image paths (or sample:NAME), or a folder (its png/jpg/jpeg/webp files, sorted,
hidden ones skipped), instead of the spec's one ``image``; every file is checked (it exists and decodes) before the
sweep starts, and contact sheets label each by its file name.

``kind: temporal`` makes a sweep of clips: ``base`` and the axes are then ``TemporalSettings`` names (frames,
motion_prompt, context_length, ... and the shared ones), each job is a still -> clip run_temporal of the image, and
results and contact sheets show each clip's first frame. ``kind`` defaults to ``static``.
"""
from __future__ import annotations

import dataclasses
import itertools
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from ..errors import SettingsError
from ..settings import (SPECS, TEMPORAL_SPECS, UNIT_SPECS, ControlUnit, StaticSettings, TemporalSettings,
                        control_unit_from)

SPEC_KEYS = ("image", "preset", "base", "axes", "seeds", "name", "kind")
SWEEP_KINDS = ("static", "temporal")
IMAGE_AXIS = "image"
UNIT_AXIS_FIELDS = tuple(name for name in UNIT_SPECS if name != "kind")
SETTINGS_CLASSES = {"static": StaticSettings, "temporal": TemporalSettings}
SETTINGS_SPECS = {"static": SPECS, "temporal": TEMPORAL_SPECS}


def axis_forms(kind: str = "static") -> str:
    """What an axis may be, for error messages: the settings of the sweep's kind and the compound forms."""
    return (f"a {SETTINGS_CLASSES[kind].__name__} setting (" + ", ".join(SETTINGS_SPECS[kind]) + "), 'image', "
            "'controls', 'loras', loras.NAME (a LoRA's weight), or controls.KIND.FIELD with FIELD one of "
            + ", ".join(UNIT_AXIS_FIELDS))


_AXIS_FORMS = axis_forms("static")

MAX_JOBS_ENV = "ZREALISM_MAX_SWEEP_JOBS"
DEFAULT_MAX_SWEEP_JOBS = 10_000
MAX_SPEC_BYTES = 1_000_000
MAX_SPEC_NODES = 100_000  # values in a spec with every YAML alias expanded


@dataclass(frozen=True)
class Axis:
    """One swept setting and the values it takes, in order."""

    name: str
    values: tuple[Any, ...]

    @property
    def unit(self) -> tuple[str, str] | None:
        """(kind, field) for a per-unit axis such as controls.depth.scale, else None."""
        parts = self.name.split(".")
        return (parts[1], parts[2]) if len(parts) == 3 and parts[0] == "controls" else None

    def label(self, value: Any) -> str:
        return f"{self.name} = {self.value_label(value)}"

    def value_label(self, value: Any) -> str:
        """How a value is shown on sheets and in tables: an image by its file name, the rest by format_value."""
        return image_label(value) if self.name == IMAGE_AXIS else format_value(value)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"name": self.name, "values": [_jsonable(v) for v in self.values]}
        if self.name == IMAGE_AXIS:
            data["labels"] = [self.value_label(v) for v in self.values]
        return data


@dataclass(frozen=True)
class Job:
    """One fully specified run of a sweep."""

    index: int
    coords: dict[str, Any]  # axis name -> value of this job
    position: tuple[int, ...]  # index of each axis value, in axis order
    settings: StaticSettings | TemporalSettings
    image: str = ""  # the job's source: the spec's image, or this job's value of the image axis

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "coords": {k: _jsonable(v) for k, v in self.coords.items()},
                "position": list(self.position), "seed": self.settings.seed, "settings": self.settings.to_dict()}


@dataclass(frozen=True)
class SweepSpec:
    """What to sweep: a source image (or an image axis), a model preset, base settings and the axes."""

    image: str | None  # a path or sample:NAME; None when an axis named image gives each job's
    preset: str = "tiny"
    base: Mapping[str, Any] = field(default_factory=dict)
    axes: tuple[Axis, ...] = ()
    name: str | None = None
    kind: str = "static"  # or "temporal": TemporalSettings, and each job a still -> clip run

    @property
    def settings_class(self) -> type:
        return SETTINGS_CLASSES[self.kind]

    @property
    def images(self) -> list[str]:
        """Every source image of the sweep, in axis order (one, without an image axis)."""
        axis = next((a for a in self.axes if a.name == IMAGE_AXIS), None)
        return list(axis.values) if axis is not None else [self.image]

    def check_images(self) -> list[Path]:
        """Every source exists and decodes (a truncated file is found now, not in the middle of the sweep)."""
        from ..source.intake import load_image

        paths = []
        for image in self.images:
            path = resolve_image(image)
            load_image(path)
            paths.append(path)
        return paths

    # ----------------------------------------------------------------- construction
    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, relative_to: str | os.PathLike | None = None) -> "SweepSpec":
        """Build from a spec mapping; a relative image path is taken relative to ``relative_to`` (the spec's folder)."""
        if not isinstance(data, Mapping):
            raise SettingsError("sweep spec", data, "a mapping with the keys " + ", ".join(SPEC_KEYS))
        unknown = sorted(set(data) - set(SPEC_KEYS))
        if unknown:
            raise SettingsError(unknown[0], data[unknown[0]], "one of the sweep spec keys " + ", ".join(SPEC_KEYS))
        kind = data.get("kind", "static")
        if kind not in SWEEP_KINDS:
            raise SettingsError("kind", kind, "static (stills, the default) or temporal (clips)")
        axes_data = data.get("axes") or {}
        image = data.get("image")
        image_axis = isinstance(axes_data, Mapping) and IMAGE_AXIS in axes_data
        if image_axis and image is not None:
            raise SettingsError("image", image, "either one 'image' or an 'image' axis, not both",
                                "Add this image to the image axis's list instead.")
        if not image_axis:
            if not isinstance(image, str) or not image:
                raise SettingsError("image", image, "an image path or sample:NAME (transparent, dark, light, scenic)"
                                    ", or an 'image' axis of several")
            image = _resolve_path(image, relative_to)
        else:
            axes_data = {**axes_data, IMAGE_AXIS: expand_images(axes_data[IMAGE_AXIS], relative_to)}
        preset = data.get("preset", "tiny")
        if not isinstance(preset, str) or not preset:
            raise SettingsError("preset", preset, "a preset name (tiny, realistic-vision) or a model folder")
        base = data.get("base") or {}
        if not isinstance(base, Mapping):
            raise SettingsError("base", base, f"a mapping of {SETTINGS_CLASSES[kind].__name__} fields")
        base = _resolve_base_maps(base, relative_to)
        axes_data = {key: ([_resolve_path(os.fspath(v), relative_to) if isinstance(v, (str, os.PathLike)) else v
                            for v in values] if _is_map_axis(key) and isinstance(values, Sequence)
                           and not isinstance(values, str) else values)
                     for key, values in axes_data.items()}
        axes = axes_from_mapping(axes_data, data.get("seeds"))
        name = data.get("name")
        if name is not None and not isinstance(name, str):
            raise SettingsError("name", name, "text")
        return cls(image=image, preset=preset, base=dict(base), axes=axes, name=name, kind=kind)

    def to_dict(self) -> dict[str, Any]:
        data = {"image": self.image, "preset": self.preset, "base": {k: _jsonable(v) for k, v in self.base.items()},
                "axes": {axis.name: [_jsonable(v) for v in axis.values] for axis in self.axes}, "name": self.name}
        if self.kind != "static":  # static specs read back as they always did
            data["kind"] = self.kind
        return data

    # ----------------------------------------------------------------- expansion
    def base_settings(self) -> StaticSettings | TemporalSettings:
        return self.settings_class.from_dict(_normalise_base(self.base)).validated()

    def expand(self, default_controls: Sequence[ControlUnit] = ()) -> list[Job]:
        """Every job of the cartesian product, validated; raises SettingsError before anything runs.

        ``default_controls`` are the model set's units, used when the base names no controls and an axis sweeps a
        unit's field."""
        base = self.base_settings()
        names = [axis.name for axis in self.axes]
        if len(set(names)) != len(names):
            raise SettingsError("axes", names, "each setting at most once")
        if "loras" in names and any(name.startswith("loras.") for name in names):
            raise SettingsError("axes", names, "either a 'loras' axis or loras.NAME axes, not both")
        if "controls" in names and any(axis.unit for axis in self.axes):
            raise SettingsError("axes", names, "either a 'controls' axis or controls.KIND.FIELD axes, not both")
        base_units = _base_units(base, default_controls) if any(axis.unit for axis in self.axes) else None
        for axis in self.axes:
            _check_axis(axis, base_units, self.kind)
        count = math.prod(len(axis.values) for axis in self.axes)
        cap = max_sweep_jobs()
        if count > cap:  # refused before one job is built: a 100x100x100 grid is a typo, not a plan
            raise SettingsError("axes", " x ".join(str(len(a.values)) for a in self.axes),
                                f"at most {cap:,} jobs in one sweep", f"These axes make {count:,} jobs. Use fewer "
                                f"values, or raise the cap with ${MAX_JOBS_ENV} if you mean it.")
        jobs = []
        value_lists = [list(enumerate(axis.values)) for axis in self.axes]
        for index, combination in enumerate(itertools.product(*value_lists)):
            coords = {axis.name: value for axis, (_, value) in zip(self.axes, combination)}
            settings = _apply(base, base_units, self.axes, [value for _, value in combination])
            jobs.append(Job(index, coords, tuple(i for i, _ in combination), settings.validated(),
                            coords.get(IMAGE_AXIS, self.image)))
        return jobs


# --------------------------------------------------------------------------------- loading
def load_spec(source: str | os.PathLike | Mapping[str, Any] | SweepSpec) -> SweepSpec:
    """A SweepSpec from a spec object, a mapping, or a .json / .yaml / .yml file."""
    if isinstance(source, SweepSpec):
        return source
    if isinstance(source, Mapping):
        return SweepSpec.from_dict(source)
    path = Path(source).expanduser()
    if not path.is_file():
        raise SettingsError("spec", str(path), "an existing .json, .yaml or .yml sweep spec file")
    if path.stat().st_size > MAX_SPEC_BYTES:
        raise SettingsError("spec", str(path), f"a sweep spec file of at most {MAX_SPEC_BYTES:,} bytes",
                            f"It has {path.stat().st_size:,}: a spec lists settings and axes, not data.")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SettingsError("spec", str(path), "a UTF-8 text file", f"Byte {exc.start} is not UTF-8.") from None
    try:
        data = _parse_yaml(text) if path.suffix.lower() in (".yaml", ".yml") else json.loads(text)
    except SettingsError:
        raise
    except Exception as exc:  # both parsers' errors say where the file is malformed (RecursionError: too deep)
        detail = "it nests too deeply" if isinstance(exc, RecursionError) else exc
        raise SettingsError("spec", str(path), "a valid JSON or YAML sweep spec", f"It could not be parsed: {detail}") \
            from None
    return SweepSpec.from_dict(data, relative_to=path.resolve().parent)


def _parse_yaml(text: str) -> Any:
    """YAML with its aliases bounded: the document is composed first (anchors stay shared nodes, so this is cheap),
    its size with every alias expanded is counted, and only a document under the bound is built. A "billion laughs"
    spec is refused in milliseconds instead of filling the memory."""
    import yaml

    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        sizes: dict[int, int] = {}

        def expanded(item: Any) -> int:  # memoised per node, so shared anchors are counted, not walked, again
            key = id(item)
            if key not in sizes:
                sizes[key] = 1  # a recursive alias counts once instead of looping
                if isinstance(item, yaml.SequenceNode):
                    sizes[key] = 1 + sum(expanded(child) for child in item.value)
                elif isinstance(item, yaml.MappingNode):
                    sizes[key] = 1 + sum(expanded(k) + expanded(v) for k, v in item.value)
                if sizes[key] > MAX_SPEC_NODES:
                    raise SettingsError("spec", "YAML aliases", f"a spec of at most {MAX_SPEC_NODES:,} values once "
                                        "its aliases are expanded", "Write the values out instead of nesting aliases.")
            return sizes[key]

        expanded(node)
        return loader.construct_document(node)
    finally:
        loader.dispose()


def max_sweep_jobs() -> int:
    """The most jobs one sweep may expand to: $ZREALISM_MAX_SWEEP_JOBS, else the default."""
    value = os.environ.get(MAX_JOBS_ENV)
    if value is None:
        return DEFAULT_MAX_SWEEP_JOBS
    try:
        cap = int(value)
    except ValueError:
        cap = 0
    if cap < 1:
        raise SettingsError(MAX_JOBS_ENV, value, "a whole number of at least 1")
    return cap


# --------------------------------------------------------------------------------- images
def _resolve_path(image: str, relative_to: str | os.PathLike | None) -> str:
    """A relative image path is taken relative to the spec's folder; sample:NAME stays as it is."""
    if relative_to is not None and not image.startswith("sample:") and not Path(image).expanduser().is_absolute():
        return str(Path(relative_to) / image)
    return image


def expand_images(value: Any, relative_to: str | os.PathLike | None = None) -> list[str]:
    """The image axis's values: a folder becomes its images (see generate.batch.list_images), a list keeps its
    order with any folder in it expanded in place."""
    from ..generate.batch import list_images

    items = [value] if isinstance(value, (str, os.PathLike)) else value
    if isinstance(items, (bytes, Mapping)) or not isinstance(items, Sequence) or not items:
        raise SettingsError(IMAGE_AXIS, value, "a folder of images, or a non-empty list of image paths "
                            "(or sample:NAME)")
    images: list[str] = []
    for item in items:
        if not isinstance(item, (str, os.PathLike)) or not os.fspath(item):
            raise SettingsError(IMAGE_AXIS, item, "an image path, a folder of images or sample:NAME")
        path = _resolve_path(os.fspath(item), relative_to)
        if not path.startswith("sample:") and Path(path).expanduser().is_dir():
            images += [str(p) for p in list_images(path)]
        else:
            images.append(path)
    return images


def resolve_image(image: str) -> Path:
    """`sample:NAME` names a bundled sample character; anything else is a path, checked like a single run's."""
    from ..source.intake import validate_image_path

    if image.startswith("sample:"):
        from ..source.samples import sample_path

        return sample_path(image.split(":", 1)[1])
    return validate_image_path(image)


def image_label(value: Any) -> str:
    """An image axis value as sheets and tables show it: the file name (a sample keeps its sample:NAME)."""
    text = str(value)
    return text if text.startswith("sample:") else Path(text).name


# --------------------------------------------------------------------------------- helpers
def format_value(value: Any) -> str:
    """A short label for an axis value (contact sheets, tables)."""
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, tuple)):
        return ",".join(format_value(v) for v in value) or "none"
    if isinstance(value, Mapping):
        return str(value.get("kind", value))
    if isinstance(value, ControlUnit):
        return value.kind
    return str(value)


def _jsonable(value: Any) -> Any:
    if isinstance(value, ControlUnit):
        return value.to_dict()
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def axes_from_mapping(axes: Mapping[str, Sequence[Any]], seeds: Sequence[int] | None = None) -> tuple[Axis, ...]:
    """Axes in the mapping's order (X, Y, then pages), with ``seeds`` as a last axis named seed."""
    if not isinstance(axes, Mapping):
        raise SettingsError("axes", axes, "a mapping of setting name -> list of values")
    built = [_axis(name, values) for name, values in axes.items()]
    if seeds is not None:
        if "seed" in axes:
            raise SettingsError("seeds", seeds, "either a 'seeds' list or a 'seed' axis, not both")
        built.append(_axis("seed", seeds))
    return tuple(built)


def _axis(name: Any, values: Any) -> Axis:
    if not isinstance(name, str) or not name:
        raise SettingsError("axes", name, _AXIS_FORMS)
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or not values:
        raise SettingsError(name, values, "a non-empty list of values for this axis")
    frozen = tuple(_freeze(v) for v in values)
    if len(set(map(repr, frozen))) != len(frozen):
        raise SettingsError(name, list(values), "a list of distinct values (each value once)")
    return Axis(name, frozen)


def _freeze(value: Any) -> Any:
    """Lists (e.g. a controls axis value) become tuples so values hash and compare."""
    if isinstance(value, list):
        return tuple(_freeze(v) for v in value)
    return value


def _is_map_axis(name: Any) -> bool:
    """controls.KIND.image: an axis over a unit's own map files."""
    return isinstance(name, str) and name.startswith("controls.") and name.endswith(".image")


def _resolve_base_maps(base: Mapping[str, Any], relative_to: str | os.PathLike | None) -> dict[str, Any]:
    """The base's control maps given as relative paths (KIND@map.png) taken from the spec's folder, like images."""
    units = _normalise_base(base).get("controls")
    if relative_to is None or not isinstance(units, (list, tuple)) or not any(
            (u.image if isinstance(u, ControlUnit) else u.get("image") if isinstance(u, Mapping) else None)
            for u in units):
        return dict(base)
    resolved = []
    for unit in units:
        data = unit.to_dict() if isinstance(unit, ControlUnit) else dict(unit)
        if isinstance(data.get("image"), str):
            data["image"] = _resolve_path(data["image"], relative_to)
        resolved.append(data)
    return {**base, "controls": resolved}


def _normalise_base(base: Mapping[str, Any]) -> dict[str, Any]:
    values = dict(base)
    if isinstance(values.get("controls"), str):
        values["controls"] = _parse_controls_text(values["controls"])
    return values


def _parse_controls_text(text: str) -> list[ControlUnit]:
    from ..settings import parse_controls  # the CLI's 'depth=0.8,canny' syntax, so specs read like the command line

    return parse_controls(text)


def _controls_value(value: Any) -> tuple[ControlUnit, ...] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return tuple(_parse_controls_text(value))
    if isinstance(value, (list, tuple)):
        return tuple(control_unit_from(v) for v in value)
    raise SettingsError("controls", value, "a unit list such as 'depth,canny' or a list of kinds / unit mappings")


def _base_units(base: Any, default_controls: Sequence[ControlUnit]) -> tuple[ControlUnit, ...]:
    """The units a per-unit axis edits: the base's own, else the model set's defaults (with the profile's scales,
    as a single run would use them)."""
    if base.controls is not None:
        return tuple(base.controls)
    units = tuple(default_controls)
    if base.profile:
        from ..profiles import get_profile

        profile = get_profile(base.profile)
        scales = getattr(profile, "control_scales", None) or {}
        units = tuple(dataclasses.replace(u, scale=scales.get(u.kind, u.scale)) for u in units)
    return units


def _check_axis(axis: Axis, base_units: tuple[ControlUnit, ...] | None, kind: str = "static") -> None:
    """Each value checked against the setting's spec, so the error names the axis and says what is allowed."""
    if axis.name == IMAGE_AXIS:  # files are checked by SweepSpec.check_images, before the sweep starts
        return
    if axis.name == "controls":
        for value in axis.values:
            for unit in _controls_value(value) or ():
                unit.validated()
        return
    if axis.name.startswith("controls"):
        parts = axis.name.split(".")
        if len(parts) != 3 or parts[2] not in UNIT_AXIS_FIELDS:
            raise SettingsError("axes", axis.name,
                                "controls.KIND.FIELD with FIELD one of " + ", ".join(UNIT_AXIS_FIELDS))
        kind, name = parts[1], parts[2]
        kinds = [u.kind for u in base_units or ()]
        if kind not in kinds:
            raise SettingsError("axes", axis.name, "controls.KIND.FIELD with KIND one of the base controls: "
                                + (", ".join(kinds) or "(none)"),
                                f"Add a '{kind}' unit to base.controls to sweep its {name}.")
        spec = UNIT_SPECS[name]
        for value in axis.values:
            try:
                spec.check(value)
            except SettingsError:
                raise SettingsError(axis.name, value, spec.allowed()) from None
        return
    if axis.name == "loras" or axis.name.startswith("loras."):
        _check_lora_axis(axis)
        return
    specs = SETTINGS_SPECS[kind]
    if axis.name not in specs:
        hint = (f"'{axis.name}' is a setting of {'clips' if kind == 'static' else 'stills'} only: this sweep's "
                f"kind is {kind}." if axis.name in SETTINGS_SPECS["temporal" if kind == "static" else "static"]
                else "")
        raise SettingsError("axes", axis.name, axis_forms(kind), hint)
    for value in axis.values:
        specs[axis.name].check(value)
        if axis.name == "profile" and value:
            from ..profiles import get_profile

            get_profile(value)


def _check_lora_axis(axis: Axis) -> None:
    """'loras.NAME' sweeps one LoRA's weight; 'loras' sweeps whole LoRA lists ('a:0.5,b', or none as '')."""
    from ..adapters.values import check_loras, normalize_loras
    from ..settings import LORA_WEIGHT_SPEC

    if axis.name == "loras":
        for value in axis.values:
            check_loras(normalize_loras(value))
        return
    if not axis.name.removeprefix("loras.").strip():
        raise SettingsError("axes", axis.name, "loras.NAME with NAME a LoRA's name")
    for value in axis.values:
        try:
            LORA_WEIGHT_SPEC.check(value)
        except SettingsError:
            raise SettingsError(axis.name, value, LORA_WEIGHT_SPEC.allowed()) from None


def _with_lora_weight(loras: tuple[tuple[str, float], ...], name: str, weight: float) -> tuple[tuple[str, float], ...]:
    """The LoRA list with ``name`` at ``weight``: replaced in place, or added at the end."""
    if any(known == name for known, _ in loras):
        return tuple((known, weight if known == name else w) for known, w in loras)
    return (*loras, (name, weight))


def _apply(base: Any, base_units: tuple[ControlUnit, ...] | None, axes: Sequence[Axis],
           values: Sequence[Any]) -> Any:
    changes: dict[str, Any] = {}
    units = {u.kind: u for u in base_units} if base_units is not None else None
    for axis, value in zip(axes, values):
        if axis.name == IMAGE_AXIS:  # the job's source, not a setting
            continue
        if axis.unit is not None and units is not None:
            kind, name = axis.unit
            units[kind] = dataclasses.replace(units[kind], **{name: value})
        elif axis.name == "controls":
            changes["controls"] = _controls_value(value)
        elif axis.name.startswith("loras."):
            loras = changes.get("loras", base.loras)
            changes["loras"] = _with_lora_weight(loras, axis.name.removeprefix("loras."), float(value))
        else:
            changes[axis.name] = value
    if units is not None:
        changes["controls"] = tuple(units.values())
    return base.replace(**changes)
