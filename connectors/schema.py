"""The prediction-log contract as the log store sees it (no dependency on the app's settings).

``dashboard.settings.ModelConfig.log_schema()`` builds one of these; keeping it here lets the
connectors stay independent of the app layer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Columns every prediction log row has (besides the model's features and protected attributes).
REQUIRED_COLUMNS: tuple[str, ...] = ("prediction_id", "ts", "model_version", "prediction")
OPTIONAL_COLUMNS: tuple[str, ...] = ("model_name", "score", "latency_ms", "status")
LABEL_REQUIRED: tuple[str, ...] = ("prediction_id", "label")
LABEL_OPTIONAL: tuple[str, ...] = ("ts", "source", "annotator")


def sql_identifier(name: str) -> str:
    """A lower-case SQL-safe identifier derived from ``name``."""
    return re.sub(r"[^A-Za-z0-9_]", "_", name).lower()


def quote(name: str) -> str:
    """Quote an identifier for DuckDB (names are validated identifiers; quoting keeps keywords safe)."""
    return '"' + name.replace('"', '""') + '"'


def nan_as_null(expr: str) -> str:
    """``expr`` (a DOUBLE) with NaN read as missing (SQL NULL).

    Why: DuckDB's aggregates skip NULL but not NaN, and NaN sorts above every number, so one NaN makes a
    mean or an upper quantile NaN. Ingestion stores NaN as NULL; this guards rows stored before it did.
    """
    return f"nullif({expr}, 'NaN'::DOUBLE)"


@dataclass(frozen=True)
class LogSchema:
    """Columns of one model's prediction log.

    ``columns`` maps each model-specific column (features, then protected attributes that are not
    features) to ``"numerical"`` or ``"categorical"``.
    """

    model: str
    features: tuple[str, ...]
    columns: dict[str, str]
    classes: tuple[str, ...]
    extra_columns: str = "reject"  # or "ignore"

    @property
    def table(self) -> str:
        """The model's log table."""
        return f"logs_{sql_identifier(self.model)}"

    @property
    def probability_columns(self) -> dict[str, str]:
        """Class label -> optional per-class probability column."""
        return {c: f"proba_{re.sub(r'[^A-Za-z0-9_]', '_', c)}" for c in self.classes}

    def sql_type(self, column: str) -> str:
        return "DOUBLE" if self.columns[column] == "numerical" else "VARCHAR"

    def known_columns(self) -> set[str]:
        return (set(REQUIRED_COLUMNS) | set(OPTIONAL_COLUMNS) | set(self.columns)
                | set(self.probability_columns.values()))
