"""Ingestion as a governed action: permission check, the log store's atomic load, and an audit entry."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

from connectors.logstore import FileResult, IngestReport
from dashboard.access.roles import Actor, require
from dashboard.context import Context


def ingest_files(ctx: Context, actor: Actor, model: str, paths: Iterable[str | Path], labels: bool = False,
                 source: str = "ground_truth", progress: Callable[[FileResult], None] | None = None
                 ) -> IngestReport:
    """Ingest prediction-log (or label) files for ``model``; each file is all-or-nothing and idempotent."""
    require(actor, "ingest")
    schema = ctx.schema(model)
    if labels:
        report = ctx.store.ingest_labels(paths, schema, source=source, progress=progress)
    else:
        report = ctx.store.ingest(paths, schema, progress=progress)
    _audit(ctx, actor, model, labels, report)
    return report


def _audit(ctx: Context, actor: Actor, model: str, labels: bool, report: IngestReport) -> None:
    try:
        from dashboard.audit import trail as audit
    except ImportError:  # the audit trail ships separately; ingestion works without it
        return
    details = {"kind": "labels" if labels else "predictions", "rows_added": report.rows_added,
               "files": [{"path": f.path, "status": f.status, "rows": f.rows, "sha256": f.sha256,
                          "problems": [p.line() for p in f.problems][:5]} for f in report.files]}
    audit.record(ctx.store, actor, "ingest", model, details)
