"""``vigil report``: export the compliance report of a model (and version) as HTML or PDF."""

from __future__ import annotations

from pathlib import Path

import click

from dashboard.commands.common import get_context, reader_actor, write_whole
from dashboard.errors import VigilError

#: Output suffixes and the format each one is.
SUFFIXES = {".html": "html", ".htm": "html", ".pdf": "pdf"}


@click.command("report")
@click.option("--model", "-m", required=True, help="Model name as configured in vigil.toml.")
@click.option("--version", default=None, help="Model version (default: all versions' logs).")
@click.option("--window", "window_text", default=None,
              help="Override every policy's window: FROM..TO or a relative window such as 7d.")
@click.option("--format", "fmt", type=click.Choice(["html", "pdf"]), default=None,
              help="Default: from the output file's suffix (.html, .htm or .pdf).")
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="File to write (written whole or not at all).")
@click.pass_context
def command(ctx: click.Context, model: str, version: str | None, window_text: str | None, fmt: str | None,
            output: Path) -> None:
    """The compliance report: policy scorecard with evidence, charts, the model card, approvals and the
    audit excerpt with the chain status. PDF is printed by headless Chromium."""
    from dashboard.governance import reports

    fmt = output_format(output, fmt)
    data = reports.export_report(get_context(ctx), reader_actor(ctx), model, version, window_text, fmt=fmt)
    write_whole(output, data)
    click.echo(f"wrote {output} ({fmt}, {len(data):,} bytes)")


def output_format(output: Path, fmt: str | None) -> str:
    """The format to write ``output`` in, from its suffix (``--format`` may only agree with it, or name the
    format of a file without one): a report must not land in a ``.docx`` that no program can open as one."""
    suffix = output.suffix.lower()
    known = SUFFIXES.get(suffix)
    if known is None and (suffix or fmt is None):
        supported = ", ".join(f"{known_suffix} ({kind})" for known_suffix, kind in SUFFIXES.items())
        what = f"{suffix} is not a report format" if suffix else "the name has no suffix"
        raise VigilError(f"cannot write a report to {output.name}: {what}; the supported suffixes are "
                         f"{supported}")
    if known is not None and fmt is not None and fmt != known:
        raise VigilError(f"--format {fmt} does not match {output.name}: name the file .{fmt} or drop --format")
    return known or str(fmt)
