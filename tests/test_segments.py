"""Segments: per-segment metrics, an exact decomposition of a change, the ranking and the CLI."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from connectors.windows import Window, parse_window
from dashboard.cli import cli
from dashboard.commands.common import run_cli
from dashboard.errors import VigilError
from dashboard.governance.policy import FAIL, evaluate
from dashboard.monitoring.segments import SMALL, compute_segment_change, rank_columns
from dashboard.settings import PolicySpec
from tests.conftest import DEMO_CONFIG

BEFORE = parse_window("2026-01-01..2026-01-03")
AFTER = parse_window("2026-01-04..2026-01-06")


@pytest.fixture
def shifted(store, schema, logs_factory, write_file):
    """Six days of labelled logs; from day 4 'business' loans are twice as common and mostly mispredicted."""
    n = 6 * 1000
    df = logs_factory(n, seed=31)
    df["ts"] = pd.Timestamp("2026-01-01", tz="UTC") + pd.to_timedelta(np.arange(n) * 86.4, unit="s")
    rng = np.random.default_rng(32)
    after = np.arange(n) >= 3000
    df["purpose"] = np.where(rng.random(n) < np.where(after, 0.4, 0.2), "business",
                             rng.choice(["car", "home", "education"], n))
    df.loc[rng.random(n) < 0.002, "purpose"] = "rare"
    right = rng.random(n) < np.where(after & (df["purpose"] == "business"), 0.5, 0.9)
    other = np.where(df["prediction"] == "good", "bad", "good")
    truth = np.where(right, df["prediction"], other)
    store.ingest([write_file(df, "seg.parquet")], schema)
    store.add_labels(schema, pd.DataFrame({"prediction_id": df["prediction_id"], "label": truth}),
                     source="ground_truth")
    return df, truth


def test_decomposition_is_exact_and_names_the_segment(ctx, shifted):
    df, truth = shifted
    ch = compute_segment_change(ctx, "credit-risk", BEFORE, AFTER, ("purpose",))
    acc = [float((df["prediction"] == truth)[m].mean()) for m in (np.arange(len(df)) < 3000,
                                                                     np.arange(len(df)) >= 3000)]
    assert ch.before_value == pytest.approx(acc[0], abs=1e-12) and ch.after_value == pytest.approx(acc[1], abs=1e-12)
    assert ch.ranking["contribution"].sum() == pytest.approx(ch.change, abs=1e-12)
    assert ch.top is not None and ch.top["segment"] == "purpose = business"
    assert ch.top["share_of_change"] > 0.8
    assert SMALL in set(ch.ranking["segment"])  # 'rare' (about 6 rows a window) is pooled
    assert ch.headline().startswith("accuracy fell") and "purpose = business" in ch.headline()
    pair = compute_segment_change(ctx, "credit-risk", BEFORE, AFTER, ("purpose", "housing"), metric="error_rate")
    assert pair.ranking["contribution"].sum() == pytest.approx(pair.change, abs=1e-12)
    seg = ch.after_segments.set_index("segment")
    assert seg.loc["purpose = business", "accuracy"] == pytest.approx(0.5, abs=0.05)
    assert ranked_first(ctx) == ("purpose",)
    with pytest.raises(VigilError, match="categorical columns"):
        compute_segment_change(ctx, "credit-risk", BEFORE, AFTER, ("income",))


def ranked_first(ctx) -> tuple[str, ...]:
    return rank_columns(ctx, "credit-risk", BEFORE, AFTER)[0].columns


def test_cli_segments(ctx, shifted, monkeypatch, capsys):
    monkeypatch.setenv("VIGIL_CONFIG", str(DEMO_CONFIG))
    args = ["segments", "--model", "credit-risk", "--from", BEFORE.label, "--to", AFTER.label]
    assert run_cli(cli, [*args, "--json"]) == 0
    assert '"top_segment": "purpose = business"' in capsys.readouterr().out
    assert run_cli(cli, [*args, "--column", "purpose"]) == 0
    assert "purpose = business" in capsys.readouterr().out
    ev = evaluate(ctx, "credit-risk", window=AFTER.label, policies=[(PolicySpec(
        "seg", "segment_contribution", "<=", 0.02, params={"column": "purpose"}), "config")])
    r = ev.results[0]
    assert r.subject == "purpose = business" and r.value > 0.02 and r.verdict == FAIL  # before = the 3 days before
    assert run_cli(cli, [*args, "--column", "income"]) == 2
    assert "Traceback" not in capsys.readouterr().err


def test_demo_ranking_names_purpose(demo_module_ctx, demo_scenario):
    """After the demo's drift day, purpose is the column whose segments explain the accuracy change."""
    s = demo_scenario
    before, after = Window(s.day_start(s.drift_day - 7), s.drift_start), Window(s.drift_start, s.end)
    ranked = rank_columns(demo_module_ctx, s.model, before, after)
    assert ranked[0].columns == ("purpose",)
    assert str(ranked[0].ranking.iloc[0]["segment"]).startswith("purpose = ")
