from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from zrealism_lab.errors import SettingsError
from zrealism_lab.profiles import (CORE_NEGATIVE_PROMPT, ENV_VAR, Profile, find_profile, get_profile,
                                   load_profile_file, load_profiles, normalise_name)


@pytest.fixture(autouse=True)
def _no_user_profile_dirs(monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)


def _write(folder: Path, filename: str, **fields) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    data = {"name": filename.rsplit(".", 1)[0], "prompt": "a photo"} | fields
    path = folder / filename
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def _profiles(*specs: tuple[str, list[str]]) -> dict[str, Profile]:
    return {name: Profile(name=name, prompt="p", aliases=tuple(aliases)) for name, aliases in specs}


def test_packaged_profiles_load_and_are_valid():
    profiles = load_profiles()
    assert {"default", "martial-artist", "schoolgirl-uniform", "armoured-knight", "sci-fi-pilot",
            "elderly-wizard"} <= set(profiles)
    for profile in profiles.values():
        assert profile.prompt and profile.description
        assert profile.negative_prompt.startswith(CORE_NEGATIVE_PROMPT)
        assert profile.strength is not None and 0 < profile.strength <= 1
        assert profile.control_scales and all(0 <= s <= 2 for s in profile.control_scales.values())
        assert Path(profile.source).name.endswith(".json")
    assert profiles["default"].to_dict()["control_scales"]["depth"] == pytest.approx(0.8)


def test_normalisation_collapses_case_spaces_underscores_and_hyphens():
    assert normalise_name("  Sci_Fi--Pilot ") == normalise_name("sci fi pilot") == "sci fi pilot"


def test_find_matches_whole_names_and_aliases_only():
    profiles = _profiles(("goku black", []), ("kenji", ["ken-ji"]), ("armoured-knight", ["Paladin", "knight"]))
    assert find_profile("Goku Black", profiles).name == "goku black"
    assert find_profile("goku_black", profiles).name == "goku black"
    # The substring trap: a shorter query never picks a longer name that contains it.
    assert find_profile("goku", profiles) is None
    assert find_profile("ken", profiles) is None
    assert find_profile("black", profiles) is None
    assert find_profile("KEN JI", profiles).name == "kenji"
    assert find_profile("  paladin ", profiles).name == "armoured-knight"
    assert find_profile("Armoured Knight", profiles).name == "armoured-knight"
    assert find_profile("", profiles) is None


def test_packaged_aliases_resolve():
    assert find_profile("Armored_Knight").name == "armoured-knight"
    assert find_profile("wizard").name == "elderly-wizard"
    assert find_profile("sci fi pilot").name == "sci-fi-pilot"
    assert find_profile("pilot knight") is None


def test_name_wins_over_another_profiles_alias():
    profiles = _profiles(("knight", []), ("armoured-knight", ["knight"]))
    assert find_profile("knight", profiles).name == "knight"


def test_ambiguous_alias_names_both_profiles():
    profiles = _profiles(("red-mage", ["mage"]), ("white-mage", ["Mage"]))
    with pytest.raises(SettingsError) as error:
        find_profile("mage", profiles)
    assert "red-mage" in str(error.value) and "white-mage" in str(error.value)


def test_get_profile_lists_the_names_when_nothing_matches():
    with pytest.raises(SettingsError) as error:
        get_profile("goku")
    message = str(error.value)
    assert "goku" in message and "default" in message and "elderly-wizard" in message
    assert get_profile("Martial Artist").name == "martial-artist"


def test_user_folders_override_package_profiles(tmp_path, monkeypatch):
    env_dir, arg_dir = tmp_path / "env", tmp_path / "arg"
    _write(env_dir, "default.json", name="Default", prompt="env prompt", strength=0.4)
    _write(env_dir, "my-hero.json", name="my hero", aliases=["hero"], prompt="hero prompt")
    _write(arg_dir, "notes.txt")  # not a profile file: ignored
    _write(arg_dir, "my_hero.json", name="My_Hero", prompt="argument prompt")
    monkeypatch.setenv(ENV_VAR, os.pathsep.join([str(env_dir), ""]))

    profiles = load_profiles()
    assert find_profile("default", profiles).prompt == "env prompt"
    assert find_profile("default", profiles).strength == pytest.approx(0.4)
    assert find_profile("hero", profiles).prompt == "hero prompt"
    assert "martial-artist" in profiles  # the other packaged profiles stay

    profiles = load_profiles([arg_dir])  # arguments come last and win
    assert find_profile("my hero", profiles).prompt == "argument prompt"
    assert sum(normalise_name(name) == "my hero" for name in profiles) == 1


def test_yaml_profiles_are_read(tmp_path):
    pytest.importorskip("yaml")
    (tmp_path / "ranger.yml").write_text(
        "name: ranger\naliases: [archer]\nprompt: a ranger in a green cloak\ncontrol_scales:\n  depth: 0.7\n",
        encoding="utf-8")
    profile = find_profile("archer", load_profiles([tmp_path]))
    assert profile.name == "ranger" and profile.control_scales == {"depth": 0.7}


def test_missing_user_folder_is_an_error(tmp_path):
    with pytest.raises(SettingsError, match="profile folder"):
        load_profiles([tmp_path / "nope"])


@pytest.mark.parametrize("fields, field_name", [
    ({"prompt": ""}, "prompt"),
    ({"strength": 1.5}, "strength"),
    ({"strength": "high"}, "strength"),
    ({"aliases": "hero"}, "aliases"),
    ({"aliases": ["ok", ""]}, "aliases"),
    ({"control_scales": {"depth": 3}}, "control_scales.depth"),
    ({"control_scales": {"normal": 0.5}}, "control_scales.normal"),
    ({"control_scales": [0.5]}, "control_scales"),
    ({"colour": "red"}, "colour"),
    ({"name": "  "}, "name"),
    ({"negative_prompt": "bad\x00text"}, "negative_prompt"),
])
def test_malformed_fields_name_the_file_and_field(tmp_path, fields, field_name):
    path = _write(tmp_path, "broken.json", **fields)
    with pytest.raises(SettingsError) as error:
        load_profile_file(path)
    assert f"broken.json: {field_name}" in str(error.value)


def test_invalid_json_names_the_file_and_position(tmp_path):
    path = tmp_path / "typo.json"
    path.write_text('{"name": "typo", "prompt": "x",}', encoding="utf-8")
    with pytest.raises(SettingsError) as error:
        load_profiles([tmp_path])
    assert "typo.json" in str(error.value) and "line 1" in str(error.value)
    (tmp_path / "typo.json").write_text('["not", "an", "object"]', encoding="utf-8")
    with pytest.raises(SettingsError, match="typo.json"):
        load_profiles([tmp_path])


def test_two_files_with_one_name_in_a_folder_is_an_error(tmp_path):
    _write(tmp_path, "a.json", name="twin")
    _write(tmp_path, "b.json", name="Twin")
    with pytest.raises(SettingsError) as error:
        load_profiles([tmp_path])
    assert "a.json" in str(error.value) and "b.json" in str(error.value)
