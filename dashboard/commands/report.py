"""``vigil report``: export the compliance report of a model (and version) as HTML or PDF."""

from __future__ import annotations

from pathlib import Path

import click

from dashboard.commands.common import get_context, reader_actor


@click.command("report")
@click.option("--model", "-m", required=True, help="Model name as configured in vigil.toml.")
@click.option("--version", default=None, help="Model version (default: all versions' logs).")
@click.option("--window", "window_text", default=None,
              help="Override every policy's window: FROM..TO or a relative window such as 7d.")
@click.option("--format", "fmt", type=click.Choice(["html", "pdf"]), default=None,
              help="Default: from the output file's suffix, else html.")
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="File to write (written whole or not at all).")
@click.pass_context
def command(ctx: click.Context, model: str, version: str | None, window_text: str | None, fmt: str | None,
            output: Path) -> None:
    """The compliance report: policy scorecard with evidence, charts, the model card, approvals and the
    audit excerpt with the chain status. PDF is printed by headless Chromium."""
    from dashboard.governance import reports

    fmt = fmt or ("pdf" if output.suffix.lower() == ".pdf" else "html")
    data = reports.export_report(get_context(ctx), reader_actor(ctx), model, version, window_text, fmt=fmt)
    tmp = output.with_name(f".{output.name}.partial")
    try:
        tmp.write_bytes(data)
        tmp.replace(output)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise click.ClickException(f"cannot write {output}: {exc.strerror}; choose a writable path") from None
    click.echo(f"wrote {output} ({fmt}, {len(data):,} bytes)")
