"""Old import paths of modules that moved when the package was grouped by data flow, kept working.

``import zrealism_lab.static`` gives the very module object ``zrealism_lab.generate.static`` (one module, two names),
so isinstance checks, monkeypatching and pickles made under the old name keep working."""
from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
from typing import Any

MOVED_MODULES = {
    "zrealism_lab.intake": "zrealism_lab.source.intake",
    "zrealism_lab.video": "zrealism_lab.source.video",
    "zrealism_lab.background": "zrealism_lab.source.background",
    "zrealism_lab.preparation": "zrealism_lab.source.preparation",
    "zrealism_lab.samples": "zrealism_lab.source.samples",
    "zrealism_lab.fullsize": "zrealism_lab.models.fullsize",
    "zrealism_lab.sharing": "zrealism_lab.engine.sharing",
    "zrealism_lab.static": "zrealism_lab.generate.static",
    "zrealism_lab.temporal": "zrealism_lab.generate.temporal",
    "zrealism_lab.rerun": "zrealism_lab.generate.rerun",
    "zrealism_lab.report_support": "zrealism_lab.reports.notebook",
    "zrealism_lab.lab.media": "zrealism_lab.reports.media",
    "zrealism_lab.temporal_cli": "zrealism_lab.cli.run",
    "zrealism_lab.reports_cli": "zrealism_lab.cli.report",
    "zrealism_lab.sweep_cli": "zrealism_lab.cli.sweep",
    "zrealism_lab.metrics.command": "zrealism_lab.cli.metrics",
    "zrealism_lab.demo": "zrealism_lab.cli.demo",
}


class MovedModuleFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Resolves an old module name to the module at its new place."""

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> importlib.machinery.ModuleSpec | None:
        if fullname not in MOVED_MODULES:
            return None
        return importlib.machinery.ModuleSpec(fullname, self)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> Any:
        # The new module keeps its own __name__ and __spec__ (import machinery only fills attributes that are unset)
        return importlib.import_module(MOVED_MODULES[spec.name])

    def exec_module(self, module: Any) -> None:
        """Already executed under its new name."""


def install() -> None:
    if not any(isinstance(finder, MovedModuleFinder) for finder in sys.meta_path):
        sys.meta_path.append(MovedModuleFinder())
