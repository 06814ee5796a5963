"""Loopback addresses on free ports, so tests never collide."""

from __future__ import annotations

import socket

import pytest


@pytest.fixture
def address() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"tcp://127.0.0.1:{port}"
