"""``vigil demo``: build the deterministic credit-risk demo workspace (MLflow store + DuckDB logs)."""

from __future__ import annotations

import time

import click

from dashboard.demo.scenario import DemoScenario, build_workspace


@click.command("demo")
@click.option("--dir", "folder", default=".vigil", show_default=True, type=click.Path(file_okay=False),
              help="Folder to build the workspace in (vigil.toml, mlflow.db, mlartifacts/, vigil.duckdb).")
@click.option("--rows", default=DemoScenario.rows, show_default=True, type=click.IntRange(min=1_000),
              help="Production prediction rows over the 30 days (10,000,000 works).")
@click.option("--seed", default=DemoScenario.seed, show_default=True, type=int, help="Random seed.")
@click.option("--force", is_flag=True, help="Rebuild even when the folder already holds a demo.")
def command(folder: str, rows: int, seed: int, force: bool) -> None:
    """Build the demo workspace: two registered model versions, 30 days of logs with injected events.

    Skips the work when FOLDER already holds a demo built with the same --rows and --seed.
    Afterwards: `VIGIL_CONFIG=<dir>/vigil.toml streamlit run dashboard/app.py` (or `make demo`).
    """
    started = time.perf_counter()
    last = [-1]

    def progress(message: str, fraction: float) -> None:
        pct = int(fraction * 100)
        if pct != last[0] or fraction >= 1.0:
            last[0] = pct
            click.echo(f"[{pct:3d}%] {message}")

    ws = build_workspace(folder, rows=rows, seed=seed, force=force, progress=progress)
    if ws.built:
        click.echo(f"Built in {time.perf_counter() - started:.1f} s. Versions: "
                   + ", ".join(f"{alias}={v}" for alias, v in ws.versions.items()))
    click.echo(f"Config: {ws.config_path}  (export VIGIL_CONFIG={ws.config_path})")
