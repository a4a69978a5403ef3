"""The `vigil` commands on a Spark-backed model give the numbers they give for the same data in DuckDB."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from dashboard.cli import cli
from tests.fixtures.spark import SPARK_CONF, Twins

POLICIES = """
[[models.m.policies]]
name = "few_drifted"
metric = "drift_share"
comparator = "<="
threshold = 0.5

[[models.m.policies]]
name = "fast"
metric = "latency_p95_ms"
comparator = "<="
threshold = 100

[[models.m.policies]]
name = "parity"
metric = "disparate_impact"
comparator = ">="
threshold = 0.8

[[models.m.policies]]
name = "labelled"
metric = "label_coverage"
comparator = ">="
threshold = 0.3
"""


def write_config(path: Path, data_dir: Path, engine: str, lake: Path | None = None) -> Path:
    conf = "\n".join(f'"{k}" = "{v}"' for k, v in SPARK_CONF.items())
    lake_table = (f'\n[models.m.lake]\nlogs = "{lake / "logs"}"\nlabels = "{lake / "labels"}"\n' if lake else "")
    path.write_text(f"""
[vigil]
data_dir = "{data_dir}"

[spark]
master = "local[2]"
[spark.conf]
{conf}

[models.m]
features = {{ x = "numerical", d = "numerical", k = "numerical", c = "categorical" }}
classes = ["no", "yes"]
favourable = "yes"
extra_columns = "ignore"
engine = "{engine}"
{lake_table}
[[models.m.protected]]
name = "sex"
privileged = ["m"]

[[models.m.protected]]
name = "age"
bins = [18, 40, 120]
labels = ["young", "old"]
privileged = ["old"]

[models.m.reference]
source = "window"
window = "2026-03-01..2026-03-02"
{POLICIES}""")
    return path


@pytest.fixture(scope="module")
def configs(twins: Twins, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("cli")
    duck_dir = Path(twins.duck.settings.data_dir)
    lake = duck_dir.parent / "lake"  # build_twins writes the lake beside the DuckDB data folder
    return {"duckdb": write_config(tmp / "duck.toml", duck_dir, "duckdb"),
            "spark": write_config(tmp / "spark.toml", tmp / "spark-data", "spark", lake)}


def run(config: Path, *args: str) -> tuple[int, Any]:
    result = CliRunner().invoke(cli, ["--config", str(config), *args], catch_exceptions=False)
    try:
        return result.exit_code, json.loads(result.stdout)
    except json.JSONDecodeError:
        raise AssertionError(f"not JSON (exit {result.exit_code}): {result.output[:2000]}") from None


def _numbers(obj: Any) -> Any:
    """The result without fields that name where it ran (paths, times of the run)."""
    if isinstance(obj, dict):
        return {k: _numbers(v) for k, v in obj.items() if k not in ("evaluated_at", "generated_at", "config")}
    if isinstance(obj, list):
        return [_numbers(v) for v in obj]
    if isinstance(obj, float):
        return round(obj, 9)
    return obj


@pytest.mark.parametrize("command", [
    ("drift", "--current", "2026-03-03..2026-03-06", "--json"),
    ("fairness", "--window", "2026-03-01..2026-03-06", "--json"),
    ("ops", "--window", "2026-03-01..2026-03-06", "--bucket", "day", "--json"),
    ("segments", "--from", "2026-03-01..2026-03-02", "--to", "2026-03-03..2026-03-06", "--metric", "disparate_impact",
     "--column", "c", "--min-rows", "20", "--json"),
])
def test_commands_agree(configs: dict[str, Path], command: tuple[str, ...]) -> None:
    duck = run(configs["duckdb"], command[0], "--model", "m", *command[1:])
    spark = run(configs["spark"], command[0], "--model", "m", *command[1:])
    assert duck[0] == spark[0]
    assert _numbers(spark[1]) == _numbers(duck[1])


def test_check_gives_the_same_verdicts(configs: dict[str, Path]) -> None:
    verdicts = {}
    for engine, config in configs.items():
        code, out = run(config, "check", "--model", "m", "--window", "2026-03-01..2026-03-06", "--format", "json",
                        "--no-record")
        verdicts[engine] = (code, sorted((r["policy"], r["verdict"], round(r["value"], 9) if r.get("value") is not None
                                          else None) for r in out["results"]))
    assert verdicts["spark"] == verdicts["duckdb"]
    assert {name for name, _, _ in verdicts["spark"][1]} >= {"few_drifted", "fast", "parity", "labelled"}


def test_the_progress_line_names_the_engine_that_runs_the_drift_tests(twins: Twins) -> None:
    from connectors.windows import parse_window
    from dashboard import progress
    from dashboard.monitoring.drift import compute_drift
    from tests.fixtures.progress import Recorder

    said = {}
    for name, ctx in (("duckdb", twins.duck), ("spark", twins.spark)):
        steps = Recorder()
        with progress.reporting(steps):
            compute_drift(ctx, "m", parse_window("2026-03-03..2026-03-06"), reference="config")
        said[name] = [t for t in steps.events if t.startswith("+drift: testing")]
    assert [t.rsplit(" ", 1)[-1] for t in said["duckdb"]] == ["DuckDB"]
    assert [t.rsplit(" ", 1)[-1] for t in said["spark"]] == ["Spark"]
