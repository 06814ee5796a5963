"""Text from a queue or a store, made safe to print to a terminal.

Task names, error messages, worker host names and dead-letter reasons come from whoever sent
or ran a task: printed as they are, an escape sequence in one of them would move the cursor,
recolour or clear the screen, retitle the window or hide the lines around it.
"""

from __future__ import annotations

from taskq.task_events import storable_text

#: Each control character (C0, DEL, C1) as the escape that shows it: ``\x1b``, ``\n``...
_ESCAPES = {code: repr(chr(code))[1:-1] for code in (*range(0x20), 0x7F, *range(0x80, 0xA0))}


def printable(text: str) -> str:
    r"""``text`` with each control character (escape, newline, tab...) shown as its escape.

    So is each lone surrogate (``\udcff``), which no terminal's encoding can write.
    """
    return storable_text(text).translate(_ESCAPES)
