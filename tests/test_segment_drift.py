"""Drift share per segment: equal to Vigil's whole-window drift run on the segment's rows alone, small segments
pooled, ranked by drift share, and shown by `vigil segments --metric drift_share` and the Operations page."""

from __future__ import annotations

import json
import math
import re
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from connectors.windows import parse_window
from dashboard.context import Context
from dashboard.errors import VigilError
from dashboard.monitoring.drift import compute_drift
from dashboard.monitoring.segment_drift import compute_segment_drift, rank_columns_by_drift
from dashboard.monitoring.segments import SMALL
from dashboard.settings import load_settings
from tests.conftest import DEMO_CONFIG
from tests.vigil_cli import vigil

REPO = Path(__file__).resolve().parents[1]
BEFORE = parse_window("2026-01-01..2026-01-03")
AFTER = parse_window("2026-01-04..2026-01-06")
ROWS_PER_DAY = 1000


def logs(logs_factory) -> pd.DataFrame:
    """Six days; from day 4 business loans ask for more and earn more (income x1.6, loan amount x1.5,
    debt-to-income +0.3, four more open accounts), and home loans come from older applicants; the other
    segments stay as they were. About 0.2% of rows have a 'rare' purpose."""
    n = 6 * ROWS_PER_DAY
    df = logs_factory(n, seed=51, id_prefix="sd")
    df["ts"] = pd.Timestamp("2026-01-01", tz="UTC") + pd.to_timedelta(np.arange(n) * 86400 / ROWS_PER_DAY, unit="s")
    rng = np.random.default_rng(52)
    df.loc[rng.random(n) < 0.002, "purpose"] = "rare"
    after = np.arange(n) >= 3 * ROWS_PER_DAY
    business = after & (df["purpose"] == "business").to_numpy()
    df.loc[business, "income"] *= 1.6
    df.loc[business, "loan_amount"] *= 1.5
    df.loc[business, "debt_to_income"] += 0.3
    df.loc[business, "num_open_accounts"] += 4
    home = after & (df["purpose"] == "home").to_numpy()
    df.loc[home, "age"] = rng.integers(50, 80, int(home.sum())).astype(float)
    return df


@pytest.fixture
def shifted(store, schema, logs_factory, write_file) -> pd.DataFrame:
    df = logs(logs_factory)
    store.ingest([write_file(df, "sd.parquet")], schema)
    return df


def alone(df: pd.DataFrame, tmp_path: Path, write_file, monkeypatch: pytest.MonkeyPatch, name: str) -> Context:
    """A store of its own holding only ``df`` (one segment's rows), for an independent drift run."""
    with monkeypatch.context() as m:
        m.setenv("VIGIL_DATA_DIR", str(tmp_path / f"alone-{name}"))
        ctx = Context(load_settings(DEMO_CONFIG))
    ctx.store.ingest([write_file(df, f"alone-{name}.parquet")], ctx.schema("credit-risk"))
    return ctx


def test_drift_share_per_segment_equals_drift_on_the_segment_alone(ctx, shifted, tmp_path, write_file,
                                                                   monkeypatch):
    sd = compute_segment_drift(ctx, "credit-risk", BEFORE, AFTER, ("purpose",))
    features = [c for c in ctx.model("credit-risk").features if c != "purpose"]
    assert list(sd.features) == features
    ranking = sd.ranking.set_index("segment")
    tested = [s for s in ranking.index if s != SMALL]
    assert sorted(tested) == ["purpose = business", "purpose = car", "purpose = education", "purpose = home"]
    for segment in tested:
        value = segment.split(" = ")[1]
        own = alone(shifted[shifted["purpose"] == value], tmp_path, write_file, monkeypatch, value)
        whole = compute_drift(own, "credit-risk", AFTER, BEFORE)
        cols = [c for c in whole.columns if c.column in features]
        judged = [c for c in cols if c.judged]
        row = ranking.loc[segment]
        assert row["n_judged"] == len(judged) == len(features)
        assert row["n_drifted"] == sum(c.drifted for c in judged)
        assert row["drift_share"] == pytest.approx(sum(c.drifted for c in judged) / len(judged), abs=0)
        assert set(filter(None, row["drifted"].split(", "))) == {c.column for c in judged if c.drifted}
        assert row["n_before"] == whole.n_reference and row["n_after"] == whole.n_current
    assert list(sd.ranking["drift_share"].dropna()) == sorted(sd.ranking["drift_share"].dropna(), reverse=True)
    business = ranking.loc["purpose = business"]
    assert sd.ranking.iloc[0]["segment"] == "purpose = business" and business["dataset_drift"]
    shifted_columns = {"income", "loan_amount", "debt_to_income", "num_open_accounts"}
    assert shifted_columns <= set(business["drifted"].split(", ")) and "age" in ranking.loc["purpose = home", "drifted"]
    pooled = ranking.loc[SMALL]  # 'rare': about 6 rows a window
    assert sd.ranking.iloc[-1]["segment"] == SMALL and math.isnan(pooled["drift_share"])
    assert pooled["n_after"] == int((shifted["purpose"] == "rare").to_numpy()[3 * ROWS_PER_DAY:].sum())
    assert sd.headline() == (f"drift share {business['drift_share']:.2f} in purpose = business "
                             f"({business['n_drifted']} of 9 features drift), the most of 4 segments")
    ranked = rank_columns_by_drift(ctx, "credit-risk", BEFORE, AFTER)
    assert {d.columns[0] for d in ranked} == {"employment_type", "housing", "purpose", "sex"}
    tops = [d.top["drift_share"] for d in ranked if d.top is not None]
    assert len(tops) == 4 and tops == sorted(tops, reverse=True)  # columns ranked by their top segment


def test_too_few_rows_and_bad_columns(ctx, shifted):
    """min_rows pools segments; a segment under thresholds.min_drift_rows gets no share, with the reason."""
    sd = compute_segment_drift(ctx, "credit-risk", BEFORE, AFTER, ("purpose", "housing"), min_rows=50)
    scored = sd.ranking[sd.ranking["segment"] != SMALL]
    assert len(scored) == 12 and scored["drift_share"].isna().all()  # about 250 rows each, fewer than 500
    assert scored["note"].str.contains("thresholds.min_drift_rows").all() and sd.top is None
    assert sd.headline().startswith("no segment of purpose x housing has a drift verdict")
    with pytest.raises(VigilError, match="categorical columns"):
        compute_segment_drift(ctx, "credit-risk", BEFORE, AFTER, ("income",))


def test_cli_segments_drift_share(ctx, shifted, monkeypatch):
    monkeypatch.setenv("VIGIL_CONFIG", str(DEMO_CONFIG))
    args = ["segments", "--model", "credit-risk", "--from", BEFORE.label, "--to", AFTER.label, "--metric",
            "drift_share"]
    out = vigil(*args, "--column", "purpose", "--json")
    assert out.returncode == 0, out.stderr
    change = json.loads(out.stdout)["changes"][0]
    expected = compute_segment_drift(ctx, "credit-risk", BEFORE, AFTER, ("purpose",))
    assert change["top_segment"] == "purpose = business" and change["metric"] == "drift_share"
    assert [r["segment"] for r in change["ranking"]] == list(expected.ranking["segment"])
    text = vigil(*args)
    assert text.returncode == 0, text.stderr
    ranked = [d.columns[0] for d in rank_columns_by_drift(ctx, "credit-risk", BEFORE, AFTER)]
    assert sorted(ranked, key=lambda c: text.stdout.index(f"by {c}:")) == ranked  # in the same order
    line = next(x for x in text.stdout.splitlines() if "purpose = business" in x and "rows" in x)
    top = expected.ranking.iloc[0]
    assert f"{top['drift_share']:.2f} ({top['n_drifted']}/9)  DRIFT" in line and "income" in line
    bad = vigil(*args, "--column", "income")
    assert bad.returncode == 2 and "Traceback" not in bad.stderr and "categorical columns" in bad.stderr


def test_operations_page_shows_drift_share_per_segment(monkeypatch, ctx, settings, shifted, fresh_caches):
    monkeypatch.setenv("VIGIL_CONFIG", str(DEMO_CONFIG))
    monkeypatch.setenv("VIGIL_DATA_DIR", str(settings.data_dir))
    at = AppTest.from_file(str(REPO / "pages" / "4_operations.py"), default_timeout=300).run()
    at.date_input(key="ops_window").set_value((date(2026, 1, 1), date(2026, 1, 6))).run()
    at.selectbox(key="ops_segment_column").set_value("purpose").run()
    at.selectbox(key="ops_segment_metric").set_value("drift_share").run()
    at.slider(key="ops_segment_split").set_value(3).run()  # before: days 1-3, after: days 4-6
    assert not at.exception, at.exception
    table = next(d.value for d in at.dataframe if "drift_share" in d.value.columns)
    expected = compute_segment_drift(ctx, "credit-risk", BEFORE, AFTER, ("purpose",)).ranking
    assert table["segment"].tolist() == expected["segment"].tolist()
    assert table["drift_share"].tolist() == pytest.approx(expected["drift_share"].tolist(), nan_ok=True)
    top = expected.iloc[0]
    headline = f"drift share {top['drift_share']:.2f} in purpose = business ({top['n_drifted']} of 9 features drift)"
    assert any(re.sub(r"\\(.)", r"\1", m.value).startswith(headline) for m in at.markdown)  # md escapes removed
    assert any("features drifting" in json.dumps(json.loads(c.proto.spec)["layout"]) for c in at.get("plotly_chart"))
