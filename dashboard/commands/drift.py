"""``vigil drift``: Evidently-compatible drift of one model between a reference and a current window."""

from __future__ import annotations

import sys

import click

from connectors.windows import Window
from dashboard.charts.text import clip
from dashboard.commands.common import WINDOW_HELP, analysis_window, echo_json, get_context
from dashboard.monitoring.domain_classifier import MAX_BUCKET_ROWS, MAX_REFERENCE_ROWS
from dashboard.monitoring.drift import ColumnDrift, DriftResult, compute_drift, result_to_dict


def _fmt(x: float | None) -> str:
    if x is None:
        return "-"
    return f"{x:.3g}" if abs(x) < 1e-3 and x != 0 else f"{x:.4f}"


@click.command("drift")
@click.option("--model", "-m", required=True, help="Model name as configured in vigil.toml.")
@click.option("--reference", "reference_text", default=None,
              help="'training' (the champion's training data in MLflow), FROM..TO or a relative window "
                   "(ending at the latest logged prediction); default: the model's configured reference.")
@click.option("--current", "current_text", default="7d", show_default=True, help=WINDOW_HELP)
@click.option("--version", default=None, help="Only this model version's logs (and its training data).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.option("--fail-on-drift", is_flag=True, help="Exit 1 when the dataset drifts (for CI).")
@click.option("--multivariate", is_flag=True,
              help="Multivariate drift per bucket, against a reference window of the logs (default: the "
                   "configured one, else the first 14 days); --fail-on-drift then fails on any alerting bucket.")
@click.option("--method", type=click.Choice(["pca", "classifier"]), default="pca", show_default=True,
              help="Method of --multivariate: pca = PCA reconstruction error (NannyML's "
                   "DataReconstructionDriftCalculator); classifier = cross-validated ROC AUC of a LightGBM "
                   "classifier telling reference rows from each bucket's (NannyML's DomainClassifierCalculator), "
                   "on a bounded sample.")
@click.option("--bucket", type=click.Choice(["hour", "day"]), default="day", show_default=True,
              help="Time bucket of --multivariate.")
@click.option("--max-rows", type=int, default=None,
              help=f"--method classifier: rows sampled per bucket at most [default: {MAX_BUCKET_ROWS:,}].")
@click.option("--max-reference-rows", type=int, default=None,
              help=f"--method classifier: reference rows sampled at most [default: {MAX_REFERENCE_ROWS:,}].")
@click.pass_context
def command(ctx: click.Context, model: str, reference_text: str | None, current_text: str, version: str | None,
            as_json: bool, fail_on_drift: bool, multivariate: bool, method: str, bucket: str, max_rows: int | None,
            max_reference_rows: int | None) -> None:
    """Per-column drift (method, score, threshold, verdict) and the dataset verdict, as on the Drift page.

    Methods and thresholds follow Evidently's DataDriftPreset defaults unless the model's [drift]
    table overrides them.
    """
    if method != "pca" and not multivariate:
        raise click.UsageError("--method chooses the method of --multivariate: add --multivariate")
    if method != "classifier" and (max_rows is not None or max_reference_rows is not None):
        raise click.UsageError("--max-rows and --max-reference-rows apply to --method classifier only")
    context = get_context(ctx)
    current = analysis_window(context, model, current_text, version)
    if multivariate and method == "classifier":
        ref = _reference_window(ctx, model, reference_text, version)
        _classifier(ctx, model, current, ref, version, bucket, as_json, fail_on_drift,
                    max_rows or MAX_BUCKET_ROWS, max_reference_rows or MAX_REFERENCE_ROWS)
        return
    if multivariate:
        _multivariate(ctx, model, current, reference_text, version, bucket, as_json, fail_on_drift)
        return
    reference = "config" if reference_text is None else reference_text
    if reference not in ("training", "config"):
        ref_window = analysis_window(context, model, reference, version)
        result = compute_drift(context, model, current, ref_window, version=version)
    else:
        result = compute_drift(context, model, current, reference, version=version)
    if as_json:
        echo_json(result_to_dict(result))
    else:
        _print_table(model, result)
    if fail_on_drift and result.dataset_drift:
        ctx.exit(1)


def _reference_window(ctx: click.Context, model: str, reference_text: str | None,
                      version: str | None) -> Window | None:
    """--reference as a window of the logs (None: the multivariate default; training data has no buckets)."""
    if reference_text in (None, "training", "config"):
        return None
    return analysis_window(get_context(ctx), model, str(reference_text), version)


def _multivariate(ctx: click.Context, model: str, current: Window, reference_text: str | None,
                  version: str | None, bucket: str, as_json: bool, fail_on_drift: bool) -> None:
    """Reconstruction error per bucket with its band and the reference thresholds."""
    from dashboard.monitoring.multivariate import compute_reconstruction

    context = get_context(ctx)
    reference = _reference_window(ctx, model, reference_text, version)
    r = compute_reconstruction(context, model, current, reference=reference, bucket=bucket, version=version)
    if as_json:
        echo_json({"summary": r.summary(), "buckets": r.buckets, "reference_buckets": r.reference_buckets})
    else:
        s = r.summary()
        lo, hi = _fmt(r.lower_threshold), _fmt(r.upper_threshold)
        click.echo(f"{model}: PCA reconstruction error, reference {r.reference.label} ({r.n_reference} rows, "
                   f"{s['components']} of {len(r.fit.columns)} components keep {s['variance_kept']:.0%} of the "
                   f"variance), thresholds {lo}..{hi}")
        for b in r.buckets.to_dict(orient="records"):
            click.echo(f"  {b['bucket']:%Y-%m-%d %H:%M}  {b['n']:>7} rows  reconstruction error {_fmt(b['value'])} "
                       f"(band {_fmt(b['lower'])}..{_fmt(b['upper'])}){'  ALERT' if b['alert'] else ''}")
        first = "" if r.first_alert is None else f", first {r.first_alert:%Y-%m-%d %H:%M}"
        click.echo(f"alerting {bucket}s: {s['alerting_buckets']}/{s['buckets']}{first}")
    if fail_on_drift and r.first_alert is not None:
        ctx.exit(1)


def _classifier(ctx: click.Context, model: str, current: Window, reference: Window | None, version: str | None,
                bucket: str, as_json: bool, fail_on_drift: bool, max_rows: int, max_reference_rows: int) -> None:
    """Domain-classifier ROC AUC per bucket, the constant thresholds and the sample it was trained on."""
    from dashboard.monitoring.domain_classifier import compute_classifier

    context = get_context(ctx)
    with click.progressbar(length=1, label="Training the domain classifier per bucket", file=sys.stderr) as bar:
        def step(done: int, total: int) -> None:
            bar.length = total
            bar.update(1)

        r = compute_classifier(context, model, current, reference=reference, bucket=bucket, version=version,
                               max_rows=max_rows, max_reference_rows=max_reference_rows, progress=step)
    s = r.summary()
    if as_json:
        echo_json({"summary": s, "buckets": r.buckets})
    else:
        click.echo(f"{model}: domain classifier ROC AUC (LightGBM, {len(r.columns)} features, 5-fold cross-validated), "
                   f"reference {r.reference.label}, thresholds {_fmt(r.lower_threshold)}..{_fmt(r.upper_threshold)}")
        click.echo(f"  {r.sample_note}")
        for b in r.buckets.to_dict(orient="records"):
            value = f"ROC AUC {_fmt(b['value'])}" if b["value"] == b["value"] else clip(str(b["note"]))
            where = "  (inside the reference: vs the rest of it)" if b["period"] == "reference" else ""
            click.echo(f"  {b['bucket']:%Y-%m-%d %H:%M}  {b['n_sampled']:>6} of {b['n']:>7} rows  {value}"
                       f"{'  ALERT' if b['alert'] else ''}{where}")
        first = "" if r.first_alert is None else f", first {r.first_alert:%Y-%m-%d %H:%M}"
        click.echo(f"alerting {bucket}s: {s['alerting_buckets']}/{s['scored_buckets']} scored{first}")
    if fail_on_drift and r.first_alert is not None:
        ctx.exit(1)


def _print_table(model: str, result: DriftResult) -> None:
    """Per column: method, score, threshold, verdict (and Evidently's where it differs); then the dataset."""
    click.echo(f"{model}: reference {clip(result.reference_label)} ({result.n_reference} rows) vs current "
               f"{clip(result.current_label)} ({result.n_current} rows)")
    cols = sorted(result.columns, key=lambda c: (not c.drifted, not c.judged, -c.severity))
    width = max([len("column"), *(len(c.column) for c in cols)])
    click.echo(f"{'column':<{width}}  {'type':<11}  {'method':<29}  {'score':>10}  {'threshold':>9}  drift")
    for c in cols:
        line = (f"{c.column:<{width}}  {c.column_type:<11}  {c.method_label:<29}  {_fmt(c.score):>10}  "
                f"{_fmt(c.threshold):>9}  {_verdict(c)}")
        notes = [f"Evidently: {'drift' if c.evidently_drifted else 'ok'}"] if c.too_few_rows else []
        notes += [clip(c.note)] if c.note else []  # notes name category values, which may be huge
        click.echo(line + (f"  ({'; '.join(notes)})" if notes else ""))
    click.echo(_summary(result))


def _verdict(c: ColumnDrift) -> str:
    if c.too_few_rows:
        return f"too few rows ({c.n_current} < {c.min_rows})"
    return "DRIFT" if c.drifted else ("ok" if c.tested else "-")


def _summary(result: DriftResult) -> str:
    """The dataset line: the verdict over the columns with enough rows, or why there is none."""
    if result.n_judged:
        line = (f"drifted columns: {result.n_drifted}/{result.n_judged} = {result.share_drifted:.2f} "
                f"(dataset drift when >= {result.drift_share_threshold:g}): "
                + ("DATASET DRIFT" if result.dataset_drift else "no dataset drift"))
        if result.n_too_few:
            line += f"; {result.n_too_few} column(s) with too few rows (< {result.min_drift_rows}) not counted"
    elif result.n_too_few:
        line = (f"too few rows: no column has {result.min_drift_rows} current values "
                "(thresholds.min_drift_rows), so no drift verdict")
    else:
        return "no column could be tested: no drift verdict"
    if result.evidently_dataset_drift != result.dataset_drift:
        ev = sum(c.evidently_drifted for c in result.columns)
        would = "would flag this as dataset drift" if result.evidently_dataset_drift else "would not flag dataset drift"
        line += f"\nEvidently {would}: {ev}/{result.n_tested} columns drift by its verdicts on {result.n_current} rows"
    return line
