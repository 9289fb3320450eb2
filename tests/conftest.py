"""Shared fixtures. The suite must never touch the network: any non-loopback connection fails the test."""
from __future__ import annotations

import ipaddress
import os
import socket
import tempfile
from pathlib import Path

import pytest

# One cache for the whole session: the tiny bundle is built once and shared by every test (and CI may point
# ZREALISM_CACHE at a folder kept between runs). The hub cache is always a fresh empty folder, so "weights missing"
# behaviour never depends on what happens to be downloaded on the machine.
_SESSION_DIR = Path(tempfile.mkdtemp(prefix="zrealism-tests-"))
os.environ.setdefault("ZREALISM_CACHE", str(_SESSION_DIR / "cache"))
os.environ["HF_HOME"] = str(_SESSION_DIR / "hf-home")
os.environ["HF_HUB_CACHE"] = str(_SESSION_DIR / "hf-home" / "hub")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("MPLBACKEND", "Agg")


class NetworkAccessError(RuntimeError):
    pass


def _is_loopback(address) -> bool:
    if isinstance(address, tuple) and address:
        host = address[0]
    else:  # AF_UNIX paths are local by definition
        return True
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex


def _guarded_connect(self, address):
    if not _is_loopback(address):
        raise NetworkAccessError(f"test tried to open a network connection to {address!r}")
    return _real_connect(self, address)


def _guarded_connect_ex(self, address):
    if not _is_loopback(address):
        raise NetworkAccessError(f"test tried to open a network connection to {address!r}")
    return _real_connect_ex(self, address)


socket.socket.connect = _guarded_connect
socket.socket.connect_ex = _guarded_connect_ex


@pytest.fixture(scope="session")
def tiny_engine():
    """The session's engine on the tiny bundle (built once into the session cache)."""
    from zrealism_lab.engine.engine import get_engine

    return get_engine("tiny", device="cpu")


@pytest.fixture(scope="session")
def tiny_bundle(tiny_engine) -> Path:
    return Path(tiny_engine.models.base.location)


@pytest.fixture()
def small_settings():
    """Fast static settings: 64 px, 2 denoising steps."""
    from zrealism_lab.settings import StaticSettings

    return StaticSettings(size=64, steps=4, strength=0.5, detect_resolution=64)


@pytest.fixture(scope="session")
def sample_64(tmp_path_factory) -> Path:
    """A bundled sample character saved at 64 px (transparent background)."""
    from zrealism_lab.source.samples import load_sample

    path = tmp_path_factory.mktemp("samples") / "transparent_64.png"
    load_sample("transparent").resize((64, 64)).save(path)
    return path
