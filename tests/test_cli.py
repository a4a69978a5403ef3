"""The ``vigil`` group: every sub-command resolves lazily under its listed name; unknown ones fail clearly."""

from __future__ import annotations

import sys

from click.testing import CliRunner

from dashboard.cli import COMMAND_MODULES, cli


def test_every_listed_command_loads_under_its_name():
    runner = CliRunner()
    for name in COMMAND_MODULES:
        result = runner.invoke(cli, [name, "--help"])
        assert result.exit_code == 0, (name, result.output)
        assert f"Usage: cli {name}" in result.output or f"Usage: vigil {name}" in result.output
    listing = runner.invoke(cli, ["--help"]).output
    assert all(f"  {name} " in listing for name in COMMAND_MODULES)


def test_an_unknown_command_names_the_help():
    result = CliRunner().invoke(cli, ["nosuch"])
    assert result.exit_code == 2 and "No such command 'nosuch'" in result.output


def test_ingest_does_not_load_the_heavy_libraries():
    import subprocess
    code = ("import sys; from dashboard.cli import cli; cli.get_command(None, 'ingest'); "
            "print(sorted(m for m in ('mlflow', 'evidently', 'label_studio_sdk', 'aif360') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
