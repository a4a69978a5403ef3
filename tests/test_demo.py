"""The demo workspace: deterministic by seed, its documented events are in the ingested data, rebuilds are safe."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from connectors.logstore import LogStore
from connectors.registry import Registry
from dashboard.cli import cli
from dashboard.demo.population import FEATURES, training_frame
from dashboard.demo.scenario import LOGS_DIR, MARKER, DemoScenario, build_workspace, day_frames
from dashboard.demo.train import build_pipeline
from dashboard.errors import VigilError

REPO = Path(__file__).resolve().parents[1]
SMALL = 3_000


def q(folder: Path, sql: str, params: list[object] | None = None) -> pd.DataFrame:
    """Read the workspace's store the way every Vigil process does: through its owner when one lives
    (the app under test owns the shared demo workspace and writes kept results there)."""
    return LogStore(folder / "vigil.duckdb").query_df(sql, params)


def one(folder: Path, sql: str, params: list[object] | None = None) -> float:
    return float(q(folder, sql, params).iloc[0, 0])


@pytest.fixture(scope="module")
def small_builds(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The same small demo built twice in separate folders."""
    root = tmp_path_factory.mktemp("demo-small")
    a, b = root / "a", root / "b"
    build_workspace(a, rows=SMALL, seed=5)
    build_workspace(b, rows=SMALL, seed=5)
    return a, b


def _logs(folder: Path) -> pd.DataFrame:
    return pd.concat([pd.read_parquet(p) for p in sorted((folder / LOGS_DIR).glob("*.parquet"))],
                     ignore_index=True)


def test_same_seed_same_data(small_builds: tuple[Path, Path]) -> None:
    a, b = small_builds
    pd.testing.assert_frame_equal(_logs(a), _logs(b))
    cols = "prediction_id, model_version, ts, income, purpose, sex, prediction, proba_good, latency_ms, status"
    sql = f"SELECT {cols} FROM logs_credit_risk ORDER BY prediction_id"
    pd.testing.assert_frame_equal(q(a, sql), q(b, sql))
    labels = "SELECT prediction_id, label, ts FROM current_labels ORDER BY prediction_id"
    pd.testing.assert_frame_equal(q(a, labels), q(b, labels))


def test_different_seed_different_data() -> None:
    df = training_frame(1, 2_000)
    pipe = build_pipeline().fit(df[list(FEATURES)], df["label"])
    models, versions = {"1": pipe, "2": pipe}, {"champion": "1", "challenger": "2"}
    first = day_frames(DemoScenario(seed=1), 3, 500, models, versions)[0]
    again = day_frames(DemoScenario(seed=1), 3, 500, models, versions)[0]
    other = day_frames(DemoScenario(seed=2), 3, 500, models, versions)[0]
    pd.testing.assert_frame_equal(first, again)
    assert not first["income"].equals(other["income"])


def test_rows_per_day_sum_exactly() -> None:
    for rows in (1_000, 20_000, 10_000_000, 12_345):
        counts = DemoScenario(rows=rows).rows_per_day()
        assert counts.sum() == rows and len(counts) == 30 and counts.min() > 0


def test_rebuild_is_skipped_refused_or_forced(small_builds: tuple[Path, Path]) -> None:
    a, _ = small_builds
    before = q(a, "SELECT count(*) AS n, max(ingest_id) AS i FROM ingest_manifest")
    again = build_workspace(a, rows=SMALL, seed=5)
    assert not again.built
    pd.testing.assert_frame_equal(q(a, "SELECT count(*) AS n, max(ingest_id) AS i FROM ingest_manifest"), before)
    with pytest.raises(VigilError, match="--force"):
        build_workspace(a, rows=SMALL + 1_000, seed=5)

    result = CliRunner().invoke(cli, ["demo", "--dir", str(a), "--rows", str(SMALL), "--seed", "5"])
    assert result.exit_code == 0, result.output
    assert "already built" in result.output

    logs_before = q(a, "SELECT prediction_id, prediction, proba_good FROM logs_credit_risk ORDER BY 1")
    forced = build_workspace(a, rows=SMALL, seed=5, force=True)
    assert forced.built and forced.versions == {"champion": "1", "challenger": "2"}
    assert one(a, "SELECT count(*) FROM logs_credit_risk") == SMALL
    pd.testing.assert_frame_equal(
        q(a, "SELECT prediction_id, prediction, proba_good FROM logs_credit_risk ORDER BY 1"), logs_before)
    assert [v.version for v in Registry(forced.mlflow_uri).versions("credit-risk")] == ["2", "1"]


def test_a_foreign_config_is_not_overwritten(tmp_path: Path) -> None:
    (tmp_path / "vigil.toml").write_text("[vigil]\n")
    with pytest.raises(VigilError, match="not the demo's configuration"):
        build_workspace(tmp_path, rows=SMALL)
    assert (tmp_path / "vigil.toml").read_text() == "[vigil]\n"


# ------------------------------------------------------------------ the events, in the shared workspace


def test_volume_range_and_registry(demo_workspace: Path, demo_scenario: DemoScenario) -> None:
    s = demo_scenario
    r = q(demo_workspace, "SELECT count(*) AS n, min(ts) AS lo, max(ts) AS hi FROM logs_credit_risk").iloc[0]
    assert r.n == s.rows
    assert r.lo >= s.start and r.hi < s.end
    marker = json.loads((demo_workspace / MARKER).read_text())
    assert marker["scenario"]["drift_start"] == s.drift_start.isoformat()
    reg = Registry(f"sqlite:///{demo_workspace / 'mlflow.db'}")
    assert reg.version_by_alias(s.model, "champion").version == "1"
    assert reg.version_by_alias(s.model, "challenger").version == s.unfair_version
    train = reg.load_training_data(s.model, "champion")
    assert len(train) == s.training_rows and "label" in train.columns


def test_demo_sign_in_accounts(demo_workspace: Path) -> None:
    from dashboard.access.users import DEMO_USERS, authenticate

    listed = (demo_workspace / "demo-users.txt").read_text()
    for name, (role, password) in DEMO_USERS.items():
        assert f"password {password}" in listed
        assert authenticate(demo_workspace / "users.toml", name, password).role == role


def test_version_2_serves_a_share_from_its_day(demo_workspace: Path, demo_scenario: DemoScenario) -> None:
    s = demo_scenario
    early = one(demo_workspace, "SELECT count(*) FROM logs_credit_risk WHERE ts < ? AND model_version <> '1'",
                [s.v2_start])
    assert early == 0
    share = one(demo_workspace, "SELECT avg((model_version = '2')::INT) FROM logs_credit_risk WHERE ts >= ?",
                [s.v2_start])
    assert abs(share - s.v2_traffic_share) < 0.05


def test_version_2_is_unfair_to_women(demo_workspace: Path, demo_scenario: DemoScenario) -> None:
    rates = q(demo_workspace, "SELECT model_version, sex, avg((prediction = 'good')::INT) AS sel "
                              "FROM logs_credit_risk GROUP BY ALL").pivot(index="model_version", columns="sex",
                                                                           values="sel")
    di = rates["female"] / rates["male"]
    assert di["2"] < 0.8  # the four-fifths rule fails for version 2
    assert di["1"] > 0.85  # and holds for version 1
    assert demo_scenario.disadvantaged_group == ("sex", "female")


def test_income_and_purpose_drift_from_their_day(demo_workspace: Path, demo_scenario: DemoScenario) -> None:
    s = demo_scenario
    stats = q(demo_workspace, "SELECT ts >= ? AS after, median(income) AS income, "
                              "avg((purpose = 'debt_consolidation')::INT) AS debt FROM logs_credit_risk GROUP BY 1",
              [s.drift_start]).set_index("after")
    assert stats.loc[True, "income"] / stats.loc[False, "income"] == pytest.approx(s.income_drift_factor, rel=0.1)
    assert stats.loc[True, "debt"] > stats.loc[False, "debt"] + 0.1
    day_before = q(demo_workspace, "SELECT median(income) AS m FROM logs_credit_risk WHERE ts >= ? AND ts < ?",
                   [s.drift_start - timedelta(days=1), s.drift_start]).m[0]
    assert day_before == pytest.approx(stats.loc[False, "income"], rel=0.1)


def test_latency_spike_in_its_window(demo_workspace: Path, demo_scenario: DemoScenario) -> None:
    lo, hi = demo_scenario.latency_spike
    p95 = q(demo_workspace, "SELECT ts >= ? AND ts < ? AS spike, quantile_cont(latency_ms, 0.95) AS p95 "
                            "FROM logs_credit_risk GROUP BY 1", [lo, hi]).set_index("spike")["p95"]
    assert p95[True] > 3 * p95[False]
    assert p95[False] < 200 < p95[True]  # the demo config's latency_p95_ms threshold


def test_error_burst_in_its_window(demo_workspace: Path, demo_scenario: DemoScenario) -> None:
    lo, hi = demo_scenario.error_burst
    err = q(demo_workspace, "SELECT ts >= ? AND ts < ? AS burst, avg((status = 'error')::INT) AS rate, count(*) AS n "
                            "FROM logs_credit_risk GROUP BY 1", [lo, hi]).set_index("burst")
    assert err.loc[True, "rate"] > 0.15
    assert err.loc[False, "rate"] < 0.01


def test_labels_arrive_late_for_a_share(demo_workspace: Path, demo_scenario: DemoScenario) -> None:
    s = demo_scenario
    lab = q(demo_workspace, "SELECT count(*) AS n, min(l.ts - t.ts) AS min_delay, max(l.ts - t.ts) AS max_delay, "
                            "max(l.ts) AS last, any_value(l.source) AS source FROM current_labels l "
                            "JOIN logs_credit_risk t USING (prediction_id)").iloc[0]
    lo, hi = s.label_delay_days
    assert lab.min_delay >= timedelta(days=lo) and lab.max_delay <= timedelta(days=hi)
    assert lab["last"] < s.end and lab.source == s.label_source
    coverage = lab.n / s.rows
    assert 0.25 < coverage < s.label_share
    early = one(demo_workspace, "SELECT avg((l.prediction_id IS NOT NULL)::INT) FROM logs_credit_risk t LEFT JOIN "
                                "current_labels l USING (prediction_id) WHERE t.ts < ?", [s.day_start(10)])
    late = one(demo_workspace, "SELECT avg((l.prediction_id IS NOT NULL)::INT) FROM logs_credit_risk t LEFT JOIN "
                               "current_labels l USING (prediction_id) WHERE t.ts >= ?", [s.day_start(s.days - 1)])
    assert early == pytest.approx(s.label_share, abs=0.03)
    assert late < 0.05  # the last days' ground truth has not arrived yet


def test_training_command_retrains_with_labels(demo_workspace: Path, tmp_path: Path) -> None:
    """``python -m dashboard.demo.train --include-labels --reweighing`` against the demo's log store."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIGIL_", "MLFLOW_"))}
    env.update({"VIGIL_CONFIG": str(demo_workspace / "vigil.toml"),
                "VIGIL_MLFLOW_URI": f"sqlite:///{tmp_path / 'mlflow.db'}", "VIGIL_DATA_DIR": str(tmp_path)})
    # VIGIL_DATA_DIR moves the DuckDB file too: point it back at the demo's (read only here).
    env["VIGIL_DUCKDB_PATH"] = str(demo_workspace / "vigil.duckdb")
    out = subprocess.run([sys.executable, "-m", "dashboard.demo.train", "--model", "credit-risk", "--include-labels",
                          "--reweighing", "--seed", "11", "--rows", "2000"], env=env, cwd=tmp_path,
                         capture_output=True, text=True, timeout=600, check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    last = out.stdout.strip().splitlines()[-1]
    assert last.startswith("VIGIL_RESULT ")
    result = json.loads(last.removeprefix("VIGIL_RESULT "))
    assert result["model_version"] == "1"
    reg = Registry(env["VIGIL_MLFLOW_URI"])
    run = reg.run(result["run_id"])
    assert int(run.params["production_rows"]) > 1_000
    assert run.params["reweighing"] == "True"
    assert reg.version_by_alias("credit-risk", "challenger").run_id == result["run_id"]
    assert len(reg.load_training_data("credit-risk", "challenger")) == 2_000 + int(run.params["production_rows"])


def test_the_demo_biased_challenger_needs_a_justified_override(demo_workspace: Path, tmp_path: Path) -> None:
    """Version 2 serves traffic and is unfair on it: promoting it is an override, whatever else passes."""
    import shutil

    from dashboard.access.roles import Actor
    from dashboard.context import Context
    from dashboard.governance import approvals, cards
    from dashboard.settings import load_settings

    workspace = tmp_path / "ws"
    shutil.copytree(demo_workspace, workspace)
    ctx = Context(load_settings(workspace / "vigil.toml", env={}))
    manager = Actor("manager", "manager")
    with pytest.raises(VigilError, match=r"disparate_impact\[sex\].*written justification"):
        approvals.approve(ctx, manager, "credit-risk", "2")
    assert ctx.registry.version_by_alias("credit-risk", "champion").version == "1"
    done = approvals.approve(ctx, manager, "credit-risk", "2",
                             justification="accepted for a two-day fairness investigation only")
    assert done.overridden and "disparate_impact[sex]" in done.failed_policies
    assert done.evaluation is not None and done.evaluation.phase == "production"
    # Both demo versions start with the card their training run logged.
    for version in ("1", "2"):
        card = cards.load_card(ctx, "credit-risk", version)
        assert card.revision >= 1 and not card.missing_sections()
