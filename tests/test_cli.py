"""The ``vigil`` group: every sub-command resolves lazily under its listed name; unknown ones fail clearly."""

from __future__ import annotations

import sys

import pytest
from click.testing import CliRunner

from dashboard.cli import COMMANDS, cli


def test_every_listed_command_loads_under_its_name():
    runner = CliRunner()
    for name in COMMANDS:
        result = runner.invoke(cli, [name, "--help"])
        assert result.exit_code == 0, (name, result.output)
        assert f"Usage: cli {name}" in result.output or f"Usage: vigil {name}" in result.output
    listing = runner.invoke(cli, ["--help"]).output
    assert all(f"  {name} " in listing for name in COMMANDS)


def test_each_listed_summary_is_its_commands_own_short_help():
    import importlib

    for name, (module, summary) in COMMANDS.items():
        assert importlib.import_module(module).command.get_short_help_str(limit=1000) == summary, name


def test_the_command_listing_imports_no_sub_command():
    import subprocess
    code = ("import sys; from dashboard.cli import COMMANDS, main\n"
            "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "subs = {module for module, _ in COMMANDS.values()}\n"
            "print(sorted(m for m in sys.modules if m in subs or m in ('mlflow', 'scipy', 'plotly')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "Commands:" in out and "sync-labels" in out
    assert out.strip().splitlines()[-1] == "[]"


def test_an_unknown_command_names_the_help():
    result = CliRunner().invoke(cli, ["nosuch"])
    assert result.exit_code == 2 and "No such command 'nosuch'" in result.output


def test_ingest_does_not_load_the_heavy_libraries():
    import subprocess
    code = ("import sys; from dashboard.cli import cli; cli.get_command(None, 'ingest'); "
            "print(sorted(m for m in ('mlflow', 'evidently', 'label_studio_sdk', 'aif360') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_relative_windows_end_at_the_latest_logged_prediction(ctx, store, schema, logs_factory, write_file):
    from datetime import datetime, timedelta

    import click
    import pytest

    from dashboard.commands.common import analysis_window

    before = analysis_window(ctx, "credit-risk", "7d")  # no logs yet: ends now
    assert abs(before.end - datetime.now()) < timedelta(days=1)
    df = logs_factory(600, start="2026-01-01")  # a minute apart: the last one at 2026-01-01 09:59
    df.loc[500:, "model_version"] = "2"
    store.ingest([write_file(df, "logs.parquet")], schema)
    last = datetime(2026, 1, 1, 9, 59)
    w = analysis_window(ctx, "credit-risk", "24h")
    assert w.end == last + timedelta(microseconds=1) and w.start == w.end - timedelta(hours=24)
    assert analysis_window(ctx, "credit-risk", "1h", version="1").end == datetime(2026, 1, 1, 8, 19, 0, 1)
    fixed = analysis_window(ctx, "credit-risk", "2026-01-01..2026-01-02")
    assert (fixed.start, fixed.end) == (datetime(2026, 1, 1), datetime(2026, 1, 3))
    with pytest.raises(click.BadParameter, match="is not a window"):
        analysis_window(ctx, "credit-risk", "yesterday")


@pytest.mark.parametrize("typed", ["2026-10-25..2026-10-31", "2026-10-03T02:00:00..2026-10-03T03:00:00",
                                   "2026-10-03T02:00:00..2026-10-04T00:00:00", "2026-10-31..2026-10-31"])
def test_a_window_label_reads_as_typed_and_parses_back(typed: str) -> None:
    from connectors.windows import parse_window

    window = parse_window(typed)
    assert window.label == typed and parse_window(window.label) == window
