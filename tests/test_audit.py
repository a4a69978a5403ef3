"""Audit trail: hash chain, tamper detection (edit, delete, insert, reorder, truncate), CLI verify."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from connectors.logstore import LogStore
from dashboard.access.roles import Actor
from dashboard.audit import trail as audit
from dashboard.cli import cli

ALICE = Actor("alice", "data_scientist")
MANAGER = Actor("mia", "manager")


def _fill(store: LogStore, n: int = 5) -> None:
    for i in range(n):
        audit.record(store, ALICE if i % 2 else MANAGER, f"test.action{i}", "credit-risk", {"i": i, "x": "é<b>"})


def _rows(store: LogStore) -> pd.DataFrame:
    with store.connect() as con:
        return con.execute("SELECT * FROM audit_log ORDER BY seq").df()


def _rewrite(store: LogStore, frame: pd.DataFrame) -> None:
    """Tamper as an attacker with file access would: replace the table's rows (bypasses the module)."""
    with store.connect() as con:
        con.register("forged", frame)
        con.execute("DROP TABLE audit_log")  # the attacker may drop constraints too
        con.execute("CREATE TABLE audit_log AS SELECT seq::BIGINT AS seq, ts, actor, role, action, target, "
                    "details, prev_hash, hash FROM forged")
        con.unregister("forged")


def test_chain_links_and_verifies(store: LogStore) -> None:
    _fill(store)
    rows = _rows(store)
    assert list(rows["seq"]) == [1, 2, 3, 4, 5]
    assert rows["prev_hash"].iloc[0] == audit.GENESIS
    assert list(rows["prev_hash"].iloc[1:]) == list(rows["hash"].iloc[:-1])
    result = audit.verify(store)
    assert result.ok and result.entries == 5, result.message
    assert audit.head(store) == (5, rows["hash"].iloc[-1])


def test_empty_trail_verifies(store: LogStore) -> None:
    assert audit.verify(store).ok


def test_record_accepts_context_and_aliases(ctx) -> None:  # type: ignore[no-untyped-def]
    entry = audit.record(ctx, ALICE, "queue.add", model="credit-risk", detail={"rows": 3})
    assert entry.target == "credit-risk" and entry.details == '{"rows":3}'
    failed = audit.record(ctx.store, "mallory", "signin.failed", "mallory", {"reason": "bad password"})
    assert failed.role == "-" and failed.actor == "mallory"
    assert audit.verify(ctx.store).ok


@pytest.mark.parametrize("column,value", [
    ("actor", "eve"), ("role", "admin"), ("action", "model.promote"), ("target", "other-model"),
    ("details", '{"i":99}'), ("ts", datetime(2020, 1, 1)),
])
@pytest.mark.parametrize("seq", [1, 3, 5])
def test_edit_any_row_is_named(store: LogStore, column: str, value: object, seq: int) -> None:
    _fill(store)
    with store.connect() as con:
        con.execute(f"UPDATE audit_log SET {column} = ? WHERE seq = ?", [value, seq])
    result = audit.verify(store)
    assert not result.ok
    assert result.first_bad_seq == seq
    assert f"#{seq}" in result.message and "altered" in result.message


def test_edit_with_recomputed_hash_breaks_next_link(store: LogStore) -> None:
    _fill(store)
    rows = _rows(store)
    r = rows.iloc[1]
    forged_hash = audit.entry_hash(2, r["ts"], "eve", r["role"], r["action"], r["target"], r["details"],
                                   r["prev_hash"])
    with store.connect() as con:
        con.execute("UPDATE audit_log SET actor = 'eve', hash = ? WHERE seq = 2", [forged_hash])
    result = audit.verify(store)
    assert not result.ok and result.first_bad_seq == 3, result.message


def test_deleted_middle_entry_is_named(store: LogStore) -> None:
    _fill(store)
    with store.connect() as con:
        con.execute("DELETE FROM audit_log WHERE seq = 3")
    result = audit.verify(store)
    assert not result.ok and result.first_bad_seq == 3
    assert "missing" in result.message


def test_deleted_and_renumbered_entry_breaks_link(store: LogStore) -> None:
    _fill(store)
    rows = _rows(store)
    rows = rows[rows["seq"] != 3].copy()
    rows.loc[rows["seq"] > 3, "seq"] -= 1
    _rewrite(store, rows)
    result = audit.verify(store)
    assert not result.ok and result.first_bad_seq == 3


def test_inserted_entry_in_the_middle(store: LogStore) -> None:
    _fill(store)
    rows = _rows(store)
    prev = rows.iloc[1]
    ts = prev["ts"] + timedelta(microseconds=1)
    forged = {"seq": 3, "ts": ts, "actor": "eve", "role": "manager", "action": "model.promote",
              "target": "credit-risk", "details": "{}", "prev_hash": prev["hash"]}
    forged["hash"] = audit.entry_hash(**{k: forged[k] for k in ("seq", "ts", "actor", "role", "action",  # type: ignore[arg-type]
                                                                "target", "details", "prev_hash")})
    rows.loc[rows["seq"] >= 3, "seq"] += 1
    rows = pd.concat([rows, pd.DataFrame([forged])]).sort_values("seq")
    _rewrite(store, rows)
    result = audit.verify(store)
    # The forged entry links correctly to #2; the original #3 (now #4) no longer links to its predecessor.
    assert not result.ok and result.first_bad_seq == 4, result.message


def test_duplicate_sequence_insert(store: LogStore) -> None:
    _fill(store)
    rows = _rows(store)
    dup = rows.iloc[[2]].copy()
    dup["actor"] = "eve"
    _rewrite(store, pd.concat([rows, dup]))
    result = audit.verify(store)
    assert not result.ok and result.first_bad_seq == 3


def test_appended_entry_outside_vigil(store: LogStore) -> None:
    _fill(store)
    rows = _rows(store)
    last = rows.iloc[-1]
    fields = {"seq": 6, "ts": last["ts"], "actor": "eve", "role": "manager", "action": "model.promote",
              "target": "credit-risk", "details": "{}", "prev_hash": last["hash"]}
    fields["hash"] = audit.entry_hash(**fields)  # type: ignore[arg-type]
    _rewrite(store, pd.concat([rows, pd.DataFrame([fields])]))
    result = audit.verify(store)
    assert not result.ok and result.first_bad_seq == 6


def test_reordered_entries(store: LogStore) -> None:
    _fill(store)
    rows = _rows(store)
    a, b = rows.iloc[1].copy(), rows.iloc[2].copy()
    rows.iloc[1], rows.iloc[2] = b, a
    rows["seq"] = [1, 2, 3, 4, 5]
    _rewrite(store, rows)
    result = audit.verify(store)
    assert not result.ok and result.first_bad_seq == 2


@pytest.mark.parametrize("cut", [1, 2])
def test_truncated_tail(store: LogStore, cut: int) -> None:
    _fill(store)
    with store.connect() as con:
        con.execute("DELETE FROM audit_log WHERE seq > ?", [5 - cut])
    result = audit.verify(store)
    assert not result.ok and result.first_bad_seq == 5 - cut + 1
    assert "truncated" in result.message


def test_external_anchor_catches_a_rewritten_head(store: LogStore) -> None:
    _fill(store, 3)
    anchor = audit.head(store)
    _fill(store, 2)
    assert audit.verify(store, expected_head=(5, audit.head(store)[1])).ok
    with store.connect() as con:
        con.execute("DELETE FROM audit_log WHERE seq > 2")
        con.execute("UPDATE audit_head SET entries = 2, last_hash = (SELECT hash FROM audit_log WHERE seq = 2)")
    assert audit.verify(store).ok  # an attacker who also rewrites the head defeats the stored anchor ...
    result = audit.verify(store, expected_head=anchor)  # ... but not one kept elsewhere
    assert not result.ok and result.first_bad_seq == 3


def test_concurrent_appends_keep_one_chain(store: LogStore) -> None:
    def work(k: int) -> None:
        for i in range(5):
            audit.record(store, ALICE, "test.thread", f"t{k}", {"i": i})

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    result = audit.verify(store)
    assert result.ok and result.entries == 20, result.message


def test_module_has_no_update_or_delete_path() -> None:
    source = Path(audit.__file__).read_text().upper()
    assert "DELETE FROM AUDIT_LOG" not in source and "UPDATE AUDIT_LOG" not in source
    assert "DROP TABLE" not in source


def test_entries_filters(store: LogStore) -> None:
    _fill(store)
    assert len(audit.entries(store, actor="alice")) == 2
    assert list(audit.entries(store, action="test.action1")["seq"]) == [2]
    assert len(audit.entries(store, limit=2)) == 2
    future = datetime.now() + timedelta(days=1)
    assert audit.entries(store, since=future).empty


def _cli(env: dict[str, str], *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args), env=env)
    return result.exit_code, result.output


def test_cli_verify_exit_codes(store: LogStore) -> None:
    from tests.conftest import DEMO_CONFIG

    _fill(store)
    env = {"VIGIL_CONFIG": str(DEMO_CONFIG), "VIGIL_DUCKDB_PATH": str(store.path)}
    code, text = _cli(env, "audit", "verify")
    assert code == 0 and text.startswith("OK: audit trail intact: 5 entries, verified against the checkpoint of")
    code, text = _cli(env, "audit", "head")
    assert code == 0 and text.startswith("5:")
    anchor = text.strip()
    code, text = _cli(env, "audit", "list", "--actor", "alice")
    assert code == 0 and text.count("alice") == 2
    with store.connect() as con:
        con.execute("UPDATE audit_log SET target = 'x' WHERE seq = 4")
    code, text = _cli(env, "audit", "verify")
    assert code == 1 and "entry #4" in text
    code, text = _cli(env, "audit", "verify", "--expect-head", anchor, "--json")
    assert code == 1 and '"first_bad_seq": 4' in text
