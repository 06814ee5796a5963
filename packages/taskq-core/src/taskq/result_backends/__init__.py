"""Result backends core provides: `DummyResultBackend`, the default that keeps nothing."""

from taskq.result_backends.dummy import DummyResultBackend

__all__ = ["DummyResultBackend"]
