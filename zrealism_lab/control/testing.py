"""Random-weight annotator checkpoints of the real controlnet-aux architectures, for tests and offline demos.

They are written under the file names and in the key layout of the official files, so a folder of them loads
through the same controlnet-aux loading code (and the lab's pickle policy) as the real checkpoints. Their maps
are not meant to look like anything. Sizes: lineart_anime 218 MB, openpose 510 MB (three files), depth
(MiDaS DPT-Hybrid) 493 MB.
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any, Callable, Iterable

from ..errors import SettingsError
from .annotators import ANNOTATORS, DEPRECATED_TIMM_NAME, import_controlnet_aux

# Sub-networks whose checkpoints drop the first part of each state-dict key: controlnet-aux's
# open_pose.util.transfer adds it back (e.g. "conv1_1.weight" -> "model0.conv1_1.weight").
_PREFIXLESS = {"body_pose_model.pth", "hand_pose_model.pth"}


def _architectures() -> dict[str, Callable[[], Any]]:
    import functools

    import torch.nn as nn

    import_controlnet_aux()
    from controlnet_aux.lineart_anime import UnetGenerator
    from controlnet_aux.midas.midas.dpt_depth import DPTDepthModel
    from controlnet_aux.open_pose.face import FaceNet
    from controlnet_aux.open_pose.model import bodypose_model, handpose_model

    instance_norm = functools.partial(nn.InstanceNorm2d, affine=False, track_running_stats=False)
    # Constructors as the detectors' from_pretrained / MiDaS load_model build them.
    return {
        "netG.pth": lambda: UnetGenerator(3, 1, 8, 64, norm_layer=instance_norm, use_dropout=False),
        "body_pose_model.pth": bodypose_model,
        "hand_pose_model.pth": handpose_model,
        "facenet.pth": FaceNet,
        "dpt_hybrid-midas-501f0c75.pt": lambda: DPTDepthModel(path=None, backbone="vitb_rn50_384",
                                                             non_negative=True),
    }


def annotator_files(kinds: Iterable[str]) -> list[str]:
    """File names of the checkpoint-backed methods of ``kinds``."""
    names: list[str] = []
    for kind in kinds:
        specs = [spec for (k, _), spec in ANNOTATORS.items() if k == kind]
        if not specs:
            known = sorted({k for k, _ in ANNOTATORS})
            raise SettingsError("kinds", kind, "a kind with annotator checkpoints: " + ", ".join(known))
        names += [name for spec in specs for name in spec.files if name not in names]
    return names


def write_random_annotator_checkpoints(folder: str | os.PathLike, kinds: Iterable[str] = ("lineart_anime",),
                                       seed: int = 0) -> list[Path]:
    """Write random-weight checkpoints for the detectors of ``kinds`` into ``folder``; returns the paths."""
    import torch

    names = annotator_files(kinds)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    builders = _architectures()
    paths = []
    for index, name in enumerate(names):
        with torch.random.fork_rng(devices=[]), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=DEPRECATED_TIMM_NAME)
            torch.manual_seed(seed + index)
            state = builders[name]().state_dict()
        if name in _PREFIXLESS:
            state = {key.split(".", 1)[1]: value for key, value in state.items()}
        path = folder / name
        torch.save(state, path)
        paths.append(path)
    return paths


def blank_openpose_body(folder: str | os.PathLike) -> Path:
    """Zero the body model's heatmap head in ``folder``: the real detector then finds nobody, every time, as it
    often does on anime art. For testing the empty-pose path deterministically."""
    import torch

    path = Path(folder) / "body_pose_model.pth"
    state = torch.load(path, weights_only=True)
    for key in state:
        if key.startswith("Mconv7_stage6_L2."):  # the last stage's keypoint heatmaps
            state[key] = torch.zeros_like(state[key])
    torch.save(state, path)
    return path
