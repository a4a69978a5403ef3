"""``vigil controls``: the status of each control of a pack for one model version (exit 1 when a required
control is not met, for CI); ``vigil controls packs`` lists the packs; ``tailor``/``restore`` mark a
control not applicable to a model with a justification (a manager's decision, audited)."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import click

from dashboard.commands.common import cli_actor, get_context, to_jsonable
from dashboard.governance import controls as ctl
from dashboard.governance.control_packs import configured_packs

MARKS = {ctl.MET: "MET", ctl.PARTIAL: "PARTIAL", ctl.NOT_MET: "NOT MET", ctl.NOT_APPLICABLE: "N/A"}


def format_text(statuses: list[ctl.PackStatus]) -> str:
    lines: list[str] = []
    for ps in statuses:
        ev = ps.evaluation
        lines += [f"{ps.pack.title} ({ps.pack.source}): {ps.model} version {ps.version}, risk tier "
                  f"{ps.risk_tier or 'not recorded (every control judged)'}"
                  + (f"; policies evaluated {ev.evaluated_at:%Y-%m-%d %H:%M:%S} UTC, phase {ev.phase}" if ev else ""),
                  ""]
        for c in ps.controls:
            need = "required" if c.control.required else "optional"
            lines.append(f"  {MARKS[c.status]:<8} {need:<9} {c.control.ref:<13} {c.control.title}")
            if c.reason:
                lines.append(f"           {c.reason}")
            for e in c.evidence:
                when = f" (at {e.at:%Y-%m-%d %H:%M} UTC)" if e.at else ""
                where = f" [{e.link}]" if e.link else ""
                lines.append(f"           - {e.status}: {e.label}: {e.summary}{when}{where}")
                if e.gap:
                    lines.append(f"             to close: {e.gap}")
        counts = ", ".join(f"{n} {s}" for s, n in ps.counts().items())
        lines.append("")
        lines.append(f"OK: every required control is met or not applicable ({counts})." if ps.passed else
                     f"FAILED: {len(ps.failing)} required control(s) not met: "
                     + ", ".join(c.control.ref for c in ps.failing) + f" ({counts}).")
        lines.append("")
    return "\n".join(lines).rstrip()


def format_junit(statuses: list[ctl.PackStatus]) -> str:
    """One testsuite per pack and a testcase per control: a required control not met is a <failure>,
    a not-applicable one <skipped>; the evidence is in <system-out>."""
    root = ET.Element("testsuites", name="vigil controls")
    for ps in statuses:
        failing = len(ps.failing)
        skipped = sum(1 for c in ps.controls if c.status == ctl.NOT_APPLICABLE)
        suite = ET.SubElement(root, "testsuite", name=f"vigil.{ps.model}.v{ps.version}.{ps.pack.id}",
                              tests=str(len(ps.controls)), failures=str(failing), errors="0", skipped=str(skipped),
                              timestamp=ps.evaluated_at.isoformat(), time="0")
        for c in ps.controls:
            case = ET.SubElement(suite, "testcase", classname=f"vigil.{ps.pack.id}", name=c.control.ref, time="0")
            evidence = "\n".join(f"{e.status}: {e.label}: {e.summary}" + (f" (to close: {e.gap})" if e.gap else "")
                                 for e in c.evidence) or c.reason
            if c.blocking:
                ET.SubElement(case, "failure", message=f"{c.control.ref} {c.status}: " + "; ".join(c.gaps),
                              type="control").text = evidence
            elif c.status == ctl.NOT_APPLICABLE:
                ET.SubElement(case, "skipped", message=c.reason)
            ET.SubElement(case, "system-out").text = evidence
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode")


@click.group("controls", invoke_without_command=True)
@click.option("--model", "-m", default=None, help="Model name as configured in vigil.toml.")
@click.option("--version", "-v", "version", default=None, help="Model version (default: the champion).")
@click.option("--pack", "pack_ids", multiple=True, help="Pack id (repeatable; default: every configured pack).")
@click.option("--format", "fmt", type=click.Choice(["text", "json", "junit"]), default="text", show_default=True)
@click.pass_context
def command(ctx: click.Context, model: str | None, version: str | None, pack_ids: tuple[str, ...], fmt: str) -> None:
    """Control status of MODEL's version against each pack: met, partially met, not met or not
    applicable, with the evidence, its time and what would close each gap. Exit 1 while a required
    control that applies is not fully met; 2 on a usage error."""
    if ctx.invoked_subcommand is not None:
        return
    if model is None:
        raise click.UsageError("give --model M (or a sub-command: packs, tailor, restore)")
    context = get_context(ctx)
    statuses = ctl.all_packs_status(context, model, version, pack_ids)
    if fmt == "json":
        click.echo(json.dumps(to_jsonable([s.as_dict() for s in statuses]), indent=2))
    elif fmt == "junit":
        click.echo(format_junit(statuses))
    else:
        click.echo(format_text(statuses))
    ctx.exit(0 if all(s.passed for s in statuses) else 1)


@command.command("packs")
@click.pass_context
def packs_cmd(ctx: click.Context) -> None:
    """List the configured packs and their controls (with the risk tiers each applies to)."""
    for pack in configured_packs(get_context(ctx).settings).values():
        click.echo(f"{pack.id}: {pack.title} ({pack.source}) [{pack.path}]")
        for c in pack.controls:
            kinds = ", ".join(e.kind for e in c.evidence)
            click.echo(f"  {c.id:<13} {c.ref:<13} {c.title}; tiers {', '.join(c.tiers)}; "
                       f"{'required' if c.required else 'optional'}; evidence: {kinds}")


def _tailor(ctx: click.Context, model: str, pack: str, control: str, justification: str, restore: bool) -> None:
    context = get_context(ctx)
    ctl.tailor(context, cli_actor(ctx), model, pack, control, justification, restore=restore)
    click.echo(f"{pack}:{control} is {'applicable again' if restore else 'not applicable'} to {model} (audited).")


@command.command("tailor")
@click.option("--model", "-m", required=True)
@click.option("--pack", required=True)
@click.option("--control", required=True, help="Control id, e.g. art-72 (see `vigil controls packs`).")
@click.option("--justification", required=True, help=f"Why it does not apply (at least {ctl.MIN_JUSTIFICATION} "
              "characters); kept with the status and in the audit trail.")
@click.pass_context
def tailor_cmd(ctx: click.Context, model: str, pack: str, control: str, justification: str) -> None:
    """Mark a control not applicable to MODEL (a manager; acts as the VIGIL_TOKEN user)."""
    _tailor(ctx, model, pack, control, justification, restore=False)


@command.command("restore")
@click.option("--model", "-m", required=True)
@click.option("--pack", required=True)
@click.option("--control", required=True)
@click.option("--reason", required=True, help=f"Why it applies again (at least {ctl.MIN_JUSTIFICATION} characters).")
@click.pass_context
def restore_cmd(ctx: click.Context, model: str, pack: str, control: str, reason: str) -> None:
    """Make a tailored-out control apply to MODEL again (a manager)."""
    _tailor(ctx, model, pack, control, reason, restore=True)
