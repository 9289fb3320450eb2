"""Every setting has a type and a range; bad values are refused before any model loads, naming the setting."""
from __future__ import annotations

import pytest

from zrealism_lab.errors import IntakeError, SettingsError
from zrealism_lab.settings import SPECS, ControlUnit, StaticSettings


@pytest.mark.parametrize("name, value, fragment", [
    ("strength", 1.5, "from 0.01 to 1"),
    ("strength", 0.0, "from 0.01 to 1"),
    ("steps", 0, "from 1 to 150"),
    ("steps", 2.5, "an integer"),
    ("size", 100000, "from 64 to 2048"),
    ("cfg", float("nan"), "a number"),
    ("cfg", "7", "a number"),
    ("seed", -1, "from 0"),
    ("scheduler", "k_lms_fancy", "dpmpp-2m-karras"),
    ("colour_method", "sepia", "lab-histogram"),
    ("colour_strength", 2.0, "from 0 to 1"),
    ("prompt", 42, "text"),
    ("negative_prompt", None, "text"),
    ("detect_resolution", 10, "from 64"),
    ("pose_policy", "ignore", "drop, keep"),
    ("transparent_backdrop", "purple-ish", "#1a2b3c"),
    ("lighting_hints", "yes", "true or false"),
])
def test_bad_values_are_refused_with_name_value_and_allowed(name, value, fragment):
    with pytest.raises(SettingsError) as info:
        StaticSettings().replace(**{name: value}).validated()
    message = str(info.value)
    assert f"'{name}'" in message and fragment in message
    assert info.value.name == name


def test_defaults_are_the_documented_ones():
    s = StaticSettings().validated()
    assert (s.steps, s.cfg, s.strength, s.scheduler, s.size) == (30, 7.5, 0.70, "dpmpp-2m-karras", 512)
    assert s.safety_checker is False


@pytest.mark.parametrize("unit, fragment", [
    (ControlUnit("sketch"), "one of depth, openpose, canny, lineart_anime"),
    (ControlUnit("depth", scale=3.0), "from 0 to 2"),
    (ControlUnit("depth", start=0.8, end=0.2), "greater than its start"),
])
def test_bad_control_units(unit, fragment):
    with pytest.raises(SettingsError, match=fragment):
        StaticSettings(controls=(unit,)).validated()


def test_duplicate_control_kind_refused():
    with pytest.raises(SettingsError, match="at most once"):
        StaticSettings(controls=(ControlUnit("depth"), ControlUnit("depth"))).validated()


def test_prompt_with_control_characters_refused():
    with pytest.raises(SettingsError, match="prompt"):
        StaticSettings(prompt="hello\x00world").validated()


def test_from_dict_round_trip_and_unknown_keys():
    s = StaticSettings(controls=(ControlUnit("canny", 0.4, params={"low": 50, "high": 150}),), seed=5)
    assert StaticSettings.from_dict(s.to_dict()) == s
    with pytest.raises(SettingsError, match="strenght"):
        StaticSettings.from_dict({"strenght": 0.5})


def test_every_spec_has_help_and_allowed_text():
    for spec in SPECS.values():
        assert spec.help and spec.allowed()


def test_bad_inputs_fail_before_any_model_loads(tmp_path):
    from zrealism_lab.engine.engine import Engine
    from zrealism_lab.generate.static import run_static

    engine = Engine("realistic-vision", device="cpu")  # no weights here: any load attempt would fail differently
    with pytest.raises(IntakeError, match="does not exist|not found|No such"):
        run_static(tmp_path / "missing.png", StaticSettings(), engine=engine)
    with pytest.raises(SettingsError, match="strength"):
        run_static(tmp_path / "missing.png", StaticSettings(strength=1.5), engine=engine)
    assert engine.loaded_roles() == []


def test_controls_must_be_control_units():
    with pytest.raises(SettingsError, match="ControlUnit"):
        StaticSettings(controls=("depth",)).validated()


def test_steps_times_strength_must_leave_one_step():
    with pytest.raises(SettingsError, match="steps x strength"):
        StaticSettings(steps=4, strength=0.2).validated()
    StaticSettings(steps=4, strength=0.25).validated()
