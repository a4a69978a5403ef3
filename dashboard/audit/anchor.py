"""Verify the audit chain against its signed checkpoints, and anchor it on request.

Why a second verification: :func:`trail.verify` proves the entries agree with each other and with the
stored head, both of which live in the store. Here the chain is also held against the newest authentic
checkpoint kept outside the store (the checkpoint file and the MLflow experiment tags), which names a
cut tail, a cut head, an emptied table, a re-hashed chain, a forged checkpoint and a checkpoint file
that disappeared. Without any checkpoint the result says so: self-consistent, not anchored.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from dashboard.audit import checkpoints as cps
from dashboard.audit import trail
from dashboard.audit.checkpoints import AnchorConfig, AuditKey, Checkpoint, Found, State
from dashboard.audit.trail import GENESIS, Entry, Principal
from dashboard.errors import VigilError

NOT_ANCHORED = "no checkpoint: the chain is self-consistent but not anchored"


@dataclass(frozen=True)
class AnchoredVerification:
    """The chain's verification against its newest authentic checkpoint.

    ``problem`` names the failure: ``emptied``, ``cut_head``, ``cut_tail``, ``rehashed``, ``forged``,
    ``no_key``, ``missing_checkpoints`` (the file or some of its lines are gone) or ``chain`` (the chain
    itself is broken, see ``first_bad_seq``)."""

    ok: bool
    anchored: bool
    entries: int
    message: str
    problem: str | None = None
    first_bad_seq: int | None = None
    last_hash: str = GENESIS
    checkpoint: Checkpoint | None = None
    notes: tuple[str, ...] = ()

    @property
    def headline(self) -> str:
        """One line for the page and the report: what the trail was verified against, or what failed."""
        if not self.ok:
            return f"verification failed: {self.message}"
        if self.checkpoint is None:
            return NOT_ANCHORED
        return f"verified against the checkpoint of {self.checkpoint.when}"

    def as_dict(self) -> dict[str, Any]:
        cp = self.checkpoint
        return {"ok": self.ok, "anchored": self.anchored, "entries": self.entries, "problem": self.problem,
                "first_bad_seq": self.first_bad_seq, "message": self.message, "last_hash": self.last_hash,
                "checkpoint": None if cp is None else {"entries": cp.entries, "at": cp.when, "reason": cp.reason},
                "notes": list(self.notes)}


def _fail(problem: str, message: str, entries: list[Entry], checkpoint: Checkpoint | None = None,
          first_bad_seq: int | None = None, notes: tuple[str, ...] = ()) -> AnchoredVerification:
    return AnchoredVerification(False, checkpoint is not None, len(entries), message, problem, first_bad_seq,
                                entries[-1].hash if entries else GENESIS, checkpoint, notes)


# ------------------------------------------------------------------------------------------ gathering

@dataclass(frozen=True)
class _Evidence:
    entries: list[Entry]
    stored_head: tuple[int, str] | None
    state: State | None
    file_found: list[Found]
    tag_found: list[Found]
    key: AuditKey | None
    config: AnchorConfig | None
    notes: tuple[str, ...]

    @property
    def found(self) -> list[Found]:
        return self.file_found + self.tag_found

    @property
    def authentic(self) -> list[Checkpoint]:
        return [f.checkpoint for f in self.found if f.problem is None and f.checkpoint is not None]


def _gather(store_or_ctx: Any) -> _Evidence:
    config = cps.config_for(store_or_ctx)
    entries, stored_head = trail.read_chain(store_or_ctx)
    store = getattr(store_or_ctx, "store", store_or_ctx)
    with store.connect() as con:
        state = cps.read_state(con)
    key = config.key() if config is not None else cps.load_key(None, create=False)
    file_found = cps.read_file(config.checkpoint_file, key) if config is not None else []
    tag_found, notes = cps.read_tags(config, key) if config is not None else ([], [])
    if config is None:
        notes = [*notes, "the settings of this store are unknown, so its checkpoint file was not read"]
    return _Evidence(entries, stored_head, state, file_found, tag_found, key, config, tuple(notes))


# ------------------------------------------------------------------------------------------- the checks

def _checkpoint_problems(ev: _Evidence) -> AnchoredVerification | None:
    """A forged or unreadable checkpoint, or checkpoints that cannot be checked for want of the key."""
    if ev.found and ev.key is None:
        where = ev.config.key_file if ev.config is not None else "the key file"
        return _fail("no_key", f"{len(ev.found)} checkpoint(s) cannot be checked: no audit key; set "
                     f"{cps.KEY_ENV} (or put it in .streamlit/secrets.toml) as when they were written, or "
                     f"restore {where}", ev.entries, notes=ev.notes)
    bad = [f for f in ev.found if f.problem is not None]
    if bad:
        first = bad[0]
        return _fail("forged", f"forged checkpoint: {first.where} {first.problem} (written without the audit "
                     "key, or signed with another key); find out who wrote it before removing it. After a "
                     f"key change, move the old checkpoint file aside and run `vigil audit checkpoint "
                     f"--restart REASON`" + (f" ({len(bad) - 1} more)" if len(bad) > 1 else ""),
                     ev.entries, notes=ev.notes)
    return None


def _missing_checkpoints(ev: _Evidence, latest: Checkpoint | None) -> AnchoredVerification | None:
    """The file (or its newest lines) is gone although the store or MLflow says checkpoints were written."""
    path = ev.config.checkpoint_file if ev.config is not None else "the checkpoint file"
    in_file = max((c.entries for f in ev.file_found if (c := f.checkpoint) is not None), default=None)
    if ev.state is not None and ev.state.checkpoints and (in_file is None or in_file < ev.state.last_entries):
        what = "is missing" if in_file is None else f"lacks the checkpoint of entry #{ev.state.last_entries}"
        return _fail("missing_checkpoints", f"the checkpoint file {path} {what}, but the store records "
                     f"{ev.state.checkpoints} checkpoint(s), the last of entry #{ev.state.last_entries} at "
                     f"{ev.state.last_at:%Y-%m-%d %H:%M:%S} UTC: restore {path} from a backup (a rewrite of "
                     "the trail hides behind a deleted checkpoint)", ev.entries, latest, notes=ev.notes)
    tagged = [f for f in ev.tag_found if f.checkpoint is not None and (in_file is None or f.checkpoint.entries > in_file)]
    if tagged and tagged[0].checkpoint is not None:
        cp = tagged[0].checkpoint
        return _fail("missing_checkpoints", f"the checkpoint file {path} lacks {cp.label}, which {tagged[0].where} "
                     f"holds: restore {path} from a backup", ev.entries, latest, notes=ev.notes)
    return None


def _against(entries: list[Entry], checkpoints: list[Checkpoint], latest: Checkpoint) -> AnchoredVerification | None:
    """The chain held against every authentic checkpoint: emptied, cut head, cut tail, re-hashed."""
    count = len(entries)
    if latest.entries and not count:
        return _fail("emptied", f"the audit trail is empty, but {latest.label} records {latest.entries} "
                     "entries: the table was emptied or replaced; restore the store from a backup", entries, latest,
                     first_bad_seq=1)
    if latest.entries and entries[0].seq != 1:
        return _fail("cut_head", f"the head was cut: entries #1 to #{entries[0].seq - 1} are missing (the "
                     f"trail starts at entry #{entries[0].seq}), checked against {latest.label}", entries, latest,
                     first_bad_seq=1)
    if latest.entries and any(c.entries and c.first_hash != entries[0].hash for c in checkpoints):
        return _fail("cut_head", f"the head was replaced: entry #1 is not the entry #1 {latest.label} signed (the "
                     "first entries were deleted and the rest renumbered, or the chain was re-hashed from "
                     "its start)", entries, latest, first_bad_seq=1)
    if count < latest.entries:
        return _fail("cut_tail", f"the tail was cut: {latest.label} records {latest.entries} entries, only "
                     f"{count} remain (entries #{count + 1} to #{latest.entries} are missing)", entries, latest,
                     first_bad_seq=count + 1)
    by_seq = {e.seq: e.hash for e in entries}
    for c in sorted(checkpoints, key=lambda c: c.entries):
        if c.entries and by_seq.get(c.entries) != c.last_hash:
            matching = [m.entries for m in checkpoints if m.entries < c.entries and by_seq.get(m.entries) == m.last_hash]
            since = f", after entry #{max(matching)} (the last checkpoint that still matches)" if matching else ""
            return _fail("rehashed", f"the chain was rewritten and re-hashed: entry #{c.entries} no longer has the "
                         f"hash {c.label} signed; the rewrite is at or before entry #{c.entries}{since}", entries,
                         latest, first_bad_seq=c.entries)
    return None


def _result(ev: _Evidence, chain: trail.Verification, latest: Checkpoint | None) -> AnchoredVerification:
    notes = ev.notes
    if not chain.ok:
        suffix = "" if latest is not None else "; and no checkpoint anchors the trail"
        return AnchoredVerification(False, latest is not None, chain.entries, chain.message + suffix, "chain",
                                    chain.first_bad_seq, chain.last_hash, latest, notes)
    if latest is None:
        return AnchoredVerification(True, False, chain.entries, f"{NOT_ANCHORED} ({chain.entries} entries, last "
                                    f"hash {chain.last_hash[:16]}…); run `vigil audit checkpoint` to anchor it",
                                    None, None, chain.last_hash, None, notes)
    newer = chain.entries - latest.entries
    tail = f"; {newer} newer entr{'y is' if newer == 1 else 'ies are'} not anchored yet" if newer else ""
    return AnchoredVerification(True, True, chain.entries, f"{chain.entries} entries, verified against "
                                f"{latest.label}{tail}", None, None, chain.last_hash, latest, notes)


def verify(store_or_ctx: Any, expected_head: tuple[int, str] | None = None) -> AnchoredVerification:
    """Check the chain, then hold it against its checkpoints (give the Context, so the data folder and the
    MLflow experiments are known). ``expected_head`` is an ``N:HASH`` anchor kept elsewhere, checked too."""
    ev = _gather(store_or_ctx)
    failed = _checkpoint_problems(ev)
    if failed is not None:
        return failed
    good = ev.authentic
    latest = max(good, key=lambda c: (c.entries, c.at)) if good else None
    failed = _against(ev.entries, good, latest) if latest is not None else None
    failed = failed or _missing_checkpoints(ev, latest)
    if failed is not None:
        return failed
    return _result(ev, trail.check_chain(ev.entries, ev.stored_head, expected_head), latest)


def status(ctx: Any) -> AnchoredVerification:
    """What the Compliance page and the exported report show: :func:`verify` of the Context's store; use
    ``.headline`` ("verified against the checkpoint of <time>", or the failure) and ``.message``."""
    return verify(ctx)


# -------------------------------------------------------------------------------------------- anchoring

@dataclass(frozen=True)
class Anchored:
    """A checkpoint written on request, and where its copies went."""

    checkpoint: Checkpoint
    file: str
    tagged: tuple[str, ...]
    problems: tuple[str, ...]


#: Failures a restart may move past: the old checkpoints are lost or unusable, the chain itself is not
#: shown to be rewritten (a cut or a re-hash against an authentic checkpoint is never signed over).
RESTARTABLE: frozenset[str] = frozenset({"missing_checkpoints", "forged", "no_key"})


def checkpoint(ctx: Any, *, restart: str | None = None, actor: Principal | str = "vigil") -> Anchored:
    """Sign the current head now (file, and every configured model's MLflow experiment that exists).

    Refuses when the trail fails :func:`verify`: a checkpoint vouches for the chain, so signing a broken
    one would launder it. ``restart`` (a reason) is the way out when the old checkpoints are lost or
    unusable for good (file deleted, key changed): the old file is renamed aside, an ``audit.reanchor``
    entry records the reason and what verification said, and the chain is anchored as it is now, so the
    break itself stays on the trail."""
    config = cps.config_for(ctx)
    if config is None:
        raise VigilError("the settings of this store are unknown; run `vigil audit checkpoint` with the "
                         "configuration of the store (VIGIL_CONFIG or --config)")
    result = verify(ctx)
    if not result.ok and not (restart and result.problem in RESTARTABLE):
        hint = "; if the old checkpoints are lost for good, add --restart REASON" if (
            result.problem in RESTARTABLE and not restart) else ""
        raise VigilError(f"not signing a checkpoint: {result.message}{hint}")
    if restart:
        chain = trail.verify(ctx)
        if not chain.ok:
            raise VigilError(f"not signing a checkpoint: {chain.message}")
        retired = cps.retire(config.checkpoint_file)
        trail.record(ctx, actor, "audit.reanchor", "audit",
                     {"reason": restart, "problem": result.problem, "before": result.message,
                      "retired_file": str(retired) if retired else None})
    count, last = trail.head(ctx)
    written = cps.write_checkpoint(getattr(ctx, "store", ctx), config, config.signing_key(), count, last,
                        f"restart: {restart}" if restart else "manual",
                        previous=None if restart else result.checkpoint, restart=bool(restart))
    tagged, problems = cps.tag_experiments(config, written, config.models)
    return Anchored(written, str(config.checkpoint_file), tuple(tagged), tuple(problems))
