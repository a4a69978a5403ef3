"""Fairness through the log store: SQL groups and bins, labels join, versions, intersections, time, CLI."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest

from connectors.logstore import LogStore
from connectors.schema import LogSchema
from connectors.windows import parse_window
from dashboard.cli import cli
from dashboard.commands.common import run_cli
from dashboard.context import Context
from dashboard.errors import VigilError
from dashboard.monitoring.fairness import (
    METRIC_KEYS,
    compute_fairness,
    fairness_over_time,
    group_rates_over_time,
)
from dashboard.settings import PolicySpec
from tests.conftest import DEMO_CONFIG, make_logs
from tests.fixtures.fairness import age_group, aif360_reference, scenario

WINDOW = parse_window("2026-01-01..2026-01-31")
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def loaded(ctx: Context, store: LogStore, schema: LogSchema,
           write_file: Callable[[pd.DataFrame, str], Path]) -> pd.DataFrame:
    df = scenario()
    report = store.ingest([write_file(df.drop(columns=["label"]), "logs.parquet")], schema)
    assert report.rows_added == len(df)
    labels = df.loc[df["label"].notna(), ["prediction_id", "label"]]
    store.add_labels(schema, labels, source="ground_truth")
    return df


@pytest.mark.parametrize("version", [None, "1", "2"])
def test_store_metrics_equal_aif360(ctx: Context, loaded: pd.DataFrame, version: str | None) -> None:
    report = compute_fairness(ctx, "credit-risk", WINDOW, version=version)
    frame = loaded if version is None else loaded[loaded["model_version"] == version]
    frame = frame.assign(age_group=age_group(frame["age"]))
    assert report.n_rows == len(frame)
    assert report.n_labelled == int(frame["label"].notna().sum())
    for attr, col, priv, unpriv in (("sex", "sex", ["male"], ["female"]),
                                    ("age", "age_group", ["25-39", "40-64"], ["18-24", "65+"])):
        theirs, _ = aif360_reference(frame, col, priv, unpriv, pred="prediction", weight=None)
        a = report.attribute(attr)
        for key in METRIC_KEYS:
            ours = a.metrics[key].value
            assert ours is not None and math.isfinite(theirs[key])
            assert abs(ours - theirs[key]) <= 1e-9, (attr, key, ours, theirs[key])
    assert report.attribute("age").n_missing == int(frame["age"].isna().sum()) > 0


def test_injected_gap_shows_only_for_the_unfair_version(ctx: Context, loaded: pd.DataFrame) -> None:
    fair = compute_fairness(ctx, "credit-risk", WINDOW, attribute="sex", version="1").attribute("sex")
    unfair = compute_fairness(ctx, "credit-risk", WINDOW, attribute="sex", version="2").attribute("sex")
    assert fair.metrics["disparate_impact"].verdict == "pass"
    assert unfair.metrics["disparate_impact"].verdict == "fail"
    assert unfair.metrics["statistical_parity_difference"].verdict == "fail"
    assert unfair.worst_group == "female"
    assert unfair.metrics["disparate_impact"].uses == "all rows"
    assert unfair.metrics["equal_opportunity_difference"].uses == "labelled rows"
    assert unfair.metrics["equal_opportunity_difference"].n_unprivileged < unfair.n_unprivileged


def test_privileged_override_and_errors(ctx: Context, loaded: pd.DataFrame) -> None:
    flipped = compute_fairness(ctx, "credit-risk", WINDOW, attribute="sex", version="2",
                               privileged=["female"]).attribute("sex")
    assert flipped.privileged == ("female",) and flipped.unprivileged == ("male",)
    assert flipped.metrics["disparate_impact"].value is not None
    assert flipped.metrics["disparate_impact"].value > 1.25
    with pytest.raises(VigilError, match="not a protected attribute"):
        compute_fairness(ctx, "credit-risk", WINDOW, attribute="income")
    with pytest.raises(VigilError, match="choose the attribute"):
        compute_fairness(ctx, "credit-risk", WINDOW, privileged=["male"])


def test_intersections_name_the_worst_off_group_and_small_groups(ctx: Context, loaded: pd.DataFrame) -> None:
    report = compute_fairness(ctx, "credit-risk", WINDOW, version="2")
    (inter,) = report.intersections
    assert inter.attributes == ("sex", "age")
    assert inter.worst_group is not None and inter.worst_group.startswith("sex=female × age=")
    g = inter.groups
    assert set(g["sex"]) == {"female", "male"}
    # 65+ holds 20 rows in version 2 of this scenario: reported as too small, not scored
    small = g[g["n"] < report.min_group_size]
    assert len(small) and small["too_small"].all() and small["ratio_to_best"].isna().all()
    assert g.loc[~g["too_small"], "ratio_to_best"].max() == pytest.approx(1.0)


def test_window_with_one_group_is_undefined_not_nan(ctx: Context, store: LogStore, schema: LogSchema,
                                                    write_file: Callable[[pd.DataFrame, str], Path]) -> None:
    df = make_logs(n=200, seed=9)
    df["sex"] = "male"
    store.ingest([write_file(df, "men.parquet")], schema)
    a = compute_fairness(ctx, "credit-risk", WINDOW, attribute="sex").attribute("sex")
    m = a.metrics["disparate_impact"]
    assert m.value is None and m.verdict == "undefined"
    assert m.display() == "undefined: unprivileged group has no rows"
    assert a.notes == ("no row of an unprivileged group in this window",)
    table = compute_fairness(ctx, "credit-risk", WINDOW, attribute="sex").metrics_table()
    assert not table["shown"].str.contains("nan").any()


def test_over_time_with_intervals(ctx: Context, loaded: pd.DataFrame) -> None:
    daily = fairness_over_time(ctx, "credit-risk", WINDOW, "sex", bucket="day", version="2")
    di = daily[daily["metric"] == "disparate_impact"]
    assert len(di) == loaded["ts"].dt.floor("D").nunique()
    ok = di.dropna(subset=["value", "lower", "upper"])
    assert len(ok) == len(di)
    assert ((ok["lower"] <= ok["value"]) & (ok["value"] <= ok["upper"])).all()
    assert (ok["value"] < 1).all() and (di["band_low"] == 0.8).all()
    weekly = fairness_over_time(ctx, "credit-risk", WINDOW, "sex", bucket="week", version="2")
    spd = weekly[weekly["metric"] == "statistical_parity_difference"]
    assert len(spd) < len(di) and (spd["upper"] < 0).all()  # the gap is real, not noise
    rates = group_rates_over_time(ctx, "credit-risk", WINDOW, "sex", version="2")
    assert set(rates["group"]) == {"female", "male"}
    assert ((rates["lower"] <= rates["selection_rate"]) & (rates["selection_rate"] <= rates["upper"])).all()
    with pytest.raises(VigilError, match="bucket"):
        fairness_over_time(ctx, "credit-risk", WINDOW, "sex", bucket="month")


def test_cli_fairness(loaded: pd.DataFrame, capsys: pytest.CaptureFixture[str]) -> None:
    base = ["--config", str(DEMO_CONFIG), "fairness", "--model", "credit-risk", "--window", "2026-01-01..2026-01-31"]
    assert run_cli(cli, [*base, "--version", "2", "--attribute", "sex", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    (sex,) = out["attributes"]
    assert sex["metrics"]["disparate_impact"]["verdict"] == "fail"
    assert out["n_rows"] == int((loaded["model_version"] == "2").sum())
    assert run_cli(cli, [*base, "--version", "2", "--fail-on-violation"]) == 1
    text = capsys.readouterr().out
    assert "FAIL  disparate_impact" in text and "worst-off group sex=female" in text
    assert run_cli(cli, [*base, "--version", "1", "--attribute", "sex", "--fail-on-violation"]) == 0
    assert run_cli(cli, [*base, "--attribute", "nope"]) == 2
    assert "not a protected attribute" in capsys.readouterr().err


def test_bench_runs_at_tiny_size(tmp_path: Path) -> None:
    out = tmp_path / "fairness.json"
    proc = subprocess.run([sys.executable, str(REPO / "bench" / "fairness.py"), "--rows", "20000",
                           "--repeats", "1", "--out", str(out)], capture_output=True, text=True, cwd=REPO,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(out.read_text())
    assert result["name"] == "fairness" and result["rows"] == 20000
    assert result["max_abs_diff"] <= 1e-9 and result["metrics_compared"] >= 13
    assert result["speedup"] == pytest.approx(result["reference_seconds"] / result["vigil_seconds"])


def test_model_policies_replace_default_thresholds(ctx: Context, loaded: pd.DataFrame) -> None:
    cfg = ctx.model("credit-risk")
    lenient = PolicySpec(name="di-floor", metric="disparate_impact", comparator=">=", threshold=0.3,
                         params={"attribute": "sex"})
    strict = PolicySpec(name="spd-any", metric="statistical_parity_difference", comparator="within",
                        threshold=(-0.5, 0.5))
    models = {**ctx.settings.models, "credit-risk": replace(cfg, policies=(lenient, strict))}
    pctx = Context(replace(ctx.settings, models=models))
    report = compute_fairness(pctx, "credit-risk", WINDOW, version="2")
    sex, age = report.attribute("sex"), report.attribute("age")
    assert sex.metrics["disparate_impact"].verdict == "pass"
    assert sex.metrics["disparate_impact"].threshold == ">= 0.3 (policy 'di-floor')"
    assert age.metrics["disparate_impact"].threshold == "within [0.8, 1.25]"  # the policy names sex only
    assert sex.metrics["statistical_parity_difference"].threshold == "within [-0.5, 0.5] (policy 'spd-any')"
    over = fairness_over_time(pctx, "credit-risk", WINDOW, "sex", version="2")
    di = over[over["metric"] == "disparate_impact"]
    assert (di["band_low"] == 0.3).all() and di["band_high"].isna().all()
