"""A1111-compatible infotext: the `parameters` text every PNG the lab makes carries, and the reverse.

The writer uses A1111's own field names and values (sampler and schedule type, `Model hash` as A1111's short
sha256, one `ControlNet N:` line per unit as sd-webui-controlnet writes them, `Version:`), so A1111's PNG Info,
Civitai and image browsers read a lab run. Settings A1111 has no field for travel in one `Z-Realism settings:` field
(only those that differ from their defaults), so an infotext the lab wrote parses back to identical settings.
`read_settings` takes a PNG or the text (the lab's or A1111's) and says what it could not map.

The active LoRAs are written as A1111 writes them, `<lora:NAME:W>` tags in the prompt (besides `Lora hashes`), and
read back as tags in the prompt, which select the same LoRAs; a unit given its own map is `Module: none`, as
sd-webui-controlnet writes a unit with no preprocessor.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

OWN_FIELD = "Z-Realism settings"
# (kind, detector method) <-> sd-webui-controlnet's module (preprocessor) names; lab-only methods get their own.
MODULES = {("depth", "midas"): "depth_midas", ("depth", "inflate"): "zrealism_depth_inflate",
           ("openpose", "openpose"): "openpose_full", ("openpose", "mediapipe"): "zrealism_openpose_mediapipe",
           ("canny", "opencv"): "canny", ("lineart_anime", "anime"): "lineart_anime",
           ("lineart_anime", "edges"): "lineart_standard"}
# A1111 modules of a kind the lab has, with no method of the same name: the kind's default method stands in.
MODULE_PREFIXES = (("depth", "depth"), ("openpose", "openpose"), ("dw_openpose", "openpose"), ("canny", "canny"),
                   ("lineart_anime", "lineart_anime"))
# sd-webui-controlnet's preprocessor of a unit given its own map; the kind then comes from the model's name.
GIVEN_MODULE = "none"
MODEL_KINDS = (("lineart", "lineart_anime"), ("pose", "openpose"), ("depth", "depth"), ("canny", "canny"))
HIRES_UPSCALERS = {"lanczos": "Lanczos", "latent": "Latent"}
_PARAM = re.compile(r'\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)')
_SIZE = re.compile(r"^(\d+)x(\d+)$")


def quote(text: Any) -> str:
    """A value as A1111 writes it: plain, or JSON-quoted when it holds a comma, colon, quote or newline."""
    text = str(text)
    return text if not any(c in text for c in ',:"\n') else json.dumps(text, ensure_ascii=False)


def unquote(text: str) -> str:
    if text.startswith('"') and text.endswith('"') and len(text) >= 2:
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            return text
    return text


def _number(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def sampler_fields(scheduler: str) -> list[tuple[str, str]]:
    """A1111's `Sampler` and `Schedule type` for a scheduler id ('dpmpp-2m-karras' -> DPM++ 2M, Karras)."""
    from .schedulers import SCHEDULERS

    label = SCHEDULERS.get(scheduler).label if scheduler in SCHEDULERS.names() else scheduler
    if label.endswith(" Karras"):
        return [("Sampler", label[: -len(" Karras")]), ("Schedule type", "Karras")]
    return [("Sampler", label)]


def scheduler_from(sampler: str, schedule: str | None) -> str | None:
    """The scheduler id of A1111's sampler (old 'DPM++ 2M Karras' or new 'DPM++ 2M' + 'Karras'), or None."""
    from .schedulers import SCHEDULERS

    label = sampler.strip()
    if schedule and schedule.strip().lower() not in ("automatic", "") and not label.endswith(schedule.strip()):
        label = f"{label} {schedule.strip()}"
    for name in SCHEDULERS.names():
        if SCHEDULERS.get(name).label.lower() == label.lower():
            return name
    return None


def short_hash(sha256: str | None, length: int = 10) -> str | None:
    """A1111's short hash: the first 10 hex digits of the file's sha256 (sd-webui-controlnet shows 8)."""
    return sha256[:length] if sha256 else None


def component_name(ref: Mapping[str, Any] | None) -> str | None:
    """A component's name as A1111 shows it: a file's stem, a folder's or hub repo's last part."""
    if not ref:
        return None
    location = str(ref.get("location", ""))
    if ref.get("kind") == "file":
        return Path(location).stem
    return location.rstrip("/").split("/")[-1] or None


def _file_sha(hashes: Mapping[str, Mapping[str, str]] | None, role: str) -> str | None:
    """The sha256 of a component's weight file: the one file of a single-file component, else the largest name."""
    files = dict((hashes or {}).get(role) or {})
    weights = {k: v for k, v in files.items() if k.endswith((".safetensors", ".ckpt", ".pt", ".pth", ".bin"))}
    return weights[sorted(weights)[0]] if len(weights) == 1 else None


def unit_line(unit: Mapping[str, Any], detect_resolution: Any, model: str | None, model_sha: str | None) -> str:
    """One unit in sd-webui-controlnet's format (quoted as a whole, as it writes it)."""
    method = unit.get("method")
    if unit.get("image"):  # the user's own map: no preprocessor ran
        module = GIVEN_MODULE
    else:
        if method is None:  # the kind's default detector ran (importing the package registers the providers)
            from .control import base as control_base

            method = control_base.available_methods(unit["kind"])[0]
        module = MODULES.get((unit["kind"], method), f"zrealism_{unit['kind']}_{method}")
    name = model or f"controlnet_{unit['kind']}"
    parts = [("Module", module), ("Model", f"{name} [{short_hash(model_sha, 8)}]" if model_sha else name),
             ("Weight", float(unit.get("scale", 1.0))), ("Resize Mode", "Crop and Resize"),
             ("Processor Res", detect_resolution)]
    params = dict(unit.get("params") or {})
    if unit["kind"] == "canny" and params:
        parts += [("Threshold A", params.get("low_threshold")), ("Threshold B", params.get("high_threshold"))]
    parts += [("Guidance Start", float(unit.get("start", 0.0))), ("Guidance End", float(unit.get("end", 1.0))),
              ("Pixel Perfect", False),
              ("Control Mode", "Balanced")]
    return json.dumps(", ".join(f"{k}: {v}" for k, v in parts))


def adapter_fields(adapters: Mapping[str, Any] | None) -> list[tuple[str, str]]:
    """`Lora hashes` and `TI hashes` as A1111 writes them, from the run's adapters record (``loras`` with name
    and hash, ``embeddings`` with token and hash)."""
    fields = []
    for group, label, key in (("loras", "name", "Lora hashes"), ("embeddings", "token", "TI hashes")):
        items = [f"{a[label]}: {a['hash']}" for a in (adapters or {}).get(group) or () if a.get(label) and a.get("hash")]
        if items:
            fields.append((key, json.dumps(", ".join(items))))
    return fields


def write_infotext(prompt: str, negative: str, settings: Mapping[str, Any], size: tuple[int, int], *,
                   models: Mapping[str, Any] | None = None, model_hashes: Mapping[str, Mapping[str, str]] | None = None,
                   adapters: Mapping[str, Any] | None = None, extra: Mapping[str, Any] | None = None,
                   temporal: bool = False) -> str:
    """The `parameters` text of one output. ``settings`` is the run's settings as a dict with ``controls`` the units
    that ran; ``models`` the model set's dict and ``model_hashes`` the record's (for Model/VAE/ControlNet names and
    hashes); ``adapters`` the run's adapters record (LoRAs, embeddings); ``extra`` more key/value fields, written as
    given (quoted where A1111 would)."""
    from . import __version__

    prompt = with_lora_tags(prompt, settings)
    models = models or {}
    fields: list[tuple[str, Any]] = [("Steps", settings.get("steps"))]
    fields += sampler_fields(str(settings.get("scheduler")))
    fields += [("CFG scale", _number(settings.get("cfg"))), ("Seed", settings.get("seed")),
               ("Size", f"{size[0]}x{size[1]}")]
    base = models.get("base") or {}
    if base.get("kind") == "file" and _file_sha(model_hashes, "unet"):
        fields.append(("Model hash", short_hash(_file_sha(model_hashes, "unet"))))
    if component_name(base):
        fields.append(("Model", quote(component_name(base))))
    if models.get("vae"):
        vae_sha = _file_sha(model_hashes, "vae")
        if vae_sha:
            fields.append(("VAE hash", short_hash(vae_sha)))
        fields.append(("VAE", quote(component_name(models["vae"]))))
    fields.append(("Denoising strength", _number(settings.get("strength"))))
    for index, unit in enumerate(settings.get("controls") or []):
        ref = (models.get("controlnets") or {}).get(unit["kind"])
        unit = {**unit, "method": unit.get("method") or (models.get("control_methods") or {}).get(unit["kind"])}
        fields.append((f"ControlNet {index}", unit_line(unit, settings.get("detect_resolution"), component_name(ref),
                                                        _file_sha(model_hashes, f"controlnet:{unit['kind']}"))))
    fields += _refinement_fields(settings)
    if temporal:
        motion = component_name(models.get("motion_adapter")) or "motion_adapter"
        fields.append(("AnimateDiff", json.dumps(
            f"model: {motion}, video_length: {settings.get('frames')}, fps: {settings.get('fps')}, "
            f"context_batch_size: {settings.get('context_length')}, stride: {settings.get('context_stride')}")))
    fields += adapter_fields(adapters)
    fields += [(k, quote(v)) for k, v in (extra or {}).items()]
    own = _own_settings(prompt, negative, settings, size, fields, temporal)
    if own:
        fields.append((OWN_FIELD, json.dumps(json.dumps(own, sort_keys=True, default=list))))
    fields.append(("Version", f"zrealism-lab {__version__}"))
    text = ", ".join(f"{k}: {v}" for k, v in fields if v is not None)
    return f"{prompt}\nNegative prompt: {negative}\n{text}"


def with_lora_tags(prompt: str, settings: Mapping[str, Any]) -> str:
    """The prompt with a `<lora:NAME:W>` tag for each active LoRA (tagged in the settings' prompt or listed in their
    ``loras``) that it does not tag yet, appended as A1111 users write them."""
    from .adapters.tags import lora_tags, split_lora_tags
    from .errors import SettingsError

    def tags_of(text: Any) -> list[tuple[str, float]]:
        try:
            return split_lora_tags(str(text or ""))[1]
        except SettingsError:  # a malformed tag is left as it is (the settings' own check reports it)
            return []

    present = {name for name, _ in tags_of(prompt)}
    active = [*tags_of(settings.get("prompt")), *((str(n), float(w)) for n, w in settings.get("loras") or ())]
    # A name with ':', '<' or '>' cannot be a tag: it travels in the Z-Realism settings field only.
    missing = [(n, w) for n, w in active if n not in present and not any(c in n for c in ":<>")]
    missing = list(dict.fromkeys(missing))
    if not missing:
        return prompt
    return ", ".join(part for part in (prompt.strip(), lora_tags(missing)) if part)


def _refinement_fields(settings: Mapping[str, Any]) -> list[tuple[str, Any]]:
    fields: list[tuple[str, Any]] = []
    if settings.get("hires") or settings.get("hires_size"):  # the keys A1111 writes for its hires fix
        fields.append(("Hires upscale", _number(settings["hires"])) if settings.get("hires")
                      else ("Hires resize", settings["hires_size"]))
        fields += [("Hires steps", settings.get("hires_steps") or settings.get("steps")),
                   ("Hires upscaler", HIRES_UPSCALERS.get(settings.get("hires_upscaler"), settings.get("hires_upscaler"))),
                   ("Hires denoising strength", _number(settings.get("hires_strength")))]
    if settings.get("face_detail"):  # and the ones ADetailer writes
        fields += [("ADetailer model", "mediapipe_face_full" if not settings.get("face_boxes") else "user boxes"),
                   ("ADetailer denoising strength", _number(settings.get("face_strength")))]
    return fields


def _own_settings(prompt: str, negative: str, settings: Mapping[str, Any], size: tuple[int, int],
                  fields: list[tuple[str, Any]], temporal: bool) -> dict[str, Any]:
    """The settings the A1111 fields do not carry exactly: every one whose parsed-back value differs."""
    text = f"{prompt}\nNegative prompt: {negative}\n" + ", ".join(f"{k}: {v}" for k, v in fields if v is not None)
    recovered = _full_settings(_settings_dict(parse_infotext(text), temporal)[0], temporal)
    wanted = _plain(dict(settings))
    return {k: v for k, v in wanted.items() if k in recovered and recovered[k] != v}


def _plain(value: Any) -> Any:
    return json.loads(json.dumps(value, default=list))


def _full_settings(values: Mapping[str, Any], temporal: bool) -> dict[str, Any]:
    """Parsed values over the defaults, units completed, as plain JSON values (for comparison)."""
    from .settings import ControlUnit, StaticSettings, TemporalSettings

    full = (TemporalSettings() if temporal else StaticSettings()).to_dict()
    full.update(values)
    if full.get("controls") is not None:
        full["controls"] = [ControlUnit(**u).to_dict() if isinstance(u, Mapping) else u for u in full["controls"]]
    return _plain(full)


# ----------------------------------------------------------------------------------------------- reading


def parse_infotext(text: str) -> dict[str, Any]:
    """A1111's infotext as {'prompt', 'negative_prompt', 'params': {key: value}}, as A1111's PNG Info splits it:
    the last line with three or more `Key: value` fields is the parameters line."""
    lines = text.strip().split("\n")
    params: dict[str, str] = {}
    if lines and len(_PARAM.findall(lines[-1])) >= 3:
        params = {k.strip(): unquote(v.strip()) for k, v in _PARAM.findall(lines.pop())}
    prompt_lines, negative_lines, in_negative = [], [], False
    for line in lines:
        if line.startswith("Negative prompt:"):
            in_negative, line = True, line[len("Negative prompt:"):].strip()
        (negative_lines if in_negative else prompt_lines).append(line)
    return {"prompt": "\n".join(prompt_lines).strip(), "negative_prompt": "\n".join(negative_lines).strip(),
            "params": params}


@dataclass
class ImportedSettings:
    """What an infotext said, as settings: ``settings`` (StaticSettings or TemporalSettings), the models it names,
    and the fields that could not be mapped (key -> value, with why)."""

    settings: Any
    kind: str
    models: dict[str, str] = field(default_factory=dict)
    unmapped: dict[str, str] = field(default_factory=dict)
    version: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "settings": self.settings.to_dict(), "models": dict(self.models),
                "unmapped": dict(self.unmapped), "version": self.version}


def _unit_from(line: str, unmapped: dict[str, str], key: str) -> tuple[dict[str, Any] | None, dict[str, str]]:
    fields = {k.strip(): unquote(v.strip()) for k, v in _PARAM.findall(line)}
    module = fields.get("Module", "")
    pair = next((kind_method for kind_method, name in MODULES.items() if name == module), None)
    if module.lower() == GIVEN_MODULE:  # a given map: the kind is the model's, the map itself is not in the text
        model = fields.get("Model", "").lower()
        kind = next((kind for word, kind in MODEL_KINDS if word in model), None)
        if kind is None:
            unmapped[key] = f"{line} (module none with a model of no control kind in this lab)"
            return None, fields
        unmapped[f"{key} map"] = (f"{module} (a map of your own; the text does not carry it, so the lab's "
                                  f"{kind} detector stands in: give yours with {kind}@PATH)")
        pair = (kind, None)
    elif pair is None:
        kind = next((kind for prefix, kind in MODULE_PREFIXES if module.startswith(prefix)), None)
        if kind is None:
            unmapped[key] = f"{line} (module {module!r} has no control kind in this lab)"
            return None, fields
        unmapped[f"{key} module"] = f"{module} (run as {kind} with the lab's default detector)"
        pair = (kind, None)
    unit: dict[str, Any] = {"kind": pair[0], "method": pair[1]}
    for name, target in (("Weight", "scale"), ("Guidance Start", "start"), ("Guidance End", "end")):
        if name in fields:
            unit[target] = float(fields[name])
    if pair[0] == "canny" and "Threshold A" in fields and "Threshold B" in fields:
        try:
            unit["params"] = {"low_threshold": int(float(fields["Threshold A"])),
                              "high_threshold": int(float(fields["Threshold B"]))}
        except ValueError:
            pass
    return unit, fields


_IGNORED = {"Model", "Model hash", "VAE", "VAE hash", "Version", "Schedule type", "Size", "AnimateDiff",
            "ADetailer model"}


def _settings_dict(parsed: Mapping[str, Any], temporal: bool | None = None) -> tuple[dict[str, Any], dict[str, str],
                                                                                     dict[str, str], bool]:
    """(settings fields, unmapped fields, model names, temporal?) of a parsed infotext."""
    params = dict(parsed["params"])
    temporal = "AnimateDiff" in params if temporal is None else temporal
    values: dict[str, Any] = {"prompt": parsed["prompt"], "negative_prompt": parsed["negative_prompt"]}
    unmapped: dict[str, str] = {}
    models = {k: params[k] for k in ("Model", "Model hash", "VAE", "VAE hash") if k in params}
    simple = {"Steps": ("steps", int), "CFG scale": ("cfg", float), "Seed": ("seed", int),
              "Denoising strength": ("strength", float), "Hires upscale": ("hires", float),
              "Hires resize": ("hires_size", int), "Hires steps": ("hires_steps", int),
              "Hires denoising strength": ("hires_strength", float),
              "ADetailer denoising strength": ("face_strength", float)}
    units = []
    for key, value in params.items():
        try:
            if key in simple:
                name, kind = simple[key]
                values[name] = kind(float(value)) if kind is int else kind(value)
            elif key == "Sampler":
                scheduler = scheduler_from(value, params.get("Schedule type"))
                if scheduler is None:
                    unmapped[key] = f"{value} (no such sampler here; the default is used)"
                else:
                    values["scheduler"] = scheduler
            elif key == "Hires upscaler":
                upscaler = {v.lower(): k for k, v in HIRES_UPSCALERS.items()}.get(value.lower().split(" ")[0])
                if upscaler is None:
                    unmapped[key] = f"{value} (upscalers here: lanczos, latent)"
                else:
                    values["hires_upscaler"] = upscaler
            elif key.startswith("ControlNet ") and key[len("ControlNet "):].isdigit():
                unit, fields = _unit_from(value, unmapped, key)
                if unit is not None:
                    units.append(unit)
                    if "Model" in fields:
                        models[f"controlnet:{unit['kind']}"] = fields["Model"]
                    if "Processor Res" in fields and "detect_resolution" not in values:
                        values["detect_resolution"] = int(float(fields["Processor Res"]))
            elif key == "ADetailer model":
                values["face_detail"] = True
            elif key in (OWN_FIELD, "Lora hashes", "TI hashes") or key in _IGNORED:
                continue
            else:
                unmapped[key] = value
        except ValueError:
            unmapped[key] = f"{value} (not a number)"
    if "Size" in params and _SIZE.match(params["Size"]) and not (values.get("hires") or values.get("hires_size")):
        width, height = (int(v) for v in _SIZE.match(params["Size"]).groups())
        values["size"] = max(width, height)
    if "ControlNet 0" in params:
        values["controls"] = units
    if temporal and "AnimateDiff" in params:
        animate = {k.strip(): v.strip() for k, v in _PARAM.findall(params["AnimateDiff"])}
        for name, target in (("video_length", "frames"), ("fps", "fps"), ("context_batch_size", "context_length"),
                             ("stride", "context_stride")):
            if animate.get(name, "None").isdigit():
                values[target] = int(animate[name])
    for key in ("Lora hashes", "TI hashes"):
        if key in params:
            models[key] = params[key]
    return values, unmapped, models, temporal


def read_settings(png_or_text: str | Path | bytes | Any) -> ImportedSettings:
    """Settings from a PNG (its `parameters` chunk) or from infotext, the lab's or A1111's. Fields with no
    setting here are listed in ``unmapped``; `<lora:name:w>` tags stay in the prompt as they are."""
    from .errors import IntakeError, SettingsError
    from .settings import StaticSettings, TemporalSettings

    text = _infotext_of(png_or_text)
    parsed = parse_infotext(text)
    if not parsed["params"]:
        raise IntakeError("no A1111 parameters line found: expected a last line of 'Steps: N, Sampler: ..., "
                          "CFG scale: ...' fields (A1111's PNG Info format)")
    values, unmapped, models, temporal = _settings_dict(parsed)
    cls = TemporalSettings if temporal else StaticSettings
    if OWN_FIELD in parsed["params"]:
        try:
            own = json.loads(parsed["params"][OWN_FIELD])
        except json.JSONDecodeError:
            unmapped[OWN_FIELD] = parsed["params"][OWN_FIELD] + " (not JSON)"
        else:
            values.update(own)
            if isinstance(own, dict) and own.get("controls"):  # the lab's own units carry their given maps
                for key in [k for k in unmapped if k.startswith("ControlNet ") and k.endswith(" map")]:
                    del unmapped[key]
    values["prompt"] = _untag_listed_loras(values.get("prompt"), values.get("loras"))
    known = set(cls.__dataclass_fields__)
    for key in sorted(set(values) - known):
        unmapped[key] = f"{values.pop(key)} (no such setting for {'clips' if temporal else 'stills'})"
    try:
        settings = cls.from_dict(values)
    except (TypeError, SettingsError) as exc:
        raise SettingsError("infotext", text.splitlines()[-1][:120], "fields this lab can read",
                            f"It could not be read as settings: {exc}") from None
    return ImportedSettings(settings, "temporal" if temporal else "static", models, unmapped,
                            parsed["params"].get("Version"))


def _untag_listed_loras(prompt: Any, loras: Any) -> Any:
    """A LoRA both tagged in the prompt and listed in ``loras`` (the writer tags the listed ones) is listed once:
    its tag leaves the prompt."""
    if not isinstance(prompt, str) or not loras:
        return prompt
    names = {str(item[0]) for item in loras if isinstance(item, (list, tuple)) and item}
    text = prompt
    for name in names:
        text = re.sub(r"<\s*(?:lora|lyco)\s*:\s*" + re.escape(name) + r"\s*(?::[^<>]*)?>", " ", text,
                      flags=re.IGNORECASE)
    if text == prompt:
        return prompt
    text = re.sub(r"\s*,(\s*,)+", ",", text)  # as adapters.tags leaves a prompt whose tags it took
    return re.sub(r"[ \t]{2,}", " ", text).strip().strip(",").strip()


def _infotext_of(value: Any) -> str:
    """The infotext of a PNG path, PNG bytes, a PIL image or the text itself."""
    from .errors import IntakeError

    if hasattr(value, "info") and hasattr(value, "size"):
        return _chunk(value.info, "the image")
    if isinstance(value, bytes):
        import io

        from PIL import Image

        with Image.open(io.BytesIO(value)) as image:
            return _chunk(image.info, "the PNG bytes")
    text = str(value)
    if "\n" not in text and len(text) < 4096 and Path(text).expanduser().is_file():
        from PIL import Image

        try:
            with Image.open(Path(text).expanduser()) as image:
                return _chunk(image.info, text)
        except OSError as exc:
            raise IntakeError(f"{text} is not an image with infotext: {exc}") from None
    return text


def _chunk(info: Mapping[str, Any], where: str) -> str:
    from .errors import IntakeError

    text = info.get("parameters")
    if not isinstance(text, str) or not text.strip():
        raise IntakeError(f"{where} carries no `parameters` text chunk (A1111 infotext): nothing to import")
    return text


def unmapped_lines(imported: ImportedSettings) -> Iterable[str]:
    for key, value in imported.unmapped.items():
        yield f"not mapped: {key}: {value}"
