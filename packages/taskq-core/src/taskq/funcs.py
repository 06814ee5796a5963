"""taskiq's ``funcs`` path: `gather`."""

from taskq.gather import gather

__all__ = ["gather"]
