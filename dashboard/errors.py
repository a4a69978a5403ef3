"""Errors a user can cause, gathered so the CLI and the pages show them as messages, not tracebacks."""

from __future__ import annotations

from connectors.errors import ConnectorError
from connectors.windows import WindowError
from dashboard.settings import ConfigError


class VigilError(Exception):
    """A user-facing error raised by the core (bad request, missing data); the message names the fix."""


class PermissionDenied(VigilError):
    """The actor's role does not allow the action."""


# Everything the CLI prints as "Error: ..." (exit 2) and the pages show with st.error.
USER_ERRORS: tuple[type[BaseException], ...] = (VigilError, ConfigError, ConnectorError, WindowError)
