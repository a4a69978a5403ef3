"""Drift: Vigil's SQL + formulas against Evidently 0.7's DataDriftPreset on generated data.

Each dataset is ingested into a fresh log store (reference = days 1-2, current = days 3-4) and the same
rows are handed to Evidently as pandas frames with an explicit DataDefinition (column types from the
config). Evidently's verdicts (``evidently_drifted``) must be identical and scores within 1e-6 relative
(1e-9 absolute near zero); Vigil's own verdicts equal them wherever a column has at least
``thresholds.min_drift_rows`` current values, and are "too few rows" (not drifted) below that.
"""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from connectors.windows import parse_window
from dashboard.context import Context
from dashboard.errors import VigilError
from dashboard.monitoring import drift_stats as ds
from dashboard.monitoring.drift import compute_drift, drift_over_time, result_to_dict, share_by_bucket
from dashboard.settings import Thresholds, settings_from_mapping

REF_WINDOW = parse_window("2026-03-01..2026-03-02")
CUR_WINDOW = parse_window("2026-03-03..2026-03-04")
REL_TOL = 1e-6
MIN_ROWS = Thresholds().min_drift_rows


def make_ctx(tmp_path: Path, features: dict[str, str], drift: dict[str, Any] | None = None) -> Context:
    raw: dict[str, Any] = {"vigil": {"data_dir": str(tmp_path / "data")},
                           "models": {"m": {"features": features, "classes": ["no", "yes"], "favourable": "yes",
                                            "extra_columns": "ignore", "drift": drift or {}}}}
    return Context(settings_from_mapping(raw, env={}, base_dir=tmp_path))


def ingest(ctx: Context, tmp_path: Path, ref: pd.DataFrame, cur: pd.DataFrame) -> None:
    """Reference rows get timestamps on days 1-2, current rows on days 3-4; prediction is random."""
    frames = []
    for name, df, start in (("r", ref, "2026-03-01"), ("c", cur, "2026-03-03")):
        n = len(df)
        out = df.copy()
        out.insert(0, "prediction_id", [f"{name}{i}" for i in range(n)])
        step = pd.Timedelta(days=2) / max(n, 1)
        out.insert(1, "ts", pd.Timestamp(start) + step * np.arange(n))
        out["model_version"] = "1"
        if "prediction" not in out:
            out["prediction"] = np.where(np.arange(n) % 3 == 0, "yes", "no")
        frames.append(out)
    path = tmp_path / "logs.parquet"
    pd.concat(frames, ignore_index=True).to_parquet(path, index=False)
    report = ctx.store.ingest([path], ctx.schema("m"))
    assert not report.rejected, report.problem_lines()


def evidently_run(ref: pd.DataFrame, cur: pd.DataFrame, features: dict[str, str],
                  per_column_method: dict[str, str] | None = None) -> dict[str, dict[str, Any]]:
    """Evidently's per-column method, score and verdict (its Value Drift test status)."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    cols = [*features, "prediction"]
    dd = DataDefinition(numerical_columns=[c for c, t in features.items() if t == "numerical"],
                        categorical_columns=[c for c, t in features.items() if t == "categorical"] + ["prediction"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        snap = Report([DataDriftPreset(columns=cols, per_column_method=per_column_method)], include_tests=True).run(
            current_data=Dataset.from_pandas(cur[cols], data_definition=dd),
            reference_data=Dataset.from_pandas(ref[cols], data_definition=dd))
    d = snap.dict()
    out: dict[str, dict[str, Any]] = {}
    for m in d["metrics"]:
        cfg = m["config"]
        if cfg["type"].endswith("ValueDrift"):
            out[cfg["column"]] = {"method": cfg["method"], "score": float(m["value"]), "threshold": cfg["threshold"]}
        elif cfg["type"].endswith("DriftedColumnsCount"):
            out["__share__"] = {"share": float(m["value"]["share"])}
    for t in d["tests"]:
        params = t["metric_config"]["params"]
        if params["type"].endswith("ValueDrift"):
            out[params["column"]]["drifted"] = str(t["status"]).endswith("FAIL")
    return out


def prediction_col(ref: pd.DataFrame, cur: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    ref, cur = ref.copy(), cur.copy()
    for df in (ref, cur):
        if "prediction" not in df:
            df["prediction"] = np.where(np.arange(len(df)) % 3 == 0, "yes", "no")
    return ref, cur


def assert_matches(ctx: Context, ref: pd.DataFrame, cur: pd.DataFrame, features: dict[str, str],
                   per_column_method: dict[str, str] | None = None) -> dict[str, Any]:
    ref, cur = prediction_col(ref, cur)
    result = compute_drift(ctx, "m", CUR_WINDOW, REF_WINDOW)
    ev = evidently_run(ref, cur, features, per_column_method)
    mine = {c.column: c for c in result.columns}
    for col in [*features, "prediction"]:
        c, e = mine[col], ev[col]
        assert c.method is not None, (col, c.note)
        assert ds.METHODS[c.method].display == e["method"] or c.method == e["method"], (col, c.method, e)
        assert c.threshold == pytest.approx(e["threshold"])
        assert c.evidently_drifted == e["drifted"], (col, c.score, e)
        assert c.too_few_rows == (c.n_current < MIN_ROWS)
        assert c.drifted == (e["drifted"] and not c.too_few_rows), (col, c.n_current, e)
        assert c.score is not None
        assert math.isclose(c.score, e["score"], rel_tol=REL_TOL, abs_tol=1e-9), (col, c.score, e["score"])
    assert result.evidently_share_drifted == pytest.approx(ev["__share__"]["share"])
    assert result.evidently_dataset_drift == (ev["__share__"]["share"] >= 0.5)
    if result.n_judged == result.n_tested:  # every column on enough rows: Vigil's verdicts are Evidently's
        assert result.share_drifted == pytest.approx(ev["__share__"]["share"])
        assert result.dataset_drift == (ev["__share__"]["share"] >= 0.5)
    return {c: mine[c] for c in mine}


FEATURES_MIXED = {"num": "numerical", "shifted": "numerical", "few": "numerical", "cat": "categorical",
                  "binary": "categorical", "newcat": "categorical", "const": "numerical"}


def mixed_frames(n_ref: int, n_cur: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)

    def frame(n: int, cur: bool) -> pd.DataFrame:
        return pd.DataFrame({
            "num": rng.normal(0, 1, n),
            "shifted": rng.normal(0.6 if cur else 0.0, 1, n),
            "few": rng.choice([12.0, 24.0, 36.0, 60.0], n, p=[0.1, 0.2, 0.3, 0.4] if cur else [0.25] * 4),
            "cat": rng.choice(["a", "b", "c", "d"], n),
            "binary": rng.choice(["x", "y"], n, p=[0.3, 0.7] if cur else [0.5, 0.5]),
            "newcat": rng.choice(["p", "q", "r"] if cur else ["p", "q"], n),
            "const": np.full(n, 7.0),
        })

    return frame(n_ref, False), frame(n_cur, True)


def test_small_reference_matches_evidently(tmp_path: Path) -> None:
    """n_ref <= 1000: KS (exact), chi-square, Z-test; few-valued numeric -> chi-square; new category -> p=0.
    450 current rows are below min_drift_rows: Evidently's verdicts are compared, Vigil gives none."""
    ref, cur = mixed_frames(600, 450, seed=1)
    ctx = make_ctx(tmp_path, FEATURES_MIXED)
    ingest(ctx, tmp_path, ref, cur)
    mine = assert_matches(ctx, ref, cur, FEATURES_MIXED)
    assert mine["num"].method == "ks" and mine["few"].method == "chisquare"
    assert mine["binary"].method == "z" and mine["const"].method == "z" and mine["const"].score == 1.0
    assert mine["newcat"].score == 0.0 and mine["newcat"].evidently_drifted and "r" in mine["newcat"].note
    assert mine["shifted"].evidently_drifted and not mine["num"].evidently_drifted
    assert all(c.too_few_rows and not c.drifted for c in mine.values())


def test_large_reference_matches_evidently(tmp_path: Path) -> None:
    """n_ref > 1000: normed Wasserstein (exact, in SQL) and Jensen-Shannon, numeric with few values too."""
    ref, cur = mixed_frames(2500, 1800, seed=2)
    ctx = make_ctx(tmp_path, FEATURES_MIXED)
    ingest(ctx, tmp_path, ref, cur)
    mine = assert_matches(ctx, ref, cur, FEATURES_MIXED)
    assert mine["num"].method == "wasserstein" and mine["cat"].method == "jensenshannon"
    assert mine["few"].method == "jensenshannon" and mine["const"].method == "jensenshannon"


def test_overrides_match_evidently(tmp_path: Path) -> None:
    """Per-column methods from the config: PSI and JS over Sturges bins, KS asymptotic, JS over 13 values."""
    rng = np.random.default_rng(3)
    feats = {"a": "numerical", "b": "numerical", "c": "numerical", "d": "categorical", "e": "numerical"}
    methods = {"a": "psi", "b": "jensenshannon", "c": "ks", "d": "psi", "e": "jensenshannon"}
    ref = pd.DataFrame({"a": rng.normal(0, 1, 11000), "b": rng.gamma(2, 2, 11000), "c": rng.normal(0, 1, 11000),
                        "d": rng.choice(list("uvw"), 11000), "e": rng.integers(0, 12, 11000).astype(float)})
    cur = pd.DataFrame({"a": rng.normal(0.1, 1, 3000), "b": rng.gamma(2.2, 2, 3000), "c": rng.normal(0.05, 1, 3000),
                        "d": rng.choice(list("uvwx"), 3000), "e": rng.integers(0, 13, 3000).astype(float)})
    ctx = make_ctx(tmp_path, feats, drift={k: {"method": v} for k, v in methods.items()})
    ingest(ctx, tmp_path, ref, cur)
    mine = assert_matches(ctx, ref, cur, feats, per_column_method=methods)
    assert {c: mine[c].method for c in methods} == methods


def test_missing_values_one_row_and_inf(tmp_path: Path) -> None:
    """NaN and ±inf are dropped per column (as Evidently cleans them); a one-row current window works."""
    rng = np.random.default_rng(4)
    feats = {"x": "numerical", "k": "categorical"}
    ref = pd.DataFrame({"x": rng.normal(0, 1, 300), "k": rng.choice(["a", "b", "c"], 300)})
    ref.loc[::7, "x"] = np.nan
    ref.loc[::11, "x"] = np.inf
    ref.loc[::5, "k"] = None
    cur = pd.DataFrame({"x": [0.5], "k": ["a"]})
    ctx = make_ctx(tmp_path, feats)
    ingest(ctx, tmp_path, ref, cur)
    mine = assert_matches(ctx, ref, cur, feats)
    assert mine["x"].n_reference == int(np.isfinite(ref["x"]).sum()) and mine["x"].n_current == 1


def test_bad_input_gives_clear_answers(tmp_path: Path) -> None:
    """Empty window -> message; all-null column -> not tested with the reason; other columns still tested."""
    rng = np.random.default_rng(5)
    feats = {"x": "numerical", "allnull": "numerical", "nullcat": "categorical"}
    ref = pd.DataFrame({"x": rng.normal(0, 1, 200), "allnull": np.nan, "nullcat": None})
    cur = pd.DataFrame({"x": rng.normal(0, 1, 100), "allnull": np.nan, "nullcat": None})
    ctx = make_ctx(tmp_path, feats)
    ingest(ctx, tmp_path, ref, cur)
    result = compute_drift(ctx, "m", CUR_WINDOW, REF_WINDOW)
    by = {c.column: c for c in result.columns}
    assert not by["allnull"].tested and "all missing" in by["allnull"].note
    assert not by["nullcat"].tested and "all missing" in by["nullcat"].note
    assert by["x"].tested and result.n_tested == 2  # x and prediction
    with pytest.raises(VigilError, match="has no logged predictions"):
        compute_drift(ctx, "m", parse_window("2027-01-01..2027-01-02"), REF_WINDOW)
    with pytest.raises(VigilError, match="reference window"):
        compute_drift(ctx, "m", CUR_WINDOW, "2025-01-01..2025-01-02")
    bad = make_ctx(tmp_path, feats, drift={"x": {"method": "jensenshannonx"}})
    with pytest.raises(VigilError, match="not one of"):
        compute_drift(bad, "m", CUR_WINDOW, REF_WINDOW)
    empty = make_ctx(tmp_path / "other", feats)
    with pytest.raises(VigilError, match="ingested"):
        compute_drift(empty, "m", CUR_WINDOW, REF_WINDOW)


def test_drift_over_time_equals_per_window_results(tmp_path: Path) -> None:
    """Each daily bucket's scores equal compute_drift on that day alone (set-based vs one window)."""
    ref, cur = mixed_frames(1500, 900, seed=6)
    ctx = make_ctx(tmp_path, FEATURES_MIXED)
    ingest(ctx, tmp_path, ref, cur)
    over = drift_over_time(ctx, "m", CUR_WINDOW, bucket="day", reference=REF_WINDOW)
    assert sorted(over["bucket"].unique()) == [pd.Timestamp("2026-03-03"), pd.Timestamp("2026-03-04")]
    for day in ("2026-03-03", "2026-03-04"):
        single = compute_drift(ctx, "m", parse_window(f"{day}..{day}"), REF_WINDOW)
        rows = over[over["bucket"] == pd.Timestamp(day)].set_index("column")
        for c in single.columns:
            assert rows.loc[c.column, "method"] == c.method
            assert c.score is not None
            got = float(rows.loc[c.column, "score"])  # type: ignore[arg-type]
            assert math.isclose(got, c.score, rel_tol=1e-9, abs_tol=1e-12)
            assert bool(rows.loc[c.column, "drifted"]) == c.drifted
            assert bool(rows.loc[c.column, "too_few_rows"]) == c.too_few_rows
            assert bool(rows.loc[c.column, "evidently_drifted"]) == c.evidently_drifted
        shares = share_by_bucket(over).set_index("bucket")
        assert shares.loc[pd.Timestamp(day), "share_drifted"] == pytest.approx(single.share_drifted, nan_ok=True)
        assert shares.loc[pd.Timestamp(day), "evidently_share_drifted"] == pytest.approx(single.evidently_share_drifted)
    hourly = drift_over_time(ctx, "m", CUR_WINDOW, bucket="hour", reference=REF_WINDOW)
    assert hourly["bucket"].nunique() == 48


def test_result_is_json_ready(tmp_path: Path) -> None:
    ref, cur = mixed_frames(300, 300, seed=7)
    ctx = make_ctx(tmp_path, FEATURES_MIXED)
    ingest(ctx, tmp_path, ref, cur)
    d = result_to_dict(compute_drift(ctx, "m", CUR_WINDOW, REF_WINDOW))
    text = json.dumps(d, default=str)
    assert '"shifted"' in text and d["columns"][0]["evidently_drifted"]
    assert d["verdict"] == "too few rows" and d["columns"][0]["too_few_rows"]  # 300 current rows


# ----------------------------------------------------------------------------- pure formulas

@pytest.mark.parametrize("n1,n2", [(1, 1), (5, 7), (100, 100), (300, 9000), (10001, 50), (20000, 20000)])
def test_ks_pvalue_matches_scipy(n1: int, n2: int) -> None:
    rng = np.random.default_rng(n1 + n2)
    a, b = rng.normal(0, 1, n1), rng.normal(0.05, 1, n2)
    res = stats.ks_2samp(a, b)
    num = round(float(res.statistic) * n1 * n2)
    assert math.isclose(ds.ks_pvalue(num, n1, n2), float(res.pvalue), rel_tol=1e-9, abs_tol=1e-15)


def test_sturges_edges_match_numpy() -> None:
    rng = np.random.default_rng(0)
    for n in (1, 2, 8, 1000, 1024, 4097):
        x = rng.normal(0, 1, n)
        assert np.array_equal(ds.sturges_edges(float(x.min()), float(x.max()), n),
                              np.histogram_bin_edges(x, "sturges"))
    assert np.array_equal(ds.sturges_edges(3.0, 3.0, 5), np.histogram_bin_edges(np.full(5, 3.0), "sturges"))


def test_default_method_rule() -> None:
    assert ds.default_method("numerical", 1000, 6) == "ks"
    assert ds.default_method("numerical", 1000, 5) == "chisquare"
    assert ds.default_method("numerical", 1000, 2) == "z"
    assert ds.default_method("categorical", 1001, 50) == "jensenshannon"
    assert ds.default_method("numerical", 1001, 5) == "jensenshannon"
    assert ds.default_method("numerical", 1001, 6) == "wasserstein"


def test_chart_builders(tmp_path: Path) -> None:
    from dashboard.charts.drift import distribution_figure, heatmap_figure, share_figure
    from dashboard.monitoring.drift import distribution

    ref, cur = mixed_frames(400, 400, seed=8)
    ctx = make_ctx(tmp_path, FEATURES_MIXED)
    ingest(ctx, tmp_path, ref, cur)
    num = distribution(ctx, "m", "shifted", CUR_WINDOW, REF_WINDOW, bins=20)
    assert len(num) == 40 and num.groupby("side")["share"].sum().round(9).eq(1).all()
    assert len(distribution_figure(num, "shifted").data) == 2
    cat = distribution(ctx, "m", "newcat", CUR_WINDOW, REF_WINDOW)
    assert set(cat.loc[cat["side"] == "current", "bin"]) == {"p", "q", "r"}
    over = drift_over_time(ctx, "m", CUR_WINDOW, reference=REF_WINDOW)
    fig = heatmap_figure(over)
    assert list(fig.data[0].y) == [*FEATURES_MIXED, "prediction"] and len(fig.data[0].x) == 2
    assert share_figure(share_by_bucket(over), 0.5).data[0].y is not None
    assert heatmap_figure(over.iloc[0:0]).layout.title.text == "No data in the range"


def _binned_frames(seed: int, n_r: int, n_c: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Continuous, heavy-tailed, integer-valued, constant and shifted columns (current rows carry a day)."""
    rng = np.random.default_rng(seed)
    ref = pd.DataFrame({"a": rng.normal(0, 1, n_r), "b": rng.integers(0, 30, n_r).astype(float),
                        "c": rng.lognormal(3, 1, n_r), "d": rng.normal(0, 1, n_r), "k": np.full(n_r, 2.0),
                        "f": rng.integers(0, 3, n_r).astype(float)})
    cur = pd.DataFrame({"a": rng.normal(0.02, 1, n_c), "b": rng.integers(2, 33, n_c).astype(float),
                        "c": rng.lognormal(3.3, 1, n_c), "d": rng.normal(0, 1, n_c), "k": np.full(n_c, 2.0),
                        "f": rng.integers(0, 4, n_c).astype(float)})
    cur["bucket"] = pd.Timestamp("2026-03-01") + pd.to_timedelta(rng.integers(0, 5, n_c), unit="D")
    cur.loc[cur["bucket"] == pd.Timestamp("2026-03-03"), "a"] += 0.5  # one day drifts
    cur.loc[cur["bucket"] == pd.Timestamp("2026-03-04"), "c"] = np.nan  # one day has no values of c
    return ref, cur


def _check_exact(rs: pd.DataFrame, bs: pd.DataFrame, ref: pd.DataFrame, cur: pd.DataFrame) -> int:
    """Every (column, bucket) summary equals scipy/numpy on the same rows; returns the pairs checked."""
    checked = 0
    for (c, b), got in bs.set_index(["col", "bucket"]).iterrows():
        x, y = ref[c].to_numpy(), cur.loc[cur["bucket"] == b, c].dropna().to_numpy()
        w = stats.wasserstein_distance(x, y)
        assert math.isclose(float(got["w1"]), w, rel_tol=1e-9, abs_tol=1e-12), (c, b, got["w1"], w)
        assert int(got["ks_num"]) == round(stats.ks_2samp(x, y).statistic * len(x) * len(y)), (c, b)
        assert int(got["n_cur"]) == len(y)
        union = len(set(x) | set(y))
        if union <= 20:
            assert int(got["new_values"]) == len(set(y) - set(x)), (c, b)
        else:
            assert int(rs.set_index("col").loc[c, "u_ref"]) + int(got["new_values"]) > 20, (c, b)
        checked += 1
    for c, r in rs.set_index("col").iterrows():
        u = ref[c].nunique()
        assert int(r["u_ref"]) == u if u <= 20 else int(r["u_ref"]) > 20, c
    return checked


@pytest.mark.parametrize("grid", [4, 64, 65_536])
def test_binned_pass_is_exact(grid: int) -> None:
    """The bounded pass (coarse bins + row-level refinement of undecided bins) equals scipy exactly, for
    one window and per bucket (including a bucket where a column has no values)."""
    import duckdb

    from connectors.queries.drift import numeric_summary
    from connectors.queries.reference import Source

    ref, cur = _binned_frames(grid, 6000, 9000)
    con = duckdb.connect()
    con.register("ref_df", ref)
    con.register("cur_df", cur)
    cols = list(ref.columns)
    rs, bs, rc, cc = numeric_summary(con, Source("SELECT * FROM ref_df"), Source("SELECT * EXCLUDE (bucket) FROM cur_df"),
                                     cols, grid=grid)
    assert _check_exact(rs, bs, ref, cur.assign(bucket=pd.Timestamp("1970-01-01"))) == len(cols)
    assert rs.loc[rs["col"] == "k", "u_ref"].tolist() == [1]
    assert set(rc["col"]) == {"f", "k"} and set(cc["col"]) == {"f", "k"}  # value counts where <= 5 values
    rs, bs, rc, cc = numeric_summary(con, Source("SELECT * FROM ref_df"), Source("SELECT * FROM cur_df"), cols,
                                     bucketed=True, grid=grid)
    assert _check_exact(rs, bs, ref, cur) == len(cols) * 5 - 1  # c has no values on 2026-03-04
    assert sorted(cc.loc[cc["col"] == "f", "v"].unique()) == [0.0, 1.0, 2.0, 3.0]
    rows_per_day = cur.groupby("bucket").size().to_dict()
    counted = cc.groupby(["col", "bucket"])["c"].sum()
    assert counted["f"].to_dict() == rows_per_day and counted["k"].to_dict() == rows_per_day


def test_grid_shrinks_with_buckets() -> None:
    from connectors.queries.drift import GRID, GRID_CELLS, MIN_GRID, grid_for

    assert grid_for(1, 10_000_000) == GRID and grid_for(1, 1_000_000) == 65_536
    assert grid_for(30, 333_000) == 65_536 and grid_for(30, 67_000) == 16_384
    assert grid_for(30, 10**9) * 30 <= GRID_CELLS
    assert grid_for(1, 10) == grid_for(100_000, 10**9) == MIN_GRID


def test_bench_script_runs_at_tiny_size(tmp_path: Path) -> None:
    import subprocess
    import sys

    out = tmp_path / "drift.json"
    repo = Path(__file__).resolve().parents[1]
    proc = subprocess.run([sys.executable, str(repo / "bench" / "drift.py"), "--rows", "1500", "--big-rows", "3000",
                           "--days", "2", "--repeats", "1", "--output", str(out)],
                          capture_output=True, text=True, timeout=600, cwd=repo)
    assert proc.returncode == 0, proc.stderr[-2000:]
    data = json.loads(out.read_text())
    assert data["verdicts_equal"] and data["methods_equal"] and data["max_rel_score_diff"] < 1e-6
    assert data["big_buckets"] == 2 and data["speedup"] > 0
    assert "speedup" in proc.stdout


def test_jensen_shannon_equals_scipys() -> None:
    from scipy.spatial import distance

    rng = np.random.default_rng(7)
    for k in (2, 5, 40):
        for _ in range(20):
            p, q = rng.integers(0, 50, k).astype(float), rng.integers(0, 50, k).astype(float)
            p[0], q[-1] = p[0] + 1, q[-1] + 1  # never an all-zero side
            p[rng.integers(0, k)] = 0.0  # a category seen on one side only
            got, want = ds.jensenshannon_distance(p, q), float(distance.jensenshannon(p, q))
            assert math.isclose(got, want, rel_tol=1e-12, abs_tol=1e-15), (p, q, got, want)
    assert ds.jensenshannon_distance(np.array([3.0, 0.0]), np.array([6.0, 0.0])) == 0.0
