"""``vigil segments``: metrics per segment and the segments that explain a change between two windows."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import click

from dashboard.charts.text import clip
from dashboard.commands.common import analysis_window, echo_json, get_context
from dashboard.monitoring.segment_drift import (
    DRIFT_SHARE,
    SegmentDrift,
    compute_segment_drift,
    rank_columns_by_drift,
)
from dashboard.monitoring.segment_fairness import (
    FAIRNESS_METRICS,
    SegmentFairness,
    compute_segment_fairness,
    rank_columns_by_fairness,
)
from dashboard.monitoring.segments import (
    METRICS,
    MIN_ROWS,
    SegmentChange,
    compute_segment_change,
    rank_columns,
)


def _pts(x: object) -> str:
    return "n/a" if x is None or x != x else f"{float(x) * 100:+.2f}"  # type: ignore[arg-type]


@click.command("segments")
@click.option("--model", "-m", required=True, help="Model name as configured in vigil.toml.")
@click.option("--from", "before_text", required=True, help="The 'before' window: FROM..TO or a relative window.")
@click.option("--to", "after_text", required=True, help="The 'after' window: FROM..TO or a relative window.")
@click.option("--column", "-c", "columns", multiple=True,
              help="Segment column (twice for a pair); default: rank every categorical column.")
@click.option("--metric", type=click.Choice([*METRICS, DRIFT_SHARE, *FAIRNESS_METRICS]), default="accuracy",
              show_default=True,
              help="The metric whose change is decomposed; drift_share: the share of features drifting within "
                   "each segment from --from (the reference) to --to, segments ranked by it; a fairness metric "
                   "(disparate_impact, ...): that metric of --attribute within each segment in both windows, "
                   "failing and farthest-from-fair segments first.")
@click.option("--attribute", "-a", default=None,
              help="Fairness metrics: the protected attribute [default: the model's first].")
@click.option("--min-rows", type=int, default=MIN_ROWS, show_default=True,
              help="Segments with fewer rows (in both windows; drift_share: in either) are pooled as "
                   "'(small segments)'.")
@click.option("--version", default=None, help="Only this model version.")
@click.option("--top", type=int, default=5, show_default=True, help="Segments shown per column.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_context
def command(ctx: click.Context, model: str, before_text: str, after_text: str, columns: tuple[str, ...],
            metric: str, attribute: str | None, min_rows: int, version: str | None, top: int,
            as_json: bool) -> None:
    """Which segments explain the change of METRIC between two windows: each segment's contribution
    (mix: its share changed; performance: its own metric changed), adding up to the overall change.
    With --metric drift_share: the share of features drifting within each segment, highest first."""
    if attribute is not None and metric not in FAIRNESS_METRICS:
        raise click.UsageError("--attribute applies to the fairness metrics (--metric disparate_impact, ...)")
    context = get_context(ctx)
    before = analysis_window(context, model, before_text, version)
    after = analysis_window(context, model, after_text, version)
    if metric == DRIFT_SHARE:
        drifts = ([compute_segment_drift(context, model, before, after, tuple(columns), min_rows, version)]
                  if columns else rank_columns_by_drift(context, model, before, after, min_rows, version))
        _print_drift(model, before.label, after.label, drifts, top, as_json)
        return
    if metric in FAIRNESS_METRICS:
        fair = ([compute_segment_fairness(context, model, before, after, tuple(columns), metric, attribute, min_rows,
                                          version)]
                if columns else rank_columns_by_fairness(context, model, before, after, metric, attribute, min_rows,
                                                         version))
        _print_fairness(model, before.label, after.label, fair, top, as_json)
        return
    if columns:
        changes: list[SegmentChange] = [compute_segment_change(context, model, before, after, tuple(columns),
                                                               metric, min_rows, version)]
    else:
        changes = rank_columns(context, model, before, after, metric, min_rows, version)
    if as_json:
        echo_json({"changes": [{**c.summary(), "ranking": c.ranking} for c in changes]})
        return
    click.echo(f"{model}: {metric}, before {before.label} vs after {after.label}")
    click.echo(f"  {clip(changes[0].headline())}")
    for c in changes:
        click.echo(f"  by {' x '.join(c.columns)}:  (points: contribution = mix + performance)")
        for r in c.ranking.head(top).to_dict(orient="records"):
            click.echo(f"    {clip(str(r['segment'])):<40} {_pts(r['contribution']):>7} = {_pts(r['mix']):>7} "
                       f"+ {_pts(r['performance']):>7}   rows {r['n_before']} -> {r['n_after']}")


def _share(r: Mapping[Any, Any]) -> str:
    share = r["drift_share"]
    if share is None or share != share:
        return "n/a"
    return f"{float(share):.2f} ({r['n_drifted']}/{r['n_judged']})"


def _print_drift(model: str, before: str, after: str, drifts: list[SegmentDrift], top: int, as_json: bool) -> None:
    """Per column, its segments by drift share: drifted / judged features, rows, the drifted features."""
    if as_json:
        echo_json({"changes": [{**d.summary(), "ranking": d.ranking} for d in drifts]})
        return
    click.echo(f"{model}: drift share per segment, before {before} (reference) vs after {after} (current)")
    click.echo(f"  {clip(drifts[0].headline())}")
    for d in drifts:
        click.echo(f"  by {' x '.join(d.columns)}:  (drift share = drifted / judged features; dataset drift at "
                   f">= {d.drift_share_threshold:g})")
        for r in d.ranking.head(top).to_dict(orient="records"):
            flag = "  DRIFT" if r["dataset_drift"] is True else ""
            detail = clip(str(r["drifted"]) or str(r["note"]))
            click.echo(f"    {clip(str(r['segment'])):<40} {_share(r):>12}{flag:<8} rows {r['n_before']} -> "
                       f"{r['n_after']}   {detail}")


def _value(x: object) -> str:
    return "n/a" if x is None or x != x else f"{float(x):.3f}"  # type: ignore[arg-type]


def _print_fairness(model: str, before: str, after: str, results: list[SegmentFairness], top: int,
                    as_json: bool) -> None:
    """Per column, its segments by the fairness metric: value before -> after, verdict, both sides' rows."""
    if as_json:
        echo_json({"changes": [{**r.summary(), "ranking": r.ranking} for r in results]})
        return
    first = results[0]
    click.echo(f"{model}: {first.label} of '{clip(first.attribute)}' per segment, before {before} vs after {after} "
               f"(threshold {first.threshold})")
    click.echo(f"  {clip(first.headline())}")
    for r in results:
        click.echo(f"  by {' x '.join(r.columns)}:  (before -> after, verdict after, privileged / unprivileged rows)")
        for row in r.ranking.head(top).to_dict(orient="records"):
            click.echo(f"    {clip(str(row['segment'])):<40} {_value(row['value_before']):>7} -> "
                       f"{_value(row['value_after']):>7}  {row['verdict']:<10} rows {row['n_privileged']} / "
                       f"{row['n_unprivileged']}   {clip(str(row['note']))}")
