"""What a long computation is doing now, told to whichever front door shows it.

Core code marks its slow steps with ``with progress.step("…"):``; it neither knows nor cares whether a
terminal line (``vigil``), a page's status box or nobody (tests, the scheduler) shows them. The reporter
lives in a context variable, so two page sessions running at once in one process (threads) never see
each other's steps, and a step is a no-op when nobody listens.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Protocol


class Reporter(Protocol):
    """Shows the steps in progress; ``enter`` and ``leave`` come in nested pairs."""

    def enter(self, text: str) -> None: ...

    def leave(self) -> None: ...


_REPORTER: ContextVar[Reporter | None] = ContextVar("vigil_progress_reporter", default=None)


@contextmanager
def step(text: str) -> Iterator[None]:
    """Mark the enclosed work as ``text`` (a short phrase: "reading the reference from MLflow")."""
    reporter = _REPORTER.get()
    if reporter is None:
        yield
        return
    reporter.enter(text)
    try:
        yield
    finally:
        reporter.leave()


@contextmanager
def reporting(reporter: Reporter | None) -> Iterator[None]:
    """Send the steps of the enclosed work (in this thread or task) to ``reporter``."""
    token = _REPORTER.set(reporter)
    try:
        yield
    finally:
        _REPORTER.reset(token)
