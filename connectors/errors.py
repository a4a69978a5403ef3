"""The base of every connector's own error type, so callers can catch "an outside system said no"."""


class ConnectorError(Exception):
    """An outside system (DuckDB file, MLflow, Label Studio, a trigger) failed; the message names the fix."""
