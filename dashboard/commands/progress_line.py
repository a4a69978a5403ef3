"""The CLI's progress line: on a terminal, one line of stderr names the step running now.

Only on a terminal: stdout stays exactly the result (``--json`` piped to ``jq``, JUnit to a file) and a
CI log, which is not a terminal, never fills with carriage returns. The line is erased whenever its
outermost step ends, before the command prints its result, so the two never interleave.
``VIGIL_NO_PROGRESS=1`` (or ``TERM=dumb``) turns it off.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import time
from collections.abc import Callable
from typing import TextIO

#: Erase the line and return to its start (ANSI "erase in line", supported by every terminal emulator).
ERASE = "\r\x1b[2K"
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


class TerminalLine:
    """A :class:`dashboard.progress.Reporter` writing the nested steps as ``vigil: outer: inner (3 s)``."""

    def __init__(self, stream: TextIO, columns: Callable[[], int] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._stream = stream
        self._columns = columns or (lambda: shutil.get_terminal_size((80, 24)).columns)
        self._clock = clock
        self._steps: list[tuple[str, float]] = []
        self._shown = False

    @classmethod
    def for_stderr(cls, env: dict[str, str] | None = None) -> TerminalLine | None:
        """The line on this process's stderr, or None when stderr is not a terminal or it is turned off."""
        env = dict(os.environ) if env is None else env
        if env.get("VIGIL_NO_PROGRESS", "") not in ("", "0") or env.get("TERM") == "dumb":
            return None
        stream = sys.stderr
        try:
            interactive = stream.isatty()
        except (AttributeError, ValueError):  # a closed or replaced stream
            return None
        return cls(stream) if interactive else None

    def enter(self, text: str) -> None:
        # Step texts can carry names from the configuration: no control character reaches the terminal.
        self._steps.append((_CONTROL.sub(" ", text), self._clock()))
        self._draw()

    def leave(self) -> None:
        if self._steps:
            self._steps.pop()
        if self._steps:
            self._draw()
        else:
            self.erase()

    def erase(self) -> None:
        if self._shown:
            self._write(ERASE)
            self._shown = False

    def _draw(self) -> None:
        started = self._steps[0][1]
        elapsed = self._clock() - started
        text = "vigil: " + ": ".join(t for t, _ in self._steps)
        if elapsed >= 1:
            text += f" ({elapsed:.0f} s)"
        width = max(self._columns() - 1, 10)  # the last column would wrap on some terminals
        if len(text) > width:
            text = text[: width - 3] + "..."
        self._write(ERASE + text)
        self._shown = True

    def _write(self, text: str) -> None:
        try:
            self._stream.write(text)
            self._stream.flush()
        except (OSError, ValueError, UnicodeError):  # a closed terminal must not fail the command
            pass
