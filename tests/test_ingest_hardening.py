"""No bad value hides a breach: NaN, float ids, bad encodings and glob characters in file names fail safe.

Every case goes through the real log store (a DuckDB file per test), real files on disk and, where the
user meets it, the real `vigil` command. NaN is written as a real NaN in every format (Parquet through
pyarrow without its NaN-to-null conversion, CSV as the text "nan", JSON Lines as the literal NaN).
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from sklearn.metrics import roc_auc_score

from connectors.logstore import LogStore, _first_invalid_utf8, _literal_path
from connectors.queries import latency_rollup, selection
from connectors.queries.operations import latency_stats
from connectors.schema import LogSchema
from connectors.windows import parse_window
from dashboard.cli import cli
from dashboard.context import load_context
from dashboard.monitoring.drift import compute_drift
from dashboard.monitoring.fairness import compute_fairness
from dashboard.monitoring.operations import compute_operations
from dashboard.monitoring.quality import compute_quality
from tests.conftest import DEMO_CONFIG, REPO, make_logs
from tests.fixtures.access import token_for

FORMATS = (".parquet", ".csv", ".jsonl")
WINDOW = parse_window("2026-01-01..2026-01-02")
FEATURES = ("age", "income", "loan_amount", "loan_term_months", "credit_history_years", "debt_to_income",
            "num_open_accounts")
PROBABILITIES = ("score", "proba_good", "proba_bad")
Write = Callable[[pd.DataFrame, str], Path]


def write_with_nan(df: pd.DataFrame, path: Path) -> Path:
    """``df`` as Parquet/CSV/JSONL (by suffix) with every NaN written as a real NaN, never as a null."""
    if path.suffix == ".parquet":
        cols = {c: pa.array(df[c].to_numpy(), from_pandas=False) if df[c].dtype.kind == "f" else pa.array(df[c])
                for c in df.columns}
        pq.write_table(pa.table(cols), path)
    elif path.suffix == ".csv":
        df.to_csv(path, index=False, na_rep="nan")
    else:
        text = df.assign(ts=df["ts"].map(lambda t: t.isoformat())) if "ts" in df else df
        path.write_text("".join(json.dumps(r) + "\n" for r in text.to_dict(orient="records")))
    return path


@pytest.fixture
def nan_file(tmp_path: Path) -> Write:
    folder = tmp_path / "files"
    folder.mkdir(exist_ok=True)
    return lambda df, name: write_with_nan(df, folder / name)


def stored(store: LogStore, schema: LogSchema) -> tuple[int, int, int]:
    """(log rows, manifest rows, label rows): a rejected file must leave all three as they were."""
    store.ensure_model(schema)
    with store.connect() as con:
        return tuple(int(con.execute(f"SELECT count(*) FROM {t}").fetchone()[0])  # type: ignore[return-value]
                     for t in (schema.table, "ingest_manifest", "labels"))


def rejected_line(report) -> str:
    assert [f.status for f in report.files] == ["rejected"], report.files
    assert report.rows_added == 0
    return report.rejected[0].problems[0].line()


def cli_env(settings) -> dict[str, str]:
    """Environment of a `vigil` subprocess acting as an admin of the test workspace."""
    return {"VIGIL_DATA_DIR": str(settings.data_dir), "PATH": str(Path(sys.executable).parent),
            "VIGIL_TOKEN": token_for(settings.users_file)}


def vigil(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    cmd = [str(Path(sys.executable).parent / "vigil"), "--config", str(DEMO_CONFIG), *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO, timeout=180)


# --------------------------------------------------------------------------- 1. NaN is missing, everywhere


def slow_with_nan(n: int = 600, every: int = 10) -> pd.DataFrame:
    """``n`` requests at 900 ms, one a minute; every ``every``-th latency is NaN."""
    df = make_logs(n)
    df["latency_ms"] = 900.0
    df.loc[df.index % every == 0, "latency_ms"] = np.nan
    return df


@pytest.mark.parametrize("suffix", FORMATS)
def test_nan_latency_is_missing_and_the_breach_shows(ctx, store, schema, nan_file: Write, suffix):
    """600 rows at 900 ms, 10% NaN: p95 is 900 ms over the 540 real values, and the 60 are counted."""
    assert store.ingest([nan_file(slow_with_nan(), f"slow{suffix}")], schema).rows_added == 600
    with store.connect() as con:
        nulls, nans = con.execute(f"SELECT count(*) FILTER (WHERE latency_ms IS NULL), "
                                  f"count(*) FILTER (WHERE isnan(latency_ms)) FROM {schema.table}").fetchone()
    assert (nulls, nans) == (60, 0)
    rep = compute_operations(ctx, "credit-risk", WINDOW, bucket="hour")
    assert rep.latency_p95_ms == 900.0 and rep.latency_p50_ms == 900.0 and rep.latency_max_ms == 900.0
    assert rep.rows_without_latency == 60 and rep.latency_missing_share == pytest.approx(0.1)
    assert rep.summary()["latency_rows"] == 540 and rep.summary()["latency_missing_share"] == pytest.approx(0.1)
    assert rep.slo.met is False and rep.slo.buckets_in_breach == rep.slo.buckets_scored == 10
    assert list(rep.buckets["n_latency"]) == [54] * 10
    assert any("60 of 600 predictions have no latency_ms value (10.0%" in n for n in rep.notes)


@pytest.mark.parametrize("suffix", FORMATS)
@pytest.mark.parametrize("column", ["latency_ms", *FEATURES])
def test_nan_in_a_feature_or_latency_is_stored_as_null(store, schema, nan_file: Write, column, suffix):
    df = make_logs(20)
    df.loc[[3, 11], column] = np.nan
    assert store.ingest([nan_file(df, f"nan{suffix}")], schema).rows_added == 20
    got = store.query_df(f"SELECT prediction_id, {column} AS v, isnan({column}) AS is_nan FROM {schema.table} "
                         "ORDER BY ts")
    assert got.loc[got["v"].isna(), "prediction_id"].tolist() == ["p3", "p11"]
    assert not got["is_nan"].fillna(False).any()
    assert got["v"].dropna().to_numpy() == pytest.approx(df[column].dropna().to_numpy())


def test_vigil_check_fails_on_a_latency_breach_with_nan(tmp_path: Path):
    """The reported case end to end: `vigil ingest` then `vigil check` exits 1 on the latency policy."""
    text = DEMO_CONFIG.read_text().replace('data_dir = "."', f'data_dir = "{tmp_path / "data"}"')
    text = text.replace('[models.credit-risk.reference]\nsource = "training"', "")
    config = tmp_path / "vigil.toml"
    config.write_text(text + """
[models.credit-risk.reference]
source = "window"
window = "2025-12-01..2025-12-31"

[[models.credit-risk.policies]]
name = "drift_share"
metric = "drift_share"
comparator = "<"
threshold = 0.5
severity = "warning"

[[models.credit-risk.policies]]
name = "disparate_impact"
metric = "disparate_impact"
comparator = "within"
threshold = [0.8, 1.25]
severity = "warning"

[[models.credit-risk.policies]]
name = "latency_p95_ms"
metric = "latency_p95_ms"
comparator = "<="
threshold = 500
severity = "blocking"
""")
    settings = load_context(str(config)).settings
    logs = write_with_nan(slow_with_nan(), tmp_path / "slow.parquet")
    env = {k: None for k in ("VIGIL_DUCKDB_PATH", "VIGIL_MLFLOW_URI", "VIGIL_USERS_FILE", "VIGIL_DATA_DIR")}
    env |= {"VIGIL_CONFIG": str(config), "VIGIL_TOKEN": token_for(settings.users_file)}
    runner = CliRunner()
    ingest = runner.invoke(cli, ["ingest", "--model", "credit-risk", str(logs)], env=env)
    assert ingest.exit_code == 0 and "600 rows added" in ingest.output, ingest.output
    check = runner.invoke(cli, ["check", "--model", "credit-risk", "--window", "2026-01-01..2026-01-01",
                                "--format", "json"], env=env)
    result = {r["name"]: r for r in json.loads(check.stdout)["results"]}["latency_p95_ms"]
    assert check.exit_code == 1
    assert result["verdict"] == "fail" and result["value"] == 900.0 and result["rows"] == 540


def _poison_like_an_old_store(store: LogStore, schema: LogSchema) -> pd.DataFrame:
    """Write NaN into stored rows, as versions before NaN-to-NULL did, and leave the rollup of that era
    (NaN quantiles, no definition column). Returns the poisoned rows' ids and columns."""
    with store.connect() as con:
        con.execute(f"UPDATE {schema.table} SET latency_ms = 'NaN' WHERE hash(prediction_id) % 7 = 0")
        con.execute(f"UPDATE {schema.table} SET score = 'NaN', proba_good = 'NaN', proba_bad = 'NaN' "
                    "WHERE hash(prediction_id) % 5 = 0")
        con.execute(f"UPDATE {schema.table} SET proba_good = 'NaN', proba_bad = 'NaN' "
                    "WHERE hash(prediction_id) % 11 = 0 AND hash(prediction_id) % 5 <> 0")  # score kept
        con.execute(f"UPDATE {schema.table} SET income = 'NaN', age = 'NaN' WHERE hash(prediction_id) % 6 = 0")
        con.execute(f"UPDATE {latency_rollup.ROLLUP_TABLE} SET p95_ms = 'NaN', n_latency = n")
        state = latency_rollup.STATE_TABLE
        con.execute(f"CREATE TEMP TABLE old_state AS SELECT model, log_rows, refreshed_at FROM {state}")
        con.execute(f"DROP TABLE {state}")
        con.execute(f"CREATE TABLE {state} (model VARCHAR PRIMARY KEY, log_rows BIGINT NOT NULL, "
                    f"refreshed_at TIMESTAMP NOT NULL); INSERT INTO {state} SELECT * FROM old_state")
        return con.execute(f"SELECT * FROM {schema.table} ORDER BY ts").df()


def test_queries_read_nan_left_in_older_stores_as_missing(ctx, store, schema, write_file):
    """Every aggregate over a DOUBLE column treats NaN already in a store as missing: operations (live,
    the stale rollup refused, then rebuilt), the store summary, quality, drift and fairness."""
    store.ingest([write_file(make_logs(1200, seed=4), "old.parquet")], schema)
    rows = _poison_like_an_old_store(store, schema)
    lat = rows["latency_ms"].to_numpy()
    assert np.isnan(lat).sum() > 100

    with store.connect() as con:
        assert not latency_rollup.is_current(con, schema)  # the old rollup (NaN p95) is not trusted
    rep = compute_operations(ctx, "credit-risk", WINDOW, bucket="hour")
    assert rep.latency_p95_ms == pytest.approx(np.nanpercentile(lat, 95), rel=1e-12)
    assert rep.rows_without_latency == int(np.isnan(lat).sum())
    hourly = rows.assign(hour=rows["ts"].dt.floor("h")).groupby("hour")["latency_ms"]
    assert rep.buckets["p95_ms"].tolist() == pytest.approx(hourly.quantile(0.95).tolist(), rel=1e-12)  # NaN skipped
    assert rep.buckets["n_latency"].tolist() == hourly.count().tolist()
    assert store.summary(schema)["latency_p95_ms"] == pytest.approx(np.nanpercentile(lat, 95), rel=1e-12)

    with store.connect() as con:  # active learning: a NaN probability falls back to the score
        chosen, _ = selection.candidates(con, schema, WINDOW.start, WINDOW.end, strategy="margin", threshold=0.999,
                                         budget=5000, bucket="day", segment=None)
    by_id = {r["prediction_id"]: r for r in chosen}
    proba_nan = set(rows.loc[rows["proba_good"].isna() & rows["score"].notna(), "prediction_id"])
    assert proba_nan and proba_nan <= set(by_id) and {by_id[i]["p_source"] for i in proba_nan} == {"score"}
    assert all(math.isfinite(r["uncertainty"]) for r in chosen)
    assert set(rows.loc[rows["score"].isna(), "prediction_id"]).isdisjoint(by_id)  # as rows without a score

    store.ingest([write_file(make_logs(30, start="2026-01-01 20:00", id_prefix="n"), "new.parquet")], schema)
    with store.connect() as con:  # the next ingestion rebuilt it with the current definition
        assert latency_rollup.is_current(con, schema)
        rolled = latency_stats(con, schema, WINDOW.start, WINDOW.end, bucket="hour")
        live = latency_stats(con, schema, WINDOW.start, WINDOW.end, bucket="hour", use_rollup=False)
    assert not rolled["p95_ms"].isna().any()
    pd.testing.assert_frame_equal(rolled.sort_values("bucket").reset_index(drop=True), live, check_exact=False,
                                  rtol=1e-12)

    labels = rows.sample(600, random_state=1)
    truth = np.where(np.random.default_rng(2).random(600) < 0.6, "good", "bad")
    store.add_labels(schema, pd.DataFrame({"prediction_id": labels["prediction_id"], "label": truth}), "gt")
    quality = compute_quality(ctx, "credit-risk", WINDOW)
    assert quality.rows_without_score == int(rows["score"].isna().sum()) > 0
    assert quality.estimated_accuracy_all is not None
    assert math.isfinite(quality.estimated_accuracy_all)
    p_pos = labels["proba_good"].fillna(  # the documented fallback: the score, turned for a "bad" prediction
        pd.Series(np.where(labels["prediction"] == "good", labels["score"], 1 - labels["score"]), labels.index))
    scored = p_pos.notna().to_numpy()
    want_auc = roc_auc_score(truth[scored] == "good", p_pos.to_numpy()[scored])
    assert quality.actual.roc_auc == pytest.approx(want_auc, rel=1e-12)

    drift = compute_drift(ctx, "credit-risk", WINDOW, reference=WINDOW)
    income = next(c for c in drift.columns if c.column == "income")
    assert income.n_current == int(rows["income"].notna().sum()) + 30 and income.score == 0.0  # + the new file
    age = compute_fairness(ctx, "credit-risk", WINDOW, attribute="age").attribute("age")
    assert age.n_missing == int(rows["age"].isna().sum()) > 0


# --------------------------------------------------------------------------- 2. one canonical prediction_id


def float_ids(seed: int = 0, n: int = 20) -> pd.DataFrame:
    df = make_logs(n, seed=seed)
    df["prediction_id"] = np.arange(9_000_001, 9_000_001 + n).astype(float)
    return df


@pytest.mark.parametrize("second", FORMATS)
@pytest.mark.parametrize("first", FORMATS)
def test_float_ids_are_one_id_whatever_the_file_type(store, schema, write_file: Write, first, second):
    assert store.ingest([write_file(float_ids(), f"first{first}")], schema).rows_added == 20
    ids = store.query_df(f"SELECT prediction_id FROM {schema.table} ORDER BY ts")["prediction_id"].tolist()
    assert ids == [str(9_000_001 + i) for i in range(20)]
    before = stored(store, schema)
    line = rejected_line(store.ingest([write_file(float_ids(seed=5), f"again{second}")], schema))
    assert "'9000001' is already stored" in line and "row 1" in line and "column 'prediction_id'" in line
    assert stored(store, schema) == before


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_an_id_written_as_integer_and_as_float_is_a_duplicate_in_one_file(store, schema, tmp_path, suffix):
    path = tmp_path / f"mixed{suffix}"
    df = make_logs(4)
    if suffix == ".csv":
        df["prediction_id"] = ["9000001", "9000002", "9000001.0", "9000003.00"]
        df.to_csv(path, index=False)
    else:
        df = df.assign(ts=df["ts"].map(lambda t: t.isoformat()))
        ids: list[int | float] = [9000001, 9000002, 9000001.0, 9000003]
        path.write_text("".join(json.dumps({**r, "prediction_id": i}) + "\n"
                                for r, i in zip(df.drop(columns="prediction_id").to_dict("records"), ids, strict=True)))
    line = rejected_line(store.ingest([path], schema))
    assert "prediction_id '9000001' appears 2 times in the file" in line and "row 1" in line


@pytest.mark.parametrize("suffix", [".parquet", ".jsonl"])
@pytest.mark.parametrize("bad", [12.5, float("nan"), 2.0**53 + 2])
def test_a_float_id_that_is_no_exact_integer_is_rejected(store, schema, nan_file: Write, suffix, bad):
    df = float_ids()
    df.loc[6, "prediction_id"] = bad
    line = rejected_line(store.ingest([nan_file(df, f"ids{suffix}")], schema))
    assert "row 7, column 'prediction_id': id is not a whole number" in line and "fix: write ids as" in line


@pytest.mark.parametrize("suffix", FORMATS)
def test_label_files_with_float_ids_find_their_predictions(ctx, store, schema, write_file: Write, tmp_path, suffix):
    logs = float_ids()
    logs["prediction_id"] = logs["prediction_id"].astype(int)  # the logs have integer ids
    store.ingest([write_file(logs, "logs.parquet")], schema)
    labels = pd.DataFrame({"prediction_id": logs["prediction_id"].astype(float), "label": "good"})
    assert store.ingest_labels([write_file(labels, f"labels{suffix}")], schema).rows_added == 20
    assert compute_quality(ctx, "credit-risk", WINDOW).n_labelled == 20
    labels.loc[2, "prediction_id"] = 9_000_003.5
    line = rejected_line(store.ingest_labels([write_file(labels, f"bad{suffix}")], schema))
    if suffix == ".csv":  # text: "9000003.5" is an id no prediction has
        assert "'9000003.5' which is not in the logs" in line and "row 3" in line
    else:
        assert "row 3, column 'prediction_id': id is not a whole number" in line


# --------------------------------------------------------------------------- 3. NaN or bad probabilities


@pytest.mark.parametrize("suffix", FORMATS)
@pytest.mark.parametrize("column", PROBABILITIES)
def test_nan_probability_is_a_rejection_naming_row_and_column(store, schema, nan_file: Write, column, suffix):
    df = make_logs(20).assign(score=0.7)
    df.loc[3, column] = np.nan
    before = stored(store, schema)
    line = rejected_line(store.ingest([nan_file(df, f"p{suffix}")], schema))
    assert f"row 4, column '{column}': probability is NaN" in line and "fix: log the probability" in line
    assert stored(store, schema) == before


@pytest.mark.parametrize("value", [1.5, -0.2, float("inf")])
@pytest.mark.parametrize("column", PROBABILITIES)
def test_probability_outside_0_1_names_row_and_column(store, schema, nan_file: Write, column, value):
    df = make_logs(20).assign(score=0.7)
    df.loc[8, column] = value
    line = rejected_line(store.ingest([nan_file(df, "p.parquet")], schema))
    assert f"row 9, column '{column}': probability outside [0, 1]" in line


def test_infinite_latency_is_rejected(store, schema, nan_file: Write):
    df = make_logs(20)
    df.loc[5, "latency_ms"] = np.inf
    line = rejected_line(store.ingest([nan_file(df, "inf.csv")], schema))
    assert "row 6, column 'latency_ms': infinite latency" in line and "fix:" in line


def test_cli_ingest_of_a_nan_score_exits_1_with_one_line_not_a_traceback(settings, tmp_path):
    df = make_logs(20).assign(score=0.7)
    df.loc[3, "score"] = np.nan
    path = write_with_nan(df, tmp_path / "nan-score.parquet")
    out = vigil(cli_env(settings), "ingest", "--model", "credit-risk", str(path))
    assert out.returncode == 1, out.stderr
    assert "Traceback" not in out.stderr and "AssertionError" not in out.stderr
    assert f"{path}, row 4, column 'score': probability is NaN" in out.stderr and "fix:" in out.stderr


# --------------------------------------------------------------------------- 4. encodings


@pytest.mark.parametrize(("suffix", "encoding"), [(".csv", "latin-1"), (".csv", "utf-16"), (".csv", "cp1252"),
                                                  (".jsonl", "latin-1")])
def test_a_file_that_is_not_utf8_is_rejected_naming_the_encoding(store, schema, tmp_path, suffix, encoding):
    df = make_logs(30)
    df.loc[20, "purpose"] = "équipement"
    text = (df.to_csv(index=False) if suffix == ".csv" else
            df.assign(ts=df["ts"].map(lambda t: t.isoformat())).to_json(orient="records", lines=True,
                                                                          force_ascii=False))
    path = tmp_path / f"export{suffix}"
    path.write_bytes(text.encode(encoding))
    before = stored(store, schema)
    line = rejected_line(store.ingest([path], schema))
    assert f"{path}: is not UTF-8 text" in line and "fix: re-save it as UTF-8" in line and "iconv" in line
    assert "Error:" not in line and "Possible Solution" not in line
    if encoding != "utf-16":  # the é of data row 21 sits on line 22 of a CSV (header) and 21 of a JSONL
        assert f"line {22 if suffix == '.csv' else 21}" in line
    assert stored(store, schema) == before


def test_utf8_with_a_byte_order_mark_and_accents_is_read(store, schema, tmp_path):
    df = make_logs(10)
    df.loc[2, "purpose"] = "équipement"
    path = tmp_path / "bom.csv"
    path.write_bytes(df.to_csv(index=False).encode("utf-8-sig"))
    assert store.ingest([path], schema).rows_added == 10
    assert "équipement" in set(store.query_df(f"SELECT purpose FROM {schema.table}")["purpose"])


@pytest.mark.parametrize("chunk", [1, 2, 3, 5, 64])
def test_first_invalid_byte_is_found_across_chunk_boundaries(tmp_path, chunk):
    data = "é€\n𝄞 ok\nab".encode() + b"\xff" + "ü\n".encode()
    path = tmp_path / "x.csv"
    path.write_bytes(data)
    assert _first_invalid_utf8(path, chunk=chunk) == (3, data.index(b"\xff"))
    path.write_bytes("é€\n𝄞".encode())
    assert _first_invalid_utf8(path, chunk=chunk) is None
    path.write_bytes(b"ab\n" + "é".encode()[:1])  # truncated at the very end
    assert _first_invalid_utf8(path, chunk=chunk) == (2, 3)


# --------------------------------------------------------------------------- 5. paths are taken literally

GLOB_NAMES = [  # (file name, a decoy that DuckDB's glob of that name would also read)
    ("logs[1].parquet", "logs1.parquet"),
    ("logs?.csv", "logsX.csv"),
    ("logs*.jsonl", "logs-other.jsonl"),
    ("a]b.parquet", None),
    ("[x].csv", "x.csv"),
    ("we?rd[*]]name.jsonl", "weird*]name.jsonl"),
]


@pytest.fixture
def files(tmp_path: Path) -> Iterator[Path]:
    folder = tmp_path / "in"
    folder.mkdir()
    yield folder


def _write(df: pd.DataFrame, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_with_nan(df, path)


LITERAL_CASES = [  # (glob character, target file stem, decoy stem, what a bare DuckDB read returns)
    ("?", "f?", "fZ", {"target", "decoy"}),
    ("*", "f*", "fZZ", {"target", "decoy"}),
    ("[", "f[1]", "f1", {"decoy"}),
    ("]", "f]", None, {"target"}),
]


@pytest.mark.parametrize("suffix", FORMATS)
@pytest.mark.parametrize(("char", "stem", "decoy", "bare"), LITERAL_CASES)
def test_duckdb_globs_a_literal_path_unless_it_is_escaped(tmp_path, suffix, char, stem, decoy, bare):
    """Why Vigil escapes: DuckDB expands glob characters even in a path naming an existing file."""
    reader = {".parquet": "read_parquet", ".csv": "read_csv", ".jsonl": "read_json"}[suffix]
    target = _write(pd.DataFrame({"v": ["target"]}), tmp_path / f"{stem}{suffix}")
    if decoy:
        _write(pd.DataFrame({"v": ["decoy"]}), tmp_path / f"{decoy}{suffix}")
    con = duckdb.connect()
    plain = "'" + str(target).replace("'", "''") + "'"
    assert {v for v, in con.execute(f"SELECT v FROM {reader}({plain})").fetchall()} == bare
    assert con.execute(f"SELECT v FROM {reader}({_literal_path(target)})").fetchall() == [("target",)]


@pytest.mark.parametrize(("name", "decoy"), GLOB_NAMES)
def test_a_file_named_with_glob_characters_is_that_file(store, schema, files, name, decoy):
    target = _write(make_logs(12, id_prefix="t"), files / name)
    if decoy:
        _write(make_logs(7, id_prefix="d"), files / decoy)
    report = store.ingest([str(target)], schema)
    assert [(f.status, f.rows) for f in report.files] == [("ingested", 12)]
    assert store.manifest("credit-risk")["path"].tolist() == [str(target.resolve())]
    assert set(store.query_df(f"SELECT prediction_id FROM {schema.table}")["prediction_id"]) == {
        f"t{i}" for i in range(12)}


def test_cli_reads_a_bracketed_file_name_and_not_its_neighbour(settings, files):
    target = _write(make_logs(12, id_prefix="t"), files / "day[1].parquet")
    _write(make_logs(7, id_prefix="d"), files / "day1.parquet")
    out = vigil(cli_env(settings), "ingest", "--model", "credit-risk", str(target))
    assert out.returncode == 0, out.stderr
    assert "12 rows" in out.stdout and "12 rows added; 0 file(s) rejected." in out.stdout


def test_folders_with_glob_characters_and_key_value_names_are_read_as_files(store, schema, files):
    """A folder name is no pattern and no hive partition: `model_version=9/` adds no column, changes nothing."""
    folder = files / "run[1]" / "model_version=9"
    _write(make_logs(5, id_prefix="a"), folder / "a?.parquet")
    _write(make_logs(6, id_prefix="b", start="2026-01-02"), folder / "b*.csv")
    report = store.ingest([files / "run[1]"], schema)
    assert sorted((Path(f.path).name, f.status, f.rows) for f in report.files) == [
        ("a?.parquet", "ingested", 5), ("b*.csv", "ingested", 6)]
    assert set(store.query_df(f"SELECT model_version FROM {schema.table}")["model_version"]) == {"1"}


def test_an_argument_naming_no_file_is_a_glob_expanded_by_vigil(store, schema, files):
    for i in (1, 2):
        _write(make_logs(4 + i, id_prefix=f"g{i}", start=f"2026-01-0{i}"), files / f"part{i}.parquet")
    (files / "part3.txt").write_text("not a log")
    report = store.ingest([str(files / "part[12].parquet")], schema)
    assert [(Path(f.path).name, f.rows) for f in report.files] == [("part1.parquet", 5), ("part2.parquet", 6)]
    line = rejected_line(store.ingest([str(files / "part3.*")], schema))
    assert "part3.txt" in line and "unsupported file type" in line


# --------------------------------------------------------------------------- 6. missing shares are findings


def test_missing_latency_and_score_shares_are_reported(ctx, store, schema, tmp_path):
    df = make_logs(200).assign(score=0.8)
    df["latency_ms"] = np.where(df.index % 4 == 0, df["latency_ms"].map(repr), "nan")  # 150 of 200 are NaN
    df.loc[df.index < 50, ["score", "proba_good", "proba_bad"]] = None  # 50 without any score: empty cells
    path = tmp_path / "sparse.csv"
    df.to_csv(path, index=False)
    assert store.ingest([path], schema).rows_added == 200
    ops = compute_operations(ctx, "credit-risk", WINDOW, bucket="hour")
    assert ops.rows_without_latency == 150 and ops.latency_missing_share == pytest.approx(0.75)
    summary = ops.summary()
    assert summary["latency_rows"] == 50 and summary["latency_missing_share"] == pytest.approx(0.75)
    assert ops.buckets["latency_missing_share"].tolist() == pytest.approx([0.75] * 4)  # 60, 60, 60, 20 rows
    assert ops.versions["latency_missing_share"].tolist() == pytest.approx([0.75])
    quality = compute_quality(ctx, "credit-risk", WINDOW)
    assert quality.rows_without_score == 50 and quality.score_missing_share == pytest.approx(0.25)
    assert quality.summary()["score_missing_share"] == pytest.approx(0.25)
    assert any("50 predictions have no score (25.0%" in n for n in quality.notes)
