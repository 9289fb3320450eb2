"""Character profiles: named presets of prompt, negative prompt, suggested strength and control
scales, stored one per JSON (or YAML) file.

Profiles come from the package's ``profiles/`` folder, then from the folders listed in the
``ZREALISM_PROFILE_DIRS`` environment variable (separated by ``os.pathsep``), then from folders
passed in; a later profile with the same name replaces an earlier one. Lookup is by whole name or
whole alias only, never by substring: a query for one character must not pick another whose name
merely contains it.
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

from .errors import SettingsError
from .settings import CONTROL_KINDS, DEFAULT_NEGATIVE_PROMPT

PACKAGE_PROFILE_DIR = Path(__file__).with_name("profiles")
ENV_VAR = "ZREALISM_PROFILE_DIRS"
PROFILE_SUFFIXES = (".json", ".yaml", ".yml")

# Every packaged profile's negative prompt starts with the run default, so they all steer away from
# the same failure modes of an anime-to-photo conversion.
CORE_NEGATIVE_PROMPT = DEFAULT_NEGATIVE_PROMPT

_FIELDS = {"name", "aliases", "prompt", "negative_prompt", "strength", "control_scales", "description"}
_MAX_CONTROL_SCALE = 2.0  # diffusers accepts any float; beyond 2 a ControlNet overrides the prompt entirely


@dataclass(frozen=True)
class Profile:
    name: str
    prompt: str
    negative_prompt: str = ""
    aliases: tuple[str, ...] = ()
    strength: float | None = None  # suggested img2img strength
    control_scales: Mapping[str, float] = field(default_factory=dict)
    description: str = ""
    source: str = ""  # the file it was read from

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "aliases": list(self.aliases), "prompt": self.prompt,
                "negative_prompt": self.negative_prompt, "strength": self.strength,
                "control_scales": dict(self.control_scales), "description": self.description}


def normalise_name(text: str) -> str:
    """Lower-case, with runs of spaces, underscores and hyphens collapsed to one space."""
    return re.sub(r"[\s_\-]+", " ", text.strip().lower()).strip()


# ---------------------------------------------------------------------------------------------
# Reading and validating one file

def _field_error(path: Path, field_name: str, value: object, allowed: str) -> SettingsError:
    return SettingsError(f"{path.name}: {field_name}", value, allowed, f"Fix the profile file {path}.")


def _read_mapping(path: Path) -> dict[str, Any]:
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise SettingsError(f"{path.name}", "invalid JSON", "a JSON object",
                                f"line {error.lineno}, column {error.colno}: {error.msg}. Fix the profile file {path}."
                                ) from None
    else:
        try:
            import yaml
        except ImportError:
            raise SettingsError(f"{path.name}", "a YAML file", "JSON profile files (PyYAML is not installed)",
                                f"Install PyYAML or convert {path} to JSON.") from None
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as error:
            raise SettingsError(f"{path.name}", "invalid YAML", "a YAML mapping",
                                f"{error}. Fix the profile file {path}.") from None
    if not isinstance(data, dict):
        raise SettingsError(f"{path.name}", type(data).__name__, "an object/mapping with the profile fields",
                            f"Fix the profile file {path}.")
    return data


def _text(path: Path, data: Mapping[str, Any], name: str, required: bool = False) -> str:
    value = data.get(name, "")
    if not isinstance(value, str) or (required and not value.strip()):
        raise _field_error(path, name, value, "a non-empty text" if required else "a text")
    return value.strip()


def profile_from_mapping(data: Mapping[str, Any], path: Path | str = "<memory>") -> Profile:
    """Validate a profile's fields; errors name the file and the field."""
    from .prompts import validate_prompt

    path = Path(path)
    unknown = sorted(set(data) - _FIELDS)
    if unknown:
        raise _field_error(path, unknown[0], data[unknown[0]], "one of the fields " + ", ".join(sorted(_FIELDS)))
    name = _text(path, data, "name", required=True)
    if not normalise_name(name):
        raise _field_error(path, "name", name, "a name with letters or digits")
    prompt = _text(path, data, "prompt", required=True)
    negative_prompt = _text(path, data, "negative_prompt")
    for field_name, value in (("prompt", prompt), ("negative_prompt", negative_prompt)):
        try:
            validate_prompt(value, field_name)
        except SettingsError as error:
            raise _field_error(path, field_name, value[:40], error.allowed) from None

    aliases = data.get("aliases", [])
    if not isinstance(aliases, list) or not all(isinstance(a, str) and normalise_name(a) for a in aliases):
        raise _field_error(path, "aliases", aliases, "a list of non-empty names")

    strength = data.get("strength")
    if strength is not None and (isinstance(strength, bool) or not isinstance(strength, (int, float))
                                 or not 0.0 <= strength <= 1.0):
        raise _field_error(path, "strength", strength, "a number from 0 to 1")

    scales = data.get("control_scales", {})
    if not isinstance(scales, dict):
        raise _field_error(path, "control_scales", scales, 'an object like {"depth": 0.8, "canny": 0.5}')
    for kind, scale in scales.items():
        if kind not in CONTROL_KINDS:
            raise _field_error(path, f"control_scales.{kind}", kind, "a control kind: " + ", ".join(CONTROL_KINDS))
        if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not 0.0 <= scale <= _MAX_CONTROL_SCALE:
            raise _field_error(path, f"control_scales.{kind}", scale, f"a number from 0 to {_MAX_CONTROL_SCALE:g}")

    return Profile(name=name, prompt=prompt, negative_prompt=negative_prompt,
                   aliases=tuple(a.strip() for a in aliases),
                   strength=float(strength) if strength is not None else None,
                   control_scales={k: float(v) for k, v in scales.items()},
                   description=_text(path, data, "description"), source=str(path))


def load_profile_file(path: Path | str) -> Profile:
    path = Path(path)
    return profile_from_mapping(_read_mapping(path), path)


# ---------------------------------------------------------------------------------------------
# Folders

def profile_dirs(extra_dirs: Iterable[Path | str] = ()) -> list[Path]:
    """The folders searched, lowest priority first."""
    env = [entry for entry in os.environ.get(ENV_VAR, "").split(os.pathsep) if entry.strip()]
    return [PACKAGE_PROFILE_DIR, *(Path(entry) for entry in env), *(Path(entry) for entry in extra_dirs)]


def _load_dir(folder: Path) -> dict[str, Profile]:
    found: dict[str, Profile] = {}
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() not in PROFILE_SUFFIXES or not path.is_file():
            continue
        profile = load_profile_file(path)
        key = normalise_name(profile.name)
        if key in found:
            raise SettingsError(f"{path.name}: name", profile.name, "a name used by one file per folder",
                                f"{found[key].source} defines the same profile; rename or remove one.")
        found[key] = profile
    return found


def load_profiles(extra_dirs: Iterable[Path | str] = ()) -> dict[str, Profile]:
    """All profiles by name: the package's, then ``ZREALISM_PROFILE_DIRS``, then ``extra_dirs``;
    a later folder's profile replaces an earlier one of the same (normalised) name."""
    merged: dict[str, Profile] = {}
    for index, folder in enumerate(profile_dirs(extra_dirs)):
        if not folder.is_dir():
            if index == 0:
                continue  # an installation without packaged profiles still serves user folders
            raise SettingsError("profile folder", str(folder), "an existing folder of profile files",
                                f"Check {ENV_VAR} and the folders passed in.")
        merged.update(_load_dir(folder))
    return {profile.name: profile for profile in merged.values()}


# ---------------------------------------------------------------------------------------------
# Lookup

def find_profile(query: str, profiles: Mapping[str, Profile] | None = None) -> Profile | None:
    """The profile whose whole name, or else whole alias, equals ``query`` after normalisation;
    None if there is none. An alias shared by two profiles is an error naming both."""
    if profiles is None:
        profiles = load_profiles()
    key = normalise_name(query or "")
    if not key:
        return None
    for profile in profiles.values():
        if normalise_name(profile.name) == key:
            return profile
    matches = [p for p in profiles.values() if any(normalise_name(alias) == key for alias in p.aliases)]
    if len(matches) > 1:
        names = sorted(p.name for p in matches)
        raise SettingsError("profile", query, "a name or alias that identifies one profile",
                            f"The alias is shared by {' and '.join(names)} ({', '.join(p.source for p in matches)}); "
                            "use the profile's name or remove the alias from one of them.")
    return matches[0] if matches else None


def get_profile(name: str, profiles: Mapping[str, Profile] | None = None) -> Profile:
    """Like :func:`find_profile`, but a query that matches nothing is an error listing the names."""
    if profiles is None:
        profiles = load_profiles()
    profile = find_profile(name, profiles)
    if profile is None:
        raise SettingsError("profile", name, "one of " + ", ".join(sorted(profiles)),
                            f"Aliases work too; add your own profiles to a folder listed in {ENV_VAR}.")
    return profile


def apply_profile_strength(settings: Any) -> Any:
    """Settings with their profile's suggested strength in place of the default one: a profile's strength replaces
    the settings' default (0.70 for stills), any other strength the caller set wins. The lab, the CLI and
    run_static all go through here, so a profile means the same run on every face."""
    import dataclasses

    profile = find_profile(settings.profile) if getattr(settings, "profile", None) else None
    if profile is None or profile.strength is None:
        return settings
    default = type(settings).__dataclass_fields__["strength"].default
    if settings.strength != default or profile.strength == settings.strength:
        return settings
    return dataclasses.replace(settings, strength=profile.strength)
