"""The Controls tab: one small builder per section (profile and prompts, control units, generation, colour
anchoring, refinement), listed in ``ControlsTab.control_sections`` so a new section is one more builder; and the
settings read back from every field, with every problem named at once."""
from __future__ import annotations

from typing import Any, Callable, Mapping

import ipywidgets as w

from ..errors import SettingsError
from ..settings import SPECS, UNIT_SPECS, ControlUnit, StaticSettings
from ..speed import SPEEDS
from ..speed_status import speed_note
from .adapters_section import ADAPTER_SETTINGS, adapter_models
from .fields import SpecField
from .state import size_note
from .views import message_html
from .widgets import UnitRow, classed, section


def default_control_methods(preset: str) -> dict[str, str]:
    from ..models import modelset

    return modelset.default_control_methods(preset)


def default_units(preset: str) -> tuple[ControlUnit, ...]:
    """The preset's documented default control units, without building the tiny bundle just to read them."""
    from ..models import modelset

    return modelset.default_controls_for(preset if preset in ("tiny", "realistic-vision") else "realistic-vision")


class ControlsTab:
    """Builds the Controls tab into ``self.fields`` (SpecFields by setting name, made by the layout before the
    tabs are built) and ``self.unit_rows``."""

    fields: dict[str, SpecField]
    unit_rows: dict[str, UnitRow]
    base_settings: StaticSettings

    def _build_controls_tab(self, preset: str, base: StaticSettings, profiles: Mapping[str, Any],
                            profile_problem: str) -> w.Widget:
        self.control_sections: list[Callable[[], list[w.Widget]]] = [
            lambda: self._profile_section(base, profiles, profile_problem),
            lambda: self._units_section(preset, base),
            lambda: self._generation_section(base, preset),
            lambda: self._colour_section(base),
            lambda: self._refinement_section(base),
            lambda: self._adapters_section(preset, base),
        ]
        children: list[w.Widget] = []
        for build in self.control_sections:
            children += build()
        return classed(w.VBox(children), "zr-controls-tab")

    def _profile_section(self, base: StaticSettings, profiles: Mapping[str, Any], problem: str) -> list[w.Widget]:
        from ..prompts import validate_prompt

        f = self.fields
        # "" stands for no profile: a Dropdown shows a None value as no selection at all
        options = [("none", "")] + [(name, name) for name in sorted(profiles)]
        f["profile"] = SpecField(SPECS["profile"], base.profile if base.profile in profiles else "", options=options)
        self.profile_info = classed(w.HTML(message_html(problem, "warn")), "zr-profile-info")
        f["prompt"] = SpecField(SPECS["prompt"], base.prompt, kind="textarea")
        f["negative_prompt"] = SpecField(SPECS["negative_prompt"], base.negative_prompt, kind="textarea")
        for name in ("prompt", "negative_prompt"):
            f[name].set_extra_check(_rule(validate_prompt, name))
        return [section("Character profile and prompts"), f["profile"].row, self.profile_info, f["prompt"].row,
                f["negative_prompt"].row]

    def _units_section(self, preset: str, base: StaticSettings) -> list[w.Widget]:
        from ..control import CONTROL_PROVIDERS

        kinds = [k for k in CONTROL_PROVIDERS.names() if k in UNIT_SPECS["kind"].choices()]
        units = base.controls if base.controls is not None else default_units(preset)
        defaults = {u.kind: u for u in units}
        methods = default_control_methods(preset)  # the detectors a unit naming none uses (tiny: weightless ones)
        self.unit_rows = {kind: UnitRow(kind, CONTROL_PROVIDERS.get(kind), defaults.get(kind), methods.get(kind))
                          for kind in kinds}
        self.maps_button = classed(w.Button(description="Preview maps", icon="eye",
                                            tooltip="detect the maps of the enabled kinds (no diffusion model)"),
                                   "zr-maps-button")
        return [section("Control units (MultiControlNet)"), *[row.row for row in self.unit_rows.values()],
                self.maps_button]

    def _generation_section(self, base: StaticSettings, preset_name: str) -> list[w.Widget]:
        from ..schedulers import SCHEDULERS

        f = self.fields
        f["strength"] = SpecField(SPECS["strength"], base.strength, kind="slider")
        f["steps"] = SpecField(SPECS["steps"], base.steps)
        f["cfg"] = SpecField(SPECS["cfg"], base.cfg, kind="slider", label="CFG")
        self.randomise_button = classed(w.Button(description="", icon="dice", tooltip="draw a random seed",
                                                 layout=w.Layout(width="40px")), "zr-randomise-seed")
        self.reuse_seed_button = classed(w.Button(description="", icon="recycle", disabled=True,
                                                  tooltip="reuse the seed of the last finished run",
                                                  layout=w.Layout(width="40px")), "zr-reuse-seed")
        f["seed"] = SpecField(SPECS["seed"], base.seed, extra=[self.randomise_button, self.reuse_seed_button])
        f["scheduler"] = SpecField(SPECS["scheduler"], base.scheduler,
                                   options=[(choice.label, name) for name, choice in SCHEDULERS.items()])
        f["size"] = SpecField(SPECS["size"], base.size, label="size (long side)")
        f["size"].set_note(lambda value: size_note(value, self.source_size))
        f["speed"] = SpecField(SPECS["speed"], base.speed, options=list(SPEEDS))
        # the preset picked now (the Lab's picker), the one the tab was built for until the picker exists
        f["speed"].set_note(lambda value: speed_note(value, adapter_models(getattr(self, "preset", preset_name))))
        return [section("Generation"), f["speed"].row, f["strength"].row, f["steps"].row, f["cfg"].row,
                f["seed"].row, f["scheduler"].row, f["size"].row]

    def _colour_section(self, base: StaticSettings) -> list[w.Widget]:
        from ..colour import COLOUR_METHODS

        f = self.fields
        f["colour_method"] = SpecField(SPECS["colour_method"], base.colour_method, options=COLOUR_METHODS.names(),
                                       label="colour anchoring")
        f["colour_strength"] = SpecField(SPECS["colour_strength"], base.colour_strength, kind="slider",
                                         label="colour strength")
        return [section("Colour anchoring"), f["colour_method"].row, f["colour_strength"].row]

    def _refinement_section(self, base: StaticSettings) -> list[w.Widget]:
        # The refinement passes' two switches; their finer settings stay with the CLI and Python.
        f = self.fields
        f["hires"] = SpecField(SPECS["hires"], base.hires, label="hires fix (factor)")
        f["hires_strength"] = SpecField(SPECS["hires_strength"], base.hires_strength, kind="slider",
                                        label="hires strength")
        f["face_detail"] = SpecField(SPECS["face_detail"], base.face_detail, label="face detail")
        return [section("Refinement"), f["hires"].row, f["hires_strength"].row, f["face_detail"].row]

    def _adapters_section(self, preset: str, base: StaticSettings) -> list[w.Widget]:
        from .adapters_section import AdapterRows

        self.adapter_rows = AdapterRows(preset, base)
        return self.adapter_rows.widgets()

    @property
    def source_size(self) -> tuple[int, int] | None:
        """The current source's (width, height) once decoded (the size note and the preflight use it)."""
        return getattr(self, "_source_size", None)

    # ------------------------------------------------------------------------------------------- reading back
    def field_problems(self) -> list[tuple[str, str, Any, str]]:
        """(setting, label, value, message) of every field and unit that is not valid now, in screen order."""
        found = []
        for name, field in self.fields.items():
            problem = field.validate()
            if problem:
                found.append((name, field.label, field.input.value, problem))
        for kind, row in self.unit_rows.items():
            if row.enabled.value and row.validate():
                found.append((f"controls[{kind}].end", f"{row.label} end", row.end.value,
                              f"expected a value greater than its start ({row.start.value:g})"))
        return found

    def current_settings(self) -> StaticSettings:
        """The settings the widgets show, checked like the CLI checks them. Raises SettingsError (the first
        problem; ``field_problems`` lists them all), and marks the field, when something is out of range."""
        problems = self.field_problems()
        if problems:
            name, _, value, message = problems[0]
            raise SettingsError(name, value, message.removeprefix("expected "))
        values = {name: field.value for name, field in self.fields.items()}
        units = tuple(u for u in (row.unit() for row in self.unit_rows.values()) if u is not None)
        settings = self.base_settings.replace(**values, **self.adapter_rows.values(), controls=units)
        try:
            return settings.validated()
        except SettingsError as exc:
            if exc.name in self.fields:
                self.fields[exc.name].show(f"expected {exc.allowed}")
            raise

    def apply_settings(self, settings: Any) -> list[str]:
        """Put a run's settings into the fields and unit rows ("send to Controls"); returns the settings that no
        field shows (they stay as the lab's base settings)."""
        data = settings.to_dict()
        for name, field in self.fields.items():
            if name in data:
                value = data[name]
                if name == "profile" and value is None:
                    value = ""
                try:
                    field.value = value
                except Exception:  # noqa: BLE001 - an option this lab does not offer (e.g. a removed profile)
                    continue
        controls = settings.controls if settings.controls is not None else \
            default_units(str(getattr(self, "preset", "realistic-vision")))
        units = {u.kind: u for u in controls}
        for kind, row in self.unit_rows.items():
            row.apply(units.get(kind))
        self.adapter_rows.apply(settings)
        shown = set(self.fields) | {"controls", *ADAPTER_SETTINGS}
        base = {k: v for k, v in data.items() if k not in shown and k in StaticSettings.__dataclass_fields__}
        try:
            self.base_settings = self.base_settings.replace(**{k: getattr(settings, k) for k in base})
        except (TypeError, ValueError):
            pass
        return sorted(base)


def _rule(check: Callable[[Any, str], Any], name: str) -> Callable[[Any], str | None]:
    """A registry check that raises SettingsError, as a field rule that returns the message instead."""

    def rule(value: Any) -> str | None:
        try:
            check(value, name)
        except SettingsError as exc:
            return f"expected {exc.allowed}"
        return None

    return rule


__all__ = ["ControlsTab", "default_control_methods", "default_units"]
