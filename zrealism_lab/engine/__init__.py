"""The shared engine: model components loaded once per session, and every pipeline built over them."""
from .engine import BASE_PARTS, Engine, get_engine, local_weights_fingerprint, release_offload

__all__ = ["BASE_PARTS", "Engine", "get_engine", "local_weights_fingerprint", "release_offload"]
