"""The Controls tab's Adapters section: each LoRA found (a switch and a weight slider), each embedding found (a
switch; its token is the name to type in a prompt), and the IP-Adapter (variant and scale). "Rescan" lists the
folders again after files were added."""
from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import ipywidgets as w

from ..settings import LORA_WEIGHT_SPEC, SPECS, StaticSettings
from .widgets import classed, section

ADAPTER_SETTINGS = ("loras", "embeddings", "ip_adapter", "ip_adapter_scale")


def adapter_models(preset: str) -> Any:
    """The model set whose folders are listed, without building anything (the tiny adapters appear once the tiny
    bundle has been built by a first run, then Rescan lists them)."""
    from ..models.modelset import resolve_modelset, tiny_bundle_dir, tiny_modelset

    if preset == "tiny":
        return tiny_modelset(tiny_bundle_dir(), build=False)
    try:
        return resolve_modelset(preset)
    except Exception:  # noqa: BLE001 - an unusable preset shows no adapters; the Model tab says why
        return None


class AdapterRows:
    """The section's widgets and the adapter settings they give."""

    def __init__(self, preset: str, base: StaticSettings) -> None:
        self.preset = preset
        self.lora_box = classed(w.VBox([]), "zr-lora-rows")
        self.embedding_box = classed(w.VBox([]), "zr-embedding-rows")
        self.lora_rows: dict[str, tuple[w.Checkbox, w.FloatSlider]] = {}
        self.embedding_boxes: dict[str, w.Checkbox] = {}
        scale = SPECS["ip_adapter_scale"]
        self.ip_choice = classed(w.Dropdown(options=[("off", "")], value="", description="IP-Adapter",
                                            style={"description_width": "90px"}), "zr-ip-adapter")
        self.ip_scale = classed(w.FloatSlider(value=base.ip_adapter_scale, min=scale.minimum, max=scale.maximum,
                                              step=scale.step, description="scale", continuous_update=False,
                                              readout_format=".2f", style={"description_width": "40px"},
                                              layout=w.Layout(width="260px", min_width="190px")), "zr-ip-scale")
        self.note = classed(w.HTML(""), "zr-adapters-note")
        self.rescan_button = classed(w.Button(description="Rescan", icon="refresh",
                                              tooltip="list the LoRA and embedding folders again"), "zr-adapters-rescan")
        self.rescan_button.on_click(lambda _: self.rescan())
        self.rescan(base)

    def widgets(self) -> list[w.Widget]:
        wrap = w.Layout(flex_flow="row wrap", align_items="center")
        return [section("Adapters (LoRA, embeddings, IP-Adapter)"), self.lora_box, self.embedding_box,
                w.HBox([self.ip_choice, self.ip_scale], layout=wrap), w.HBox([self.rescan_button, self.note],
                                                                             layout=wrap)]

    def rescan(self, settings: StaticSettings | None = None) -> None:
        """List what the folders hold now, keeping the current choices (or those of ``settings``)."""
        from ..adapters.inventory import list_embeddings, list_loras
        from ..adapters.plan import IP_ADAPTERS

        current = settings if settings is not None else self._chosen()
        models = adapter_models(self.preset)
        loras = sorted(list_loras(models)) if models is not None else []
        embeddings = sorted(list_embeddings(models)) if models is not None else []
        weights = dict(current.loras) if current is not None else {}
        for name, _ in weights.items():  # a LoRA the settings name but the folders lack (a path, a hub id)
            if name not in loras:
                loras.append(name)
        self.lora_rows = {name: self._lora_row(name, weights.get(name)) for name in loras}
        self.lora_box.children = [w.HBox([box, slider], layout=w.Layout(flex_flow="row wrap"))
                                  for box, slider in self.lora_rows.values()]
        chosen = set(current.embeddings) if current is not None else set()
        self.embedding_boxes = {name: classed(w.Checkbox(value=name in chosen, indent=False,
                                                         description=f"embedding {name}"), f"zr-embedding-{name}")
                                for name in sorted(set(embeddings) | chosen)}
        self.embedding_box.children = list(self.embedding_boxes.values())
        options = [("off", "")]
        if models is not None and models.ip_adapter is not None:
            ref = models.ip_adapter  # a local repository offers the variants it holds; the hub all of them
            options += [(name, name) for name in IP_ADAPTERS if ref.kind != "folder"
                        or (Path(ref.location) / "models" / f"{name}.safetensors").is_file()]
        ip = current.ip_adapter if current is not None else None
        if ip and ip not in dict(options).values():
            options.append((ip, ip))
        self.ip_choice.options = options
        self.ip_choice.value = ip or ""
        if current is not None:
            self.ip_scale.value = current.ip_adapter_scale
        found = f"{len(self.lora_rows)} LoRA(s), {len(self.embedding_boxes)} embedding(s)"
        where = ("folders: $ZREALISM_LORA_DIRS, $ZREALISM_EMBEDDING_DIRS"
                 + (", the tiny preset's own (after its first run)" if self.preset == "tiny" else ""))
        self.note.value = f'<span class="zr-caption">{html.escape(found)}; {html.escape(where)}</span>'

    def _lora_row(self, name: str, weight: float | None) -> tuple[w.Checkbox, w.FloatSlider]:
        slug = "".join(ch if ch.isalnum() or ch in "-_" else "-" for ch in name)
        box = classed(w.Checkbox(value=weight is not None, indent=False, description=f"LoRA {name}",
                                 layout=w.Layout(width="240px")), f"zr-lora-{slug}-enabled")
        slider = classed(w.FloatSlider(value=1.0 if weight is None else weight, min=-2.0, max=2.0,
                                       step=LORA_WEIGHT_SPEC.step, description="weight", continuous_update=False,
                                       readout_format=".2f", tooltip=LORA_WEIGHT_SPEC.help,
                                       style={"description_width": "50px"},
                                       layout=w.Layout(width="300px", min_width="200px")), f"zr-lora-{slug}-weight")
        return box, slider

    def _chosen(self) -> StaticSettings | None:
        try:
            return StaticSettings(**self.values())
        except (TypeError, ValueError):
            return None

    def values(self) -> dict[str, Any]:
        """The adapter settings the widgets show."""
        return {"loras": tuple((name, round(slider.value, 4)) for name, (box, slider) in self.lora_rows.items()
                               if box.value),
                "embeddings": tuple(name for name, box in self.embedding_boxes.items() if box.value),
                "ip_adapter": self.ip_choice.value or None, "ip_adapter_scale": float(self.ip_scale.value)}

    def apply(self, settings: StaticSettings) -> None:
        """Show a run's adapters ("send to Controls")."""
        self.rescan(settings)


def adapters_html(adapters: dict[str, Any]) -> str:
    """One line naming the adapters a run applied (empty when none), for the Results tab."""
    parts = [f"LoRA {html.escape(str(lora['name']))} {lora['weight']:g}" for lora in adapters.get("loras") or ()]
    parts += [f"embedding {html.escape(str(e['token']))}" for e in adapters.get("embeddings") or ()]
    ip = adapters.get("ip_adapter")
    if ip:
        parts.append(f"IP-Adapter {html.escape(str(ip['name']))} {ip['scale']:g}")
    if not parts:
        return ""
    fused = " (fused)" if adapters.get("lora_fuse") else ""
    return f'<div class="zr-result-adapters">adapters{fused}: {" · ".join(parts)}</div>'
