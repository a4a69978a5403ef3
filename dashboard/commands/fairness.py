"""``vigil fairness``: AIF360 group-fairness metrics of a model over a window (for CI and reports)."""

from __future__ import annotations

import click

from dashboard.charts.text import PROSE_LIMIT, clip
from dashboard.charts.text import window_text as typed_window  # (`window_text` is the option)
from dashboard.commands.common import WINDOW_HELP, analysis_window, echo_json, get_context
from dashboard.monitoring.fairness import LEFT_OUT_REASON, ROWS_USED, FairnessReport, compute_fairness

MARK = {"pass": "ok  ", "fail": "FAIL", "undefined": "n/a ", "too_small": "small", "info": "    "}


def _names(groups: tuple[str, ...]) -> str:
    """Group names from the logs, each clipped (a 10 MB category must not flood the terminal)."""
    return ", ".join(map(clip, groups)) or "-"


def _print(report: FairnessReport) -> None:
    head = f"{report.model}" + (f" v{report.version}" if report.version else "") + f"  {typed_window(report.window)}"
    click.echo(f"{head}: {report.n_rows} {ROWS_USED}, {report.n_labelled} of them labelled "
               f"(favourable outcome: '{report.favourable}', min group size {report.min_group_size})")
    if report.left_out_note:
        click.echo(f"  note: {report.left_out_note}")
    for a in report.attributes:
        click.echo(f"\n{a.attribute}: privileged {_names(a.privileged)} ({a.n_privileged} rows) "
                   f"vs {_names(a.unprivileged)} ({a.n_unprivileged} rows)")
        for note in a.notes:
            click.echo(f"  note: {clip(note, PROSE_LIMIT)}")
        for m in a.metrics.values():
            click.echo(f"  {MARK[m.verdict]:5} {m.key:32} {clip(m.display()):>12}   {m.threshold}  [{m.uses}]")
        if a.worst_group:
            click.echo(f"  lowest selection rate: {clip(a.worst_group)}")
    for i in report.intersections:
        if i.worst_group:
            click.echo(f"\n{' × '.join(i.attributes)}: worst-off group {clip(i.worst_group)} "
                       f"(selection rate {i.worst_selection_rate:.3f} vs best {i.best_selection_rate:.3f})")


@click.command("fairness")
@click.option("--model", "-m", required=True, help="Model name as configured in vigil.toml.")
@click.option("--window", "window_text", default="30d", show_default=True, help=WINDOW_HELP)
@click.option("--attribute", "-a", default=None, help="One protected attribute (default: all of them).")
@click.option("--privileged", "-p", multiple=True,
              help="Privileged value of --attribute (repeat for several; default: from vigil.toml).")
@click.option("--version", "version", default=None, help="Only predictions of this model version.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--fail-on-violation", is_flag=True, help="Exit 1 when any metric fails its threshold.")
@click.pass_context
def command(ctx: click.Context, model: str, window_text: str, attribute: str | None, privileged: tuple[str, ...],
            version: str | None, as_json: bool, fail_on_violation: bool) -> None:
    """Disparate impact, parity and odds differences, entropy indices per protected attribute.

    Metrics use the successful predictions (status ok; failed requests carry no usable prediction and
    are counted as left out): prediction-only metrics every one of them, label-based ones the labelled
    ones. Undefined metrics
    (a division by zero) are reported with the reason; groups below min_group_size are "too small".
    """
    context = get_context(ctx)
    window = analysis_window(context, model, window_text, version)
    report = compute_fairness(context, model, window, attribute=attribute, version=version,
                              privileged=list(privileged) or None)
    if as_json:
        echo_json({
            "model": report.model, "version": report.version, "window": str(report.window),
            "n_rows": report.n_rows, "n_labelled": report.n_labelled, "rows_used": ROWS_USED,
            "n_left_out": report.n_left_out, "left_out_reason": LEFT_OUT_REASON if report.n_left_out else None,
            "favourable": report.favourable,
            "min_group_size": report.min_group_size,
            "attributes": [{"attribute": a.attribute, "privileged": a.privileged, "unprivileged": a.unprivileged,
                            "n_privileged": a.n_privileged, "n_unprivileged": a.n_unprivileged,
                            "n_missing": a.n_missing, "notes": a.notes, "worst_group": a.worst_group,
                            "metrics": a.metrics, "groups": a.groups} for a in report.attributes],
            "intersections": [{"attributes": i.attributes, "worst_group": i.worst_group,
                               "worst_selection_rate": i.worst_selection_rate,
                               "best_selection_rate": i.best_selection_rate, "groups": i.groups}
                              for i in report.intersections],
        })
    else:
        _print(report)
    if fail_on_violation and any(a.failing() for a in report.attributes):
        ctx.exit(1)
