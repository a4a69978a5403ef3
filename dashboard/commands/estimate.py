"""``vigil estimate``: estimated performance (CBPE, as NannyML) with sampling-error bands, vs realised."""

from __future__ import annotations

import math

import click

from dashboard.charts.text import PROSE_LIMIT, clip
from dashboard.commands.common import WINDOW_HELP, analysis_window, echo_json, get_context
from dashboard.monitoring.estimation import METRICS, compute_estimation

LABELS = {"roc_auc": "ROC AUC", "f1": "F1", "precision": "precision", "recall": "recall",
          "specificity": "specificity", "accuracy": "accuracy"}


def _num(x: object) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    return f"{float(x):.3f}"  # type: ignore[arg-type]


@click.command("estimate")
@click.option("--model", "-m", required=True, help="Model name as configured in vigil.toml.")
@click.option("--window", "-w", "window_text", default="7d", show_default=True, help=WINDOW_HELP)
@click.option("--reference", "reference_text", default=None,
              help="FROM..TO of labelled predictions CBPE fits on (calibration, sampling error, thresholds); "
                   "default: the model's reference window, else the first 14 days of its logs.")
@click.option("--version", default=None, help="Only this model version.")
@click.option("--bucket", type=click.Choice(["hour", "day", "week"]), default="day", show_default=True,
              help="Time bucket (NannyML's chunk period).")
@click.option("--calibration", type=click.Choice(["auto", "always", "never"]), default="auto", show_default=True,
              help="auto = calibrate when NannyML's test says it lowers the reference's ECE.")
@click.option("--json", "as_json", is_flag=True, help="Print the numbers as JSON.")
@click.pass_context
def command(ctx: click.Context, model: str, window_text: str, reference_text: str | None, version: str | None,
            bucket: str, calibration: str, as_json: bool) -> None:
    """Estimated ROC AUC, F1, precision, recall, specificity and accuracy of MODEL (confidence-based
    performance estimation), each with its ±3 sampling-error band, the reference thresholds and the
    realised value where labels arrived."""
    context = get_context(ctx)
    window = analysis_window(context, model, window_text, version)
    reference = analysis_window(context, model, reference_text, version) if reference_text else None
    r = compute_estimation(context, model, window, reference=reference, bucket=bucket, version=version,
                           calibration=calibration)
    if as_json:
        echo_json({"summary": r.summary(), "overall": r.overall.drop(columns="bucket"), "buckets": r.buckets,
                   "notes": list(r.notes)})
        return
    click.echo(f"{model}{' v' + version if version else ''}  {window.label}  ({r.n_rows} scored predictions, "
               f"{r.n_labelled} labelled)  reference {r.reference.label} ({r.n_reference} labelled)")
    click.echo(f"  {r.calibration.text}")
    click.echo(f"  {'metric':<12} {'estimated':>9}  {'band (±3 SE)':>15}  {'realised':>8}  {'thresholds':>13}  "
               f"alerting {bucket}s")
    alerts = {m: (int(g["alert"].sum()), len(g)) for m, g in r.buckets.groupby("metric")}
    for m in METRICS:
        rec = r.metric(m)
        band = f"{_num(rec['lower'])}..{_num(rec['upper'])}"
        thr = f"{_num(rec['lower_threshold'])}..{_num(rec['upper_threshold'])}"
        hits = "{}/{}".format(*alerts.get(m, (0, 0)))
        click.echo(f"  {LABELS[m]:<12} {_num(rec['estimated']):>9}  {band:>15}  {_num(rec['realised']):>8}  "
                   f"{thr:>13}  {hits}")
    for note in r.notes:
        click.echo(f"  note: {clip(note, PROSE_LIMIT)}")
