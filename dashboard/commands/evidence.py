"""``vigil evidence``: export a version's evidence pack (a zip with a manifest of SHA-256 digests, its
digest written to the audit trail); ``vigil evidence verify PACK`` checks one offline."""

from __future__ import annotations

from pathlib import Path

import click

from dashboard.commands.common import echo_json, get_context, reader_actor, write_whole
from dashboard.errors import VigilError


@click.group("evidence", invoke_without_command=True)
@click.option("--model", "-m", default=None, help="Model name as configured in vigil.toml.")
@click.option("--version", "-v", "version", default=None, help="Model version (default: the champion).")
@click.option("--window", "window_text", default=None, help="Override every policy's window (FROM..TO or 7d).")
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="The .zip to write (written whole or not at all).")
@click.option("--no-pdf", is_flag=True, help="Leave the PDF report out (it needs Chromium); the manifest says so.")
@click.pass_context
def command(ctx: click.Context, model: str | None, version: str | None, window_text: str | None,
            output: Path | None, no_pdf: bool) -> None:
    """Export the evidence pack of MODEL's version: report (HTML, PDF), control status, card, gate
    evidence, policy history, audit excerpt with the chain and its checkpoint, manifest."""
    if ctx.invoked_subcommand is not None:
        return
    if model is None or output is None:
        raise click.UsageError("give --model M and -o pack.zip (or: vigil evidence verify PACK)")
    if output.suffix.lower() != ".zip":
        raise VigilError(f"an evidence pack is a zip: name the file {output.stem}.zip")
    from dashboard.governance.evidence_pack import build_pack

    data, digest = build_pack(get_context(ctx), reader_actor(ctx), model, version, window_text,
                              include_pdf=not no_pdf)
    write_whole(output, data)
    click.echo(f"wrote {output} ({len(data):,} bytes); pack digest {digest} (recorded in the audit trail as "
               "evidence.export)")


@command.command("verify")
@click.argument("pack", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--key-file", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="The audit key file, to check the checkpoint's signature (else VIGIL_AUDIT_KEY or "
                   ".streamlit/secrets.toml; without a key the signature is not checked and the output says "
                   "what that leaves unproven).")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def verify_cmd(ctx: click.Context, pack: Path, key_file: Path | None, as_json: bool) -> None:
    """Check PACK offline: every file's SHA-256, nothing added or removed, the audit chain's hashes and
    links, the excerpt and checkpoint against the chain, the signature when a key is at hand. Exit 1 on
    any problem. Needs no configuration, store or MLflow."""
    from dashboard.audit.checkpoints import load_key
    from dashboard.governance.evidence_pack import verify_pack

    result = verify_pack(pack, load_key(key_file, create=False))
    if as_json:
        echo_json(result.as_dict())
    else:
        head = f"{result.manifest.get('model', '?')} version {result.manifest.get('version', '?')}"
        click.echo((f"OK: evidence pack of {head} verifies" if result.ok else f"FAILED: {pack} does not verify")
                   + (f"; pack digest {result.digest}" if result.digest else ""))
        for line in result.problems:
            click.echo(f"  problem: {line}")
        for line in result.checked:
            click.echo(f"  checked: {line}")
        for line in result.notes:
            click.echo(f"  note: {line}")
    ctx.exit(0 if result.ok else 1)
