"""The real Evidently HTML report (DataDriftPreset) on the same windows as Vigil's drift numbers.

Evidently works on pandas rows and is slow on large windows, so each side is a stated random sample
(``max_rows`` rows, reservoir sampling in DuckDB, repeatable by ``seed``) when it is larger; the report's
title and the file name say so. Methods and thresholds overridden in the model config are passed on, so
the report tests what Vigil tests.

Evidently embeds its data as JSON in an inline ``<script>`` without escaping ``<``, so a logged value
``</script><img onerror=...>`` would end the script and run in whoever opens the report. The rendered
page is therefore rewritten before anyone gets it: inside that data script ``<``, ``>`` and ``&`` become
JSON escapes (the same values for the JavaScript, no markup for the HTML parser), and an offline
Content-Security-Policy keeps the page from loading anything.
"""

from __future__ import annotations

import re
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from connectors.windows import Window
from dashboard import progress
from dashboard.access.roles import Actor, require
from dashboard.charts.offline import with_offline_policy
from dashboard.context import Context
from dashboard.errors import VigilError
from dashboard.monitoring.drift import sample_windows

DEFAULT_MAX_ROWS = 20_000
ARTIFACT_DIR = "drift_reports"
# Evidently's data script: ``<script> var metric_<uuid hex> = {json}; var additional_graphs_<id> = {json};
# </script>`` in the head, before any data; the page's root ``<div id="root_<id>">`` follows it. The id is
# random per rendering, so a value in the data cannot forge the root element that marks the script's end.
_DATA_SCRIPT = re.compile(r"<script>\s*var (metric_[0-9a-f]{32}) = ")
_JSON_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}


@dataclass(frozen=True)
class EvidentlyReport:
    """A rendered report and what it was computed on."""

    html: str
    file_name: str
    n_reference: int
    n_current: int
    sample_reference: int
    sample_current: int
    reference_label: str
    current_label: str

    @property
    def sampled(self) -> bool:
        return self.sample_reference < self.n_reference or self.sample_current < self.n_current

    @property
    def sample_note(self) -> str:
        if not self.sampled:
            return f"all rows: {self.n_reference} reference, {self.n_current} current"
        return (f"random sample: {self.sample_reference} of {self.n_reference} reference rows, "
                f"{self.sample_current} of {self.n_current} current rows")


@progress.step("building the Evidently report")
def build_report(ctx: Context, model: str, current: Window, reference: Window | str = "training",
                 version: str | None = None, max_rows: int = DEFAULT_MAX_ROWS, seed: int = 0,
                 progress: Callable[[str], None] | None = None) -> EvidentlyReport:
    """Sample both windows, run Evidently's DataDriftPreset with the model's column types, render HTML."""
    say = progress or (lambda _msg: None)
    if max_rows < 1:
        raise VigilError("the report sample size must be at least 1 row")
    say("Sampling the windows in DuckDB")
    s = sample_windows(ctx, model, current, reference, version, max_rows=max_rows, seed=seed)
    cfg = ctx.model(model)
    say(f"Running Evidently on {len(s.reference)} + {len(s.current)} rows")
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    cols = list(s.types)
    dd = DataDefinition(numerical_columns=[c for c in cols if s.types[c] == "numerical"],
                        categorical_columns=[c for c in cols if s.types[c] == "categorical"])
    methods = {c: o.method for c, o in cfg.drift_overrides.items() if o.method and c in cols}
    thresholds = {c: o.threshold for c, o in cfg.drift_overrides.items() if o.threshold is not None and c in cols}
    preset = DataDriftPreset(columns=cols, drift_share=cfg.thresholds.drift_share,
                             per_column_method=methods or None,
                             per_column_threshold=thresholds or None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            snapshot = Report([preset]).run(
                current_data=Dataset.from_pandas(s.current[cols], data_definition=dd),
                reference_data=Dataset.from_pandas(s.reference[cols], data_definition=dd))
        except ValueError as exc:
            raise VigilError(f"Evidently could not build the report: {exc}") from None
    say("Rendering the HTML report")
    with tempfile.TemporaryDirectory(prefix="vigil-report-") as tmp:
        path = Path(tmp) / "report.html"
        snapshot.save_html(str(path))
        html = safe_report_html(path.read_text(encoding="utf-8"))
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{model}_{current.label}")
    sample = "sampled" if (len(s.reference) < s.n_reference or len(s.current) < s.n_current) else "all"
    return EvidentlyReport(html=html, file_name=f"evidently_drift_{slug}_{sample}.html",
                           n_reference=s.n_reference, n_current=s.n_current,
                           sample_reference=len(s.reference), sample_current=len(s.current),
                           reference_label=s.reference_label, current_label=s.current_label)


def safe_report_html(html: str) -> str:
    """Evidently's page with its inline data made inert (see the module docstring) and the offline policy;
    a page not laid out as expected is refused rather than passed on unchecked."""
    found = _DATA_SCRIPT.search(html)
    root = html.find(f'<div id="root_{found.group(1)}">', found.end()) if found else -1
    end = html.rfind("</script>", found.end(), root) if found and root > 0 else -1
    if found is None or end < 0:
        raise VigilError("the Evidently report is not laid out as this Vigil version expects (is evidently "
                         "newer than 0.7?); it was not built, so no unchecked data reaches a browser")
    data = html[found.end():end]
    for char, escape in _JSON_ESCAPES.items():
        data = data.replace(char, escape)
    return with_offline_policy(html[:found.end()] + data + html[end:])


def store_report(ctx: Context, actor: Actor, model: str, version: str, report: EvidentlyReport) -> str:
    """Attach the report to the MLflow run of ``model`` ``version``; return the artifact path."""
    require(actor, "artifact.store")
    with tempfile.TemporaryDirectory(prefix="vigil-report-") as tmp:
        path = Path(tmp) / report.file_name
        path.write_text(report.html, encoding="utf-8")
        return ctx.registry.log_artifact_to_version(model, version, path, ARTIFACT_DIR)
