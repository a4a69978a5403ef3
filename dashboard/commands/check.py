"""``vigil check``: evaluate a model's policies; exit 1 on any blocking failure (a CI gate)."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import click

from dashboard.commands.common import get_context, to_jsonable
from dashboard.governance.policy import (
    FAIL,
    NO_DATA,
    NOT_APPLICABLE,
    PASS,
    PHASE_CHOICES,
    Evaluation,
    PolicyResult,
    evaluate,
    save_evaluation,
)


def _value(r: PolicyResult) -> str:
    return "n/a" if r.value is None else f"{r.value:.4g}"


def format_text(ev: Evaluation) -> str:
    head = f"{ev.model}" + (f" version {ev.version}" if ev.version else " (all versions)")
    lines = [f"Policies of {head}; phase {ev.phase} ({ev.phase_note}); window {ev.window}; data version "
             f"{ev.data_version}; evaluated {ev.evaluated_at:%Y-%m-%d %H:%M:%S} UTC", ""]
    for r in ev.results:
        mark = {PASS: "PASS", FAIL: "FAIL", NO_DATA: "NO DATA", NOT_APPLICABLE: "N/A YET"}.get(r.verdict, "ERROR")
        detail = r.verdict if mark == "ERROR" else r.detail
        lines.append(f"  {mark:<7} {r.severity:<8} {r.name:<45} {_value(r):>10} {r.comparator} "
                     f"{r.threshold_text():<14} rows={r.rows}  {detail}")
    lines.append("")
    if ev.passed:
        lines.append(f"OK: no blocking policy failed ({len(ev.warnings)} warning(s)).")
    else:
        lines.append(f"FAILED: {len(ev.blocking_failures)} blocking polic"
                     f"{'y' if len(ev.blocking_failures) == 1 else 'ies'} failed: "
                     + ", ".join(r.name for r in ev.blocking_failures))
    return "\n".join(lines)


def format_junit(ev: Evaluation) -> str:
    """JUnit XML: one testcase per verdict; a blocking failure is a <failure>, an analysis error an <error>,
    no data is <skipped>; warnings pass with their evidence in <system-out> so CI does not block on them."""
    suite_name = f"vigil.{ev.model}" + (f".v{ev.version}" if ev.version else "")
    failures = sum(1 for r in ev.results if r.blocking_failure and r.verdict == FAIL)
    errors = sum(1 for r in ev.results if r.blocking_failure and r.verdict != FAIL)
    skipped = sum(1 for r in ev.results if r.verdict in (NO_DATA, NOT_APPLICABLE))
    root = ET.Element("testsuites", name="vigil check", tests=str(len(ev.results)), failures=str(failures),
                      errors=str(errors), skipped=str(skipped))
    suite = ET.SubElement(root, "testsuite", name=suite_name, tests=str(len(ev.results)), failures=str(failures),
                          errors=str(errors), skipped=str(skipped), timestamp=ev.evaluated_at.isoformat(),
                          time="0")
    props = ET.SubElement(suite, "properties")
    for key, value in (("model", ev.model), ("version", ev.version or "all"), ("phase", ev.phase),
                       ("window", ev.window), ("data_version", ev.data_version)):
        ET.SubElement(props, "property", name=key, value=str(value))
    for r in ev.results:
        case = ET.SubElement(suite, "testcase", classname=suite_name, name=r.name, time="0")
        evidence = (f"value={_value(r)} {r.comparator} {r.threshold_text()}; severity={r.severity}; "
                    f"verdict={r.verdict}; window={r.window}; rows={r.rows}; data_version={r.data_version}; "
                    f"{r.detail}")
        if r.blocking_failure and r.verdict == FAIL:
            ET.SubElement(case, "failure", message=f"{r.name}: {_value(r)} {r.comparator} {r.threshold_text()} "
                          "does not hold", type="blocking").text = evidence
        elif r.blocking_failure:
            ET.SubElement(case, "error", message=f"{r.name}: {r.verdict}", type="analysis").text = evidence
        elif r.verdict in (NO_DATA, NOT_APPLICABLE):
            ET.SubElement(case, "skipped", message=f"{r.verdict}: {r.detail}")
        ET.SubElement(case, "system-out").text = evidence
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode")


@click.command("check")
@click.option("--model", "-m", required=True, help="Model name as configured in vigil.toml.")
@click.option("--version", "-v", "version", default=None, help="Judge one model version's logs (default: all).")
@click.option("--window", "window_text", default=None,
              help="Override every policy's window: FROM..TO or 7d / 24h (relative windows end at the "
                   "latest logged prediction).")
@click.option("--phase", type=click.Choice(PHASE_CHOICES), default="auto", show_default=True,
              help="pre_deployment: the version's gate evidence and card; production: its traffic; all: both; "
                   "auto: what applies (no traffic yet: pre-deployment; serving: production, plus the gate's "
                   "evidence when it has any; no --version: production).")
@click.option("--format", "fmt", type=click.Choice(["text", "json", "junit"]), default="text", show_default=True)
@click.option("--junit-file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write JUnit XML to this file (for CI test reports).")
@click.option("--record/--no-record", default=True, show_default=True,
              help="Keep the verdicts in the scorecard history (skipped when the data did not change).")
@click.pass_context
def command(ctx: click.Context, model: str, version: str | None, window_text: str | None, phase: str, fmt: str,
            junit_file: Path | None, record: bool) -> None:
    """Evaluate the policies of MODEL; exit 1 if a blocking policy fails, 0 otherwise.

    Warnings, policies without data and production policies of a version that does not serve yet never
    fail the check; a blocking policy whose analysis could not run fails it (fail closed). An unknown
    model or version, or MLflow out of reach, is a usage error (exit 2), not a policy failure.
    """
    context = get_context(ctx)
    result = evaluate(context, model, version=version, window=window_text, phase=phase)
    if record:
        save_evaluation(context, result, "vigil check")
    if fmt == "json":
        click.echo(json.dumps(to_jsonable(result.to_dict()), indent=2))
    elif fmt == "junit":
        click.echo(format_junit(result))
    else:
        click.echo(format_text(result))
    if junit_file is not None:
        junit_file.parent.mkdir(parents=True, exist_ok=True)
        junit_file.write_text(format_junit(result), encoding="utf-8")
    ctx.exit(0 if result.passed else 1)
