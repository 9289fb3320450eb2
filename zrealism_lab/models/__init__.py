"""Model sets, loading and the tiny offline bundle."""
from .modelset import PRESETS, ComponentRef, ModelSet, cache_dir, resolve_modelset, tiny_modelset

__all__ = ["PRESETS", "ComponentRef", "ModelSet", "cache_dir", "resolve_modelset", "tiny_modelset"]
