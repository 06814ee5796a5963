"""Frames that fit no protocol message: ignored, logged once per peer, counted."""

from __future__ import annotations

import logging

logger = logging.getLogger("taskq.zmq")

#: Peers remembered as already warned about; beyond this many, bad frames are only counted.
MAX_WARNED_PEERS = 4096


class BadFrames:
    """Logs the first bad frame of each peer and counts the rest, so a flood cannot fill the log.

    Args:
        side: who is receiving, for the log lines (``"client"`` or ``"worker"``).
    """

    def __init__(self, side: str) -> None:
        """Start with no peer warned and nothing counted."""
        self.side = side
        self.count = 0
        self._warned: set[bytes] = set()

    def report(self, peer: bytes, reason: object) -> None:
        """Note one bad frame from ``peer`` (its routing id, ``b""`` when unknown)."""
        self.count += 1
        if peer in self._warned or len(self._warned) >= MAX_WARNED_PEERS:
            return
        self._warned.add(peer)
        logger.warning(
            "The ZeroMQ %s ignores a frame that does not fit the protocol from peer %s: %s "
            "(further ones from that peer are only counted)",
            self.side,
            peer[:16].hex() or "(its only peer)",
            reason,
        )

    def summary(self) -> None:
        """Log how many bad frames were ignored in all, if more than were logged."""
        if self.count > len(self._warned):
            logger.warning(
                "The ZeroMQ %s ignored %d frames that did not fit the protocol",
                self.side,
                self.count,
            )
