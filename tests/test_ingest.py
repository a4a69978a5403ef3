"""Ingestion: every bad-input case is rejected with file, row/column and fix, and leaves the store unchanged."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from connectors.logstore import LogStore
from connectors.schema import LogSchema
from tests.fixtures.access import token_for

Writer = Callable[[pd.DataFrame, str], Path]


def snapshot(store: LogStore, schema: LogSchema) -> tuple[int, int, int]:
    store.ensure_model(schema)
    with store.connect() as con:
        logs = con.execute(f"SELECT count(*) FROM {schema.table}").fetchone()[0]
        manifest = con.execute("SELECT count(*) FROM ingest_manifest").fetchone()[0]
        labels = con.execute("SELECT count(*) FROM labels").fetchone()[0]
    return logs, manifest, labels


def only_problem(report) -> str:
    assert len(report.rejected) == 1, [f.status for f in report.files]
    problems = report.rejected[0].problems
    assert problems, "a rejected file must carry at least one problem"
    return problems[0].line()


@pytest.mark.parametrize("suffix", [".parquet", ".csv", ".jsonl"])
def test_each_format_loads_every_row(store, schema, logs_factory, write_file: Writer, suffix):
    df = logs_factory(300)
    report = store.ingest([write_file(df, f"logs{suffix}")], schema)
    assert report.rows_added == 300 and not report.rejected
    got = store.query_df(f"SELECT * FROM {schema.table} ORDER BY ts")
    assert list(got["prediction_id"]) == list(df["prediction_id"])
    assert got["income"].to_numpy() == pytest.approx(df["income"].to_numpy())
    assert set(got["prediction"]) <= {"good", "bad"}
    assert (got["ts"].iloc[0]) == pd.Timestamp("2026-01-01 00:00:00")  # stored as naive UTC
    assert got["score"].to_numpy() == pytest.approx(df[["proba_good", "proba_bad"]].max(axis=1).to_numpy())


def test_same_file_twice_adds_nothing(store, schema, logs_factory, write_file: Writer):
    path = write_file(logs_factory(200), "a.parquet")
    first = store.ingest([path], schema)
    second = store.ingest([path], schema)
    assert first.rows_added == 200
    assert second.rows_added == 0 and second.files[0].status == "skipped"
    assert "already ingested" in second.files[0].detail
    assert snapshot(store, schema)[:2] == (200, 1)


def test_same_content_under_another_name_is_skipped(store, schema, logs_factory, write_file: Writer, tmp_path):
    path = write_file(logs_factory(50), "a.parquet")
    copy = tmp_path / "copy.parquet"
    copy.write_bytes(path.read_bytes())
    store.ingest([path], schema)
    assert store.ingest([copy], schema).files[0].status == "skipped"


def test_folder_and_glob_expand_to_files(store, schema, logs_factory, write_file: Writer):
    a = write_file(logs_factory(10, id_prefix="a"), "a.parquet")
    write_file(logs_factory(10, id_prefix="b"), "b.csv")
    assert store.ingest([a.parent], schema).rows_added == 20
    assert store.ingest([str(a.parent / "*.parquet")], schema).files[0].status == "skipped"


def test_missing_path_and_unknown_type_are_named(store, schema, tmp_path):
    (tmp_path / "x.xlsx").write_text("nope")
    report = store.ingest([tmp_path / "missing.parquet", tmp_path / "x.xlsx", str(tmp_path / "*.nothing")], schema)
    lines = report.problem_lines()
    assert any("missing.parquet" in line and "no such file" in line for line in lines)
    assert any("x.xlsx" in line and "Parquet, CSV or JSON Lines" in line for line in lines)
    assert any("matched no file" in line for line in lines)


def _reject(store, schema, write_file: Writer, df: pd.DataFrame, name: str) -> str:
    before = snapshot(store, schema)
    report = store.ingest([write_file(df, name)], schema)
    assert report.rows_added == 0
    assert snapshot(store, schema) == before, "a rejected file must leave the store unchanged"
    return only_problem(report)


def test_missing_column(store, schema, logs_factory, write_file: Writer):
    line = _reject(store, schema, write_file, logs_factory(20).drop(columns=["income"]), "m.parquet")
    assert "m.parquet" in line and "'income'" in line and "missing" in line and "fix:" in line


def test_extra_column_is_rejected_unless_ignored(store, schema, logs_factory, write_file: Writer):
    df = logs_factory(20).assign(debug_flag=1)
    line = _reject(store, schema, write_file, df, "extra.csv")
    assert "debug_flag" in line and "extra_columns" in line
    relaxed = LogSchema(schema.model, schema.features, schema.columns, schema.classes, extra_columns="ignore")
    assert store.ingest([write_file(df, "extra2.parquet")], relaxed).rows_added == 20


def test_wrong_type_names_row_and_column(store, schema, logs_factory, write_file: Writer):
    df = logs_factory(20)
    df["income"] = df["income"].astype(object)
    df.loc[7, "income"] = "lots"
    line = _reject(store, schema, write_file, df, "t.csv")
    assert "row 8" in line and "'income'" in line and "not a number" in line and "lots" in line


def test_unparsable_timestamp(store, schema, logs_factory, write_file: Writer):
    df = logs_factory(20)
    df["ts"] = df["ts"].astype(str)
    df.loc[3, "ts"] = "yesterday at noon"
    line = _reject(store, schema, write_file, df, "ts.csv")
    assert "row 4" in line and "'ts'" in line and "ISO-8601" in line


def test_mixed_naive_and_aware_timestamps_are_rejected(store, schema, logs_factory, write_file: Writer):
    df = logs_factory(20)
    df["ts"] = [f"2026-01-01T00:{i:02d}:00" + ("Z" if i % 2 else "") for i in range(20)]
    line = _reject(store, schema, write_file, df, "mixed.jsonl")
    assert "naive" in line and "row 1" in line


def test_mixed_offsets_are_normalised_to_utc(store, schema, logs_factory, write_file: Writer):
    df = logs_factory(2)
    df["ts"] = ["2026-03-01T12:00:00+02:00", "2026-03-01T12:00:00-05:00"]
    store.ingest([write_file(df, "tz.csv")], schema)
    got = store.query_df(f"SELECT ts FROM {schema.table} ORDER BY prediction_id")["ts"].tolist()
    assert got == [pd.Timestamp("2026-03-01 10:00:00"), pd.Timestamp("2026-03-01 17:00:00")]


def test_null_required_field(store, schema, logs_factory, write_file: Writer):
    df = logs_factory(20)
    df.loc[5, "model_version"] = None
    line = _reject(store, schema, write_file, df, "null.parquet")
    assert "row 6" in line and "'model_version'" in line and "empty" in line


def test_duplicate_prediction_id_within_file(store, schema, logs_factory, write_file: Writer):
    df = logs_factory(20)
    df.loc[9, "prediction_id"] = df.loc[2, "prediction_id"]
    line = _reject(store, schema, write_file, df, "dup.parquet")
    assert "'p2'" in line and "2 times" in line and "row 3" in line


def test_duplicate_prediction_id_across_files(store, schema, logs_factory, write_file: Writer):
    store.ingest([write_file(logs_factory(20), "one.parquet")], schema)
    other = logs_factory(20, seed=3, id_prefix="q")
    other.loc[4, "prediction_id"] = "p4"
    line = _reject(store, schema, write_file, other, "two.parquet")
    assert "'p4'" in line and "already stored" in line and "row 5" in line


def test_prediction_outside_classes(store, schema, logs_factory, write_file: Writer):
    df = logs_factory(20)
    df.loc[0, "prediction"] = "maybe"
    line = _reject(store, schema, write_file, df, "cls.parquet")
    assert "row 1" in line and "'prediction'" in line and "classes" in line


def test_probability_out_of_range(store, schema, logs_factory, write_file: Writer):
    df = logs_factory(20)
    df.loc[11, "proba_good"] = 1.7
    line = _reject(store, schema, write_file, df, "p.parquet")
    assert "row 12" in line and "proba_good" in line and "[0, 1]" in line


def test_rows_of_another_model(store, schema, logs_factory, write_file: Writer):
    df = logs_factory(20).assign(model_name="churn")
    line = _reject(store, schema, write_file, df, "other.parquet")
    assert "another model" in line and "--model" in line


@pytest.mark.parametrize("cut", [0.5, 0.95])
def test_truncated_parquet_file(store, schema, logs_factory, write_file: Writer, cut):
    path = write_file(logs_factory(2000), "full.parquet")
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * cut)])
    before = snapshot(store, schema)
    line = only_problem(store.ingest([path], schema))
    assert "full.parquet" in line and "cannot be read" in line and "re-export" in line
    assert snapshot(store, schema) == before


def test_truncated_jsonl_file(store, schema, logs_factory, write_file: Writer):
    path = write_file(logs_factory(50), "cut.jsonl")
    text = path.read_text()
    path.write_text(text[: len(text) - 40])
    line = only_problem(store.ingest([path], schema))
    assert "cut.jsonl" in line


def test_each_file_is_atomic_in_a_batch(store, schema, logs_factory, write_file: Writer):
    good = write_file(logs_factory(30, id_prefix="g"), "good.parquet")
    bad_df = logs_factory(30, id_prefix="b")
    bad_df.loc[29, "prediction"] = None
    bad = write_file(bad_df, "bad.parquet")
    report = store.ingest([good, bad], schema)
    assert [f.status for f in report.files] == ["ingested", "rejected"]
    assert snapshot(store, schema)[0] == 30
    rejects = store.rejects("credit-risk")
    assert rejects["path"].str.endswith("bad.parquet").any()


def test_labels_are_appended_never_overwriting_logs(store, schema, logs_factory, write_file: Writer):
    store.ingest([write_file(logs_factory(10), "l.parquet")], schema)
    labels = pd.DataFrame({"prediction_id": ["p1", "p2"], "label": ["good", "bad"],
                           "ts": ["2026-01-05T00:00:00Z", "2026-01-06T00:00:00Z"]})
    assert store.ingest_labels([write_file(labels, "labels.csv")], schema).rows_added == 2
    store.add_labels(schema, pd.DataFrame({"prediction_id": ["p1"], "label": ["bad"], "annotator": ["ann"]}),
                     source="label_studio")
    cur = store.query_df("SELECT prediction_id, label, source FROM current_labels ORDER BY 1")
    assert cur.values.tolist() == [["p1", "bad", "label_studio"], ["p2", "bad", "ground_truth"]]
    assert store.query_df(f"SELECT count(*) AS n FROM {schema.table}")["n"][0] == 10


def test_label_for_unknown_prediction_is_rejected(store, schema, logs_factory, write_file: Writer):
    store.ingest([write_file(logs_factory(5), "l.parquet")], schema)
    labels = pd.DataFrame({"prediction_id": ["p1", "zzz"], "label": ["good", "bad"]})
    report = store.ingest_labels([write_file(labels, "lab.csv")], schema)
    line = only_problem(report)
    assert "'zzz'" in line and "row 2" in line and "ingest the prediction logs first" in line


def test_cli_ingest_reports_and_exits(tmp_path, logs_factory, write_file: Writer, settings):
    good = write_file(logs_factory(40), "good.parquet")
    bad_df = logs_factory(5, id_prefix="x").drop(columns=["sex"])
    bad = write_file(bad_df, "bad.csv")
    env = {"VIGIL_DATA_DIR": str(settings.data_dir), "PATH": str(Path(sys.executable).parent),
           "VIGIL_TOKEN": token_for(settings.users_file)}
    cmd = [str(Path(sys.executable).parent / "vigil"), "--config", "dashboard/demo/vigil.toml", "ingest",
           "--model", "credit-risk", str(good), str(bad)]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=Path(__file__).parents[1], timeout=120)
    assert out.returncode == 1, out.stderr
    assert "ingested" in out.stdout and "40 rows" in out.stdout
    assert "bad.csv" in out.stderr and "'sex'" in out.stderr and "Traceback" not in out.stderr
    again = subprocess.run(cmd[:-1], capture_output=True, text=True, env=env, cwd=Path(__file__).parents[1],
                           timeout=120)
    assert again.returncode == 0 and "skipped" in again.stdout and "0 rows added" in again.stdout


def test_unknown_model_is_a_clear_cli_error(settings, write_file: Writer, logs_factory):
    from dashboard.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["--config", "dashboard/demo/vigil.toml", "ingest", "--model", "nope",
              str(write_file(logs_factory(3), "x.parquet"))])
    assert exit_info.value.code == 2


def test_second_process_waits_for_the_lock_then_ingests(store, schema, logs_factory, write_file: Writer):
    """Another process holding the file makes ingestion wait and retry, not fail."""
    store.ensure_model(schema)
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import duckdb, sys, time
        con = duckdb.connect({str(store.path)!r})
        print("locked", flush=True)
        time.sleep(2.0)
        con.close()
    """)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        with pytest.raises(duckdb.IOException):
            duckdb.connect(str(store.path)).close()
        report = store.ingest([write_file(logs_factory(25), "w.parquet")], schema)
        assert report.rows_added == 25
    finally:
        holder.wait(timeout=30)


def test_lock_timeout_gives_a_clear_error(tmp_path):
    from connectors.logstore import StoreBusyError

    path = tmp_path / "busy.duckdb"
    duckdb.connect(str(path)).close()
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import duckdb, time
        con = duckdb.connect({str(path)!r}); print("locked", flush=True); time.sleep(5)
    """)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        with pytest.raises(StoreBusyError, match="VIGIL_LOCK_TIMEOUT"), LogStore(path, lock_timeout_s=0.5).connect():
            pass
    finally:
        holder.kill()
        holder.wait()


def test_current_labels_table_follows_every_label_write(store, schema, logs_factory, write_file: Writer):
    """The materialised latest-label table equals a full recomputation after files, syncs, updates and
    retractions, and a failed write changes neither table."""
    from connectors.queries.current_labels import latest_sql

    def same() -> list[list[object]]:
        got = store.query_df("SELECT * FROM current_labels ORDER BY model_name, prediction_id")
        want = store.query_df(latest_sql() + " ORDER BY model_name, prediction_id")
        assert got.astype(str).values.tolist() == want.astype(str).values.tolist()
        return got[["prediction_id", "label"]].values.tolist()

    store.ingest([write_file(logs_factory(10), "l.parquet")], schema)
    assert same() == []
    first = pd.DataFrame({"prediction_id": ["p1", "p2", "p3"], "label": ["good", "bad", "good"]})
    store.ingest_labels([write_file(first, "a.csv")], schema)
    assert same() == [["p1", "good"], ["p2", "bad"], ["p3", "good"]]
    store.add_labels(schema, pd.DataFrame({"prediction_id": ["p2", "p3", "p4"], "label": ["good", None, "bad"]}),
                     source="label_studio")
    assert same() == [["p1", "good"], ["p2", "good"], ["p4", "bad"]]  # p3 retracted
    with pytest.raises(Exception, match="not classes"):
        store.add_labels(schema, pd.DataFrame({"prediction_id": ["p1"], "label": ["maybe"]}), source="x")
    store.add_labels(schema, pd.DataFrame({"prediction_id": ["p3"], "label": ["bad"]}), source="label_studio")
    assert same() == [["p1", "good"], ["p2", "good"], ["p3", "bad"], ["p4", "bad"]]


def test_store_with_the_old_current_labels_view_is_migrated(tmp_path, schema, logs_factory, write_file: Writer):
    """A store written by an earlier version (current_labels as a view) opens with the same labels."""
    path = tmp_path / "old.duckdb"
    old = LogStore(path)
    old.ingest([write_file(logs_factory(5), "l.parquet")], schema)
    old.add_labels(schema, pd.DataFrame({"prediction_id": ["p1", "p2"], "label": ["good", "bad"]}), source="gt")
    old.add_labels(schema, pd.DataFrame({"prediction_id": ["p2"], "label": [None]}), source="gt")
    with duckdb.connect(str(path)) as con:
        con.execute("DROP TABLE current_labels")
        con.execute("CREATE VIEW current_labels AS SELECT model_name, prediction_id, label, source, annotator, ts "
                    "FROM labels WHERE false")
    reopened = LogStore(path)
    got = reopened.query_df("SELECT prediction_id, label FROM current_labels ORDER BY 1").values.tolist()
    assert got == [["p1", "good"]]
    with duckdb.connect(str(path)) as con:
        kinds = con.execute("SELECT table_type FROM information_schema.tables WHERE table_name = 'current_labels'")
        assert kinds.fetchall() == [("BASE TABLE",)]
