"""The audit trail anchored outside the store: signed checkpoints, and `vigil audit verify` against them.

Everything is real: the DuckDB file, the checkpoint file and key file in the data folder, a sqlite MLflow
store for the experiment tag, and the `vigil` CLI through click's runner. Tampering is done the way an
attacker with write access to the DuckDB file would: rows replaced, the chain re-hashed, the stored head
rewritten to match. Each case runs with the anchor (checkpoints written: detected and named) and without
(a trail no checkpoint was ever written for: the honest "not anchored").
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import stat
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from connectors.logstore import LogStore
from dashboard.access.roles import Actor
from dashboard.audit import anchor, checkpoints, trail
from dashboard.cli import cli
from dashboard.context import Context
from dashboard.errors import VigilError
from dashboard.settings import Settings
from tests.conftest import DEMO_CONFIG
from tests.fixtures import compliance as fx
from tests.fixtures.access import token_for

migrated_mlflow_db = fx.migrated_mlflow_db

ALICE = Actor("alice", "data_scientist")
MIA = Actor("mia", "manager")
NOT_ANCHORED = "no checkpoint: the chain is self-consistent but not anchored"
MODEL = "credit-risk"


@pytest.fixture(autouse=True)
def _no_outside_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No key from this machine's environment or secrets files: each test's key is its own."""
    for name in ("VIGIL_AUDIT_KEY", "VIGIL_AUDIT_KEY_FILE", "VIGIL_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(tmp_path)


# ------------------------------------------------------------------------------------------- helpers

def _fill(target: LogStore | Context, n: int, start: int = 0) -> None:
    for i in range(start, start + n):
        trail.record(target, ALICE if i % 2 else MIA, f"test.action{i}", MODEL, {"i": i})


def _fill_unanchored(store: LogStore, n: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """A trail written by a process whose settings name another store (as a Vigil before checkpoints)."""
    with monkeypatch.context() as m:
        m.setenv("VIGIL_DUCKDB_PATH", str(store.path) + ".elsewhere")
        _fill(store, n)


def _trail(ctx: Context, anchored: bool, monkeypatch: pytest.MonkeyPatch, n: int = 6) -> None:
    """``n`` entries; anchored: written through the Context and signed at the head by `vigil audit checkpoint`."""
    if anchored:
        _fill(ctx, n)
        code, text = _cli("audit", "checkpoint")
        assert code == 0 and f"entry #{n}" in text, text
    else:
        _fill_unanchored(ctx.store, n, monkeypatch)


def _cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args), env={"VIGIL_CONFIG": str(DEMO_CONFIG)})
    return result.exit_code, result.output


def _verify() -> tuple[int, dict[str, object], str]:
    code, text = _cli("audit", "verify", "--json")
    _, plain = _cli("audit", "verify")
    return code, json.loads(text), plain


def _rows(store: LogStore) -> pd.DataFrame:
    with store.connect() as con:
        return con.execute("SELECT * FROM audit_log ORDER BY seq").df()


def _forge(store: LogStore, rows: pd.DataFrame) -> None:
    """Replace the whole trail by ``rows``, renumbered from 1, re-linked and re-hashed from the genesis, with
    the stored head rewritten to match: a chain that verifies on its own."""
    prev = trail.GENESIS
    out = []
    for seq, r in enumerate(rows.to_dict("records"), 1):
        digest = trail.entry_hash(seq, r["ts"], r["actor"], r["role"], r["action"], r["target"], r["details"], prev)
        out.append({**r, "seq": seq, "prev_hash": prev, "hash": digest})
        prev = digest
    frame = pd.DataFrame(out, columns=rows.columns)
    with store.connect() as con:
        con.register("forged", frame)
        con.execute("DROP TABLE audit_log")
        con.execute("CREATE TABLE audit_log AS SELECT seq::BIGINT AS seq, ts, actor, role, action, target, "
                    "details, prev_hash, hash FROM forged")
        con.unregister("forged")
        con.execute("DELETE FROM audit_head")
        if out:
            con.execute("INSERT INTO audit_head VALUES (1, ?, ?, now())", [len(out), prev])
    assert trail.verify(store).ok  # the chain alone no longer shows anything


def _checkpoint_file(settings: Settings) -> Path:
    return settings.data_dir / checkpoints.CHECKPOINT_FILE


def _assert_not_anchored(code: int, result: dict[str, object], plain: str) -> None:
    assert code == 0 and result["ok"] is True and result["anchored"] is False
    assert NOT_ANCHORED in str(result["message"]) and plain.startswith("OK (not anchored): ")
    assert "audit trail intact" not in plain
    code, _ = _cli("audit", "verify", "--require-anchor")
    assert code == 1


# ------------------------------------------------------------------------------ one test per tampering

@pytest.mark.parametrize("anchored", [True, False], ids=["anchored", "not-anchored"])
def test_cut_tail(ctx: Context, anchored: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    _trail(ctx, anchored, monkeypatch)
    _forge(ctx.store, _rows(ctx.store).iloc[:4])
    code, result, plain = _verify()
    if not anchored:
        return _assert_not_anchored(code, result, plain)
    assert code == 1 and result["problem"] == "cut_tail" and result["first_bad_seq"] == 5
    assert "the tail was cut" in plain and "records 6 entries, only 4 remain" in plain


@pytest.mark.parametrize("anchored", [True, False], ids=["anchored", "not-anchored"])
def test_cut_head(ctx: Context, anchored: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    _trail(ctx, anchored, monkeypatch)
    _forge(ctx.store, _rows(ctx.store).iloc[2:])  # the first two entries deleted, the rest renumbered
    code, result, plain = _verify()
    if not anchored:
        return _assert_not_anchored(code, result, plain)
    assert code == 1 and result["problem"] == "cut_head" and result["first_bad_seq"] == 1
    assert "the head was replaced" in plain


def test_cut_head_without_renumbering_is_named(ctx: Context) -> None:
    _fill(ctx, 6)
    with ctx.store.connect() as con:
        con.execute("DELETE FROM audit_log WHERE seq <= 2")
    result = anchor.verify(ctx)
    assert not result.ok and result.problem == "cut_head" and "entries #1 to #2 are missing" in result.message


@pytest.mark.parametrize("anchored", [True, False], ids=["anchored", "not-anchored"])
def test_rehashed_chain(ctx: Context, anchored: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    _trail(ctx, anchored, monkeypatch)
    rows = _rows(ctx.store)
    rows.loc[rows["seq"] == 3, "actor"] = "eve"  # history rewritten, every hash recomputed
    _forge(ctx.store, rows)
    code, result, plain = _verify()
    if not anchored:
        return _assert_not_anchored(code, result, plain)
    assert code == 1 and result["problem"] == "rehashed" and result["first_bad_seq"] == 6
    assert "re-hashed" in plain and "entry #6" in plain
    assert "after entry #1 (the last checkpoint that still matches)" in plain  # the first entry's checkpoint


@pytest.mark.parametrize("anchored", [True, False], ids=["anchored", "not-anchored"])
def test_emptied_table(ctx: Context, anchored: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    _trail(ctx, anchored, monkeypatch)
    with ctx.store.connect() as con:
        con.execute("DELETE FROM audit_log")
        con.execute("DELETE FROM audit_head")
    code, result, plain = _verify()
    if not anchored:
        return _assert_not_anchored(code, result, plain)
    assert code == 1 and result["problem"] == "emptied" and result["entries"] == 0
    assert "the audit trail is empty" in plain and "records 6 entries" in plain


@pytest.mark.parametrize("anchored", [True, False], ids=["anchored", "not-anchored"])
def test_forged_checkpoint(ctx: Context, settings: Settings, anchored: bool,
                           monkeypatch: pytest.MonkeyPatch) -> None:
    """The attacker cuts the tail and writes a checkpoint of the new head, without the key."""
    _trail(ctx, anchored, monkeypatch)
    _forge(ctx.store, _rows(ctx.store).iloc[:4])
    count, last = trail.head(ctx.store)
    fake = checkpoints.AuditKey(b"guessed", "attacker")
    forged = checkpoints.sign(fake, checkpoints.Checkpoint(count, _rows(ctx.store)["hash"].iloc[0], last,
                                                           datetime.now(UTC), "manual"))
    checkpoints.append_line(_checkpoint_file(settings), forged)
    code, result, plain = _verify()
    assert code == 1 and result["ok"] is False
    if anchored:
        lines = len(_checkpoint_file(settings).read_text().splitlines())
        assert result["problem"] == "forged" and f"line {lines} of" in plain and "bad signature" in plain
    else:  # no key was ever made here, so nothing can vouch for that checkpoint
        assert result["problem"] == "no_key" and "cannot be checked: no audit key" in plain


@pytest.mark.parametrize("anchored", [True, False], ids=["anchored", "not-anchored"])
def test_missing_checkpoint_file(ctx: Context, settings: Settings, anchored: bool,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    _trail(ctx, anchored, monkeypatch)
    _checkpoint_file(settings).unlink(missing_ok=True)
    code, result, plain = _verify()
    if not anchored:
        return _assert_not_anchored(code, result, plain)
    assert code == 1 and result["problem"] == "missing_checkpoints"
    assert f"{_checkpoint_file(settings)} is missing" in plain and "restore" in plain
    _fill(ctx, 1, start=6)  # the next entry does not quietly start a new file over the gap
    assert not _checkpoint_file(settings).exists() and anchor.verify(ctx).problem == "missing_checkpoints"


def test_removed_checkpoint_lines_are_noticed(ctx: Context, settings: Settings) -> None:
    _fill(ctx, 6)
    assert _cli("audit", "checkpoint")[0] == 0
    path = _checkpoint_file(settings)
    path.write_text(path.read_text().splitlines()[0] + "\n")  # only the first entry's checkpoint is left
    result = anchor.verify(ctx)
    assert not result.ok and result.problem == "missing_checkpoints" and "lacks the checkpoint of entry #6" in result.message


# --------------------------------------------------------------------------------- what stays honest

def test_intact_trail_is_verified_against_its_checkpoint(ctx: Context) -> None:
    _fill(ctx, 3)
    code, result, plain = _verify()
    assert code == 0 and result["anchored"] is True and plain.startswith("OK: audit trail intact: 3 entries")
    assert "verified against the checkpoint of" in plain and "(entry #1); 2 newer entries are not anchored yet" in plain
    status = anchor.status(ctx)
    assert status.headline == f"verified against the checkpoint of {status.checkpoint.when}"  # type: ignore[union-attr]


def test_a_cut_after_the_newest_checkpoint_cannot_be_seen(ctx: Context) -> None:
    """The documented limit: entries after the newest checkpoint are only as safe as the store; the
    result says which entry the checkpoint covers, so the reader knows what was proven."""
    _fill(ctx, 5)  # a checkpoint at #1 only
    _forge(ctx.store, _rows(ctx.store).iloc[:3])
    result = anchor.verify(ctx)
    assert result.ok and result.checkpoint is not None and result.checkpoint.entries == 1
    assert "(entry #1); 2 newer entries are not anchored yet" in result.message


def test_expect_head_still_works_with_checkpoints(ctx: Context) -> None:
    _fill(ctx, 3)
    anchor_text = f"{trail.head(ctx.store)[0]}:{trail.head(ctx.store)[1]}"
    assert _cli("audit", "verify", "--expect-head", anchor_text)[0] == 0
    _fill(ctx, 1, start=3)
    code, text = _cli("audit", "verify", "--expect-head", anchor_text)
    assert code == 1 and "expected head" in text


def test_broken_chain_is_reported_even_when_the_checkpoints_match(ctx: Context) -> None:
    _fill(ctx, 4)
    with ctx.store.connect() as con:
        con.execute("UPDATE audit_log SET target = 'x' WHERE seq = 3")
    result = anchor.verify(ctx)
    assert not result.ok and result.problem == "chain" and result.first_bad_seq == 3 and result.anchored


# ---------------------------------------------------------------------------------- when and where

def test_due_scheme() -> None:
    now = datetime.now(UTC)
    last = checkpoints.Checkpoint(10, "a" * 64, "b" * 64, now, "manual")
    assert checkpoints.due(None, 1, "ingest", now) == "first checkpoint"
    assert checkpoints.due(last, 11, "ingest", now) is None
    assert checkpoints.due(last, 11, "model.promote", now) == "after model.promote"
    assert checkpoints.due(last, 10 + checkpoints.EVERY_ENTRIES, "ingest", now) is not None
    assert checkpoints.due(last, 11, "ingest", now + timedelta(minutes=checkpoints.EVERY_MINUTES)) is not None
    assert checkpoints.due(last, 10, "model.promote", now) is None  # already covered


def test_checkpoints_are_written_first_every_n_and_after_critical_actions(ctx: Context, settings: Settings) -> None:
    _fill(ctx, checkpoints.EVERY_ENTRIES + 1)
    trail.record(ctx, MIA, "policy.change", "some-other-model", {})
    lines = [json.loads(x) for x in _checkpoint_file(settings).read_text().splitlines()]
    assert [(c["entries"], c["reason"]) for c in lines] == [
        (1, "first checkpoint"), (1 + checkpoints.EVERY_ENTRIES, "20 entries since the last checkpoint"),
        (checkpoints.EVERY_ENTRIES + 2, "after policy.change")]
    with ctx.store.connect() as con:
        state = checkpoints.read_state(con)
    assert state is not None and state.checkpoints == 3 and state.last_entries == checkpoints.EVERY_ENTRIES + 2


def test_entries_recorded_through_the_bare_store_are_anchored(store: LogStore, settings: Settings) -> None:
    """Domains record through ``ctx.store``: the process's own settings name that file, so it is anchored."""
    _fill(store, 2)
    assert checkpoints.parse(_checkpoint_file(settings).read_text().splitlines()[0]).entries == 1
    other = LogStore(settings.data_dir / "other.duckdb")  # a file no settings name: nothing to anchor it with
    _fill(other, 1)
    assert len(_checkpoint_file(settings).read_text().splitlines()) == 1


def test_a_checkpoint_after_15_quiet_minutes(ctx: Context, settings: Settings) -> None:
    _fill(ctx, 1)
    path = _checkpoint_file(settings)
    key = checkpoints.load_key(settings.data_dir / "audit.key", create=False)
    assert key is not None
    first = checkpoints.parse(path.read_text())
    path.write_text(checkpoints.sign(key, replace(first, at=first.at - timedelta(minutes=16))).to_json() + "\n")
    _fill(ctx, 1, start=1)
    assert checkpoints.parse(path.read_text().splitlines()[-1]).reason == "15 minutes since the last checkpoint"


def test_a_rewritten_chain_is_never_signed(ctx: Context, settings: Settings) -> None:
    _fill(ctx, 4)
    assert _cli("audit", "checkpoint")[0] == 0
    rows = _rows(ctx.store)
    rows.loc[rows["seq"] == 2, "actor"] = "eve"
    _forge(ctx.store, rows)
    before = _checkpoint_file(settings).read_text()
    code, text = _cli("audit", "checkpoint")
    assert code == 1 and "not signing a checkpoint" in text and "re-hashed" in text
    _fill(ctx, checkpoints.EVERY_ENTRIES)  # automatic checkpoints refuse too (logged)
    assert _checkpoint_file(settings).read_text() == before


def test_key_file_is_created_0600_once(ctx: Context, settings: Settings) -> None:
    _fill(ctx, 1)
    key_file = settings.data_dir / "audit.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    text = key_file.read_text()
    _fill(ctx, 1, start=1)
    assert key_file.read_text() == text and len(text.strip()) == 64


def test_key_precedence_environment_secrets_file(tmp_path: Path) -> None:
    key_file = tmp_path / "k" / "audit.key"
    secrets_toml = tmp_path / ".streamlit" / "secrets.toml"
    assert checkpoints.load_key(key_file, create=False, environ={}) is None
    made = checkpoints.load_key(key_file, create=True, environ={})
    assert made is not None and made.source == str(key_file)
    secrets_toml.parent.mkdir()
    secrets_toml.write_text('[audit]\nkey = "from-secrets"\n')
    from_secrets = checkpoints.load_key(key_file, create=False, environ={})
    assert from_secrets is not None and from_secrets.secret == b"from-secrets"  # cwd/.streamlit wins over the file
    from_env = checkpoints.load_key(key_file, create=False, environ={"VIGIL_AUDIT_KEY": "from-env"})
    assert from_env is not None and from_env.secret == b"from-env" and from_env.source == "VIGIL_AUDIT_KEY"


def test_the_key_file_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from dashboard.settings import ConfigError, load_settings, settings_from_mapping

    monkeypatch.setenv("VIGIL_DATA_DIR", str(tmp_path / "data"))
    assert load_settings(DEMO_CONFIG).audit_key_file == tmp_path / "data" / "audit.key"
    monkeypatch.setenv("VIGIL_AUDIT_KEY_FILE", str(tmp_path / "vault" / "vigil-audit.key"))
    assert load_settings(DEMO_CONFIG).audit_key_file == tmp_path / "vault" / "vigil-audit.key"
    monkeypatch.setenv("VIGIL_AUDIT_KEY_FILE", str(tmp_path))
    with pytest.raises(ConfigError, match="audit_key_file"):
        load_settings(DEMO_CONFIG)
    with pytest.raises(ConfigError, match="secrets do not belong in vigil"):
        settings_from_mapping({"vigil": {"audit_key": "in-the-config"}})


def test_mlflow_experiment_tag_is_a_second_copy(ctx: Context, settings: Settings, migrated_mlflow_db: Path) -> None:
    """A promotion tags the model's experiment; with the file and the store's note both gone, the tag
    alone still shows that checkpoints existed, and it anchors the chain against a cut tail."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    shutil.copy(migrated_mlflow_db, settings.data_dir / "mlflow.db")  # the real sqlite store, pre-migrated
    experiment = ctx.registry.client.create_experiment(MODEL)
    _fill(ctx, 3)
    trail.record(ctx, MIA, "model.promote", MODEL, {"version": "2"})
    tags = ctx.registry.experiment_tags(MODEL)
    assert tags is not None and checkpoints.parse(tags[checkpoints.MLFLOW_TAG]).entries == 4
    assert ctx.registry.client.get_experiment(experiment).tags[checkpoints.MLFLOW_TAG] == tags[checkpoints.MLFLOW_TAG]
    assert ctx.registry.experiment_tags("no-such-experiment") is None
    assert ctx.registry.set_experiment_tag("no-such-experiment", "k", "v") is False

    _checkpoint_file(settings).unlink()
    with ctx.store.connect() as con:
        con.execute("DELETE FROM audit_anchor")
    result = anchor.verify(ctx)
    assert not result.ok and result.problem == "missing_checkpoints"
    assert "MLflow experiment 'credit-risk'" in result.message

    _forge(ctx.store, _rows(ctx.store).iloc[:2])
    result = anchor.verify(ctx)
    assert not result.ok and result.problem == "cut_tail" and "only 2 remain" in result.message

    forged = json.loads(tags[checkpoints.MLFLOW_TAG]) | {"entries": 2}
    ctx.registry.set_experiment_tag(MODEL, checkpoints.MLFLOW_TAG, json.dumps(forged))
    result = anchor.verify(ctx)
    assert not result.ok and result.problem == "forged" and "MLflow experiment 'credit-risk'" in result.message


# ---------------------------------------------------------------------------------------- recovery

def test_restart_after_a_lost_file_is_recorded(ctx: Context, settings: Settings) -> None:
    _fill(ctx, 3)
    _checkpoint_file(settings).unlink()
    code, text = _cli("audit", "checkpoint")
    assert code == 1 and "add --restart REASON" in text
    env = {"VIGIL_CONFIG": str(DEMO_CONFIG), "VIGIL_TOKEN": token_for(settings.users_file, "root")}
    result = CliRunner().invoke(cli, ["audit", "checkpoint", "--restart", "disk lost on 1 Dec"], env=env)
    assert result.exit_code == 0, result.output
    verified = anchor.verify(ctx)
    assert verified.ok and verified.anchored, verified.message
    entry = trail.entries(ctx.store, action="audit.reanchor").iloc[0]
    assert entry["actor"] == "root" and "disk lost on 1 Dec" in entry["details"]
    assert "missing_checkpoints" in entry["details"]


def test_restart_refuses_a_broken_chain_and_a_non_admin(ctx: Context, settings: Settings) -> None:
    _fill(ctx, 3)
    with ctx.store.connect() as con:
        con.execute("UPDATE audit_log SET actor = 'eve' WHERE seq = 2")
    with pytest.raises(VigilError, match="altered"):
        anchor.checkpoint(ctx, restart="why not")
    env = {"VIGIL_CONFIG": str(DEMO_CONFIG), "VIGIL_TOKEN": token_for(settings.users_file, "dana", "manager")}
    result = CliRunner().invoke(cli, ["audit", "checkpoint", "--restart", "x"], env=env)
    assert result.exit_code != 0 and "needs the admin role" in str(result.exception)


def test_key_change_needs_a_restart(ctx: Context, settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    _fill(ctx, 2)
    monkeypatch.setenv("VIGIL_AUDIT_KEY", "a-new-key-from-the-vault")
    result = anchor.verify(ctx)
    assert not result.ok and result.problem == "forged" and "--restart" in result.message
    done = anchor.checkpoint(ctx, restart="key moved to the vault", actor=Actor("root", "admin"))
    assert done.checkpoint.entries == 3  # the reanchor entry is covered
    assert list(settings.data_dir.glob(checkpoints.CHECKPOINT_FILE + ".retired-*"))
    assert anchor.verify(ctx).ok


# ----------------------------------------------------------------------------------- the key is secret

def test_the_key_never_appears(ctx: Context, settings: Settings, monkeypatch: pytest.MonkeyPatch,
                               caplog: pytest.LogCaptureFixture) -> None:
    secret = "s3cr3t-audit-key-do-not-print"
    monkeypatch.setenv("VIGIL_AUDIT_KEY", secret)
    caplog.set_level(logging.DEBUG)
    _fill(ctx, 3)
    outputs = [_cli("audit", "checkpoint")[1], _cli("audit", "verify", "--json")[1], _cli("audit", "list")[1]]
    _forge(ctx.store, _rows(ctx.store).iloc[:2])
    outputs.append(_cli("audit", "verify")[1])
    _fill(ctx, checkpoints.EVERY_ENTRIES + 1)  # the automatic checkpoint is refused, and logged
    monkeypatch.setenv("VIGIL_AUDIT_KEY", "another")
    outputs.append(_cli("audit", "verify")[1])
    assert "not signing" in caplog.text  # the refusal was logged ...
    for text in [*outputs, caplog.text, _checkpoint_file(settings).read_text(), _rows(ctx.store).to_csv(),
                 repr(checkpoints.load_key(None, create=False, environ={"VIGIL_AUDIT_KEY": secret}))]:
        assert secret not in text  # ... and nothing shows the key
    file_key = checkpoints.load_key(settings.data_dir / "k.key", create=True, environ={})
    assert file_key is not None and file_key.secret.decode() not in repr(file_key)
    assert not os.access(settings.data_dir / "audit.key", os.F_OK)  # the environment key needed no file
