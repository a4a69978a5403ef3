"""Signed checkpoints of the audit chain's head, kept outside the log store.

Why: the hash chain proves that the entries agree with each other, not that they are all there. Whoever
can write the DuckDB file can cut the tail or rewrite and re-hash the whole chain, and the stored head
follows. A checkpoint (entry count, hashes of entry #1 and of the last entry, time) signed with
HMAC-SHA256 under a key that is not in the store, and written outside it (a JSON-lines file in the data
folder and a tag on the model's MLflow experiment), is what such a rewrite cannot reproduce.

The key: ``VIGIL_AUDIT_KEY``, else ``VIGIL_AUDIT_KEY`` (or ``key`` under ``[audit]``) in
``.streamlit/secrets.toml``, else the key file (setting ``audit_key_file``, default
``<data_dir>/audit.key``, created with mode 0600 when the first checkpoint is written).

When (see :func:`due`): with the first entry; right after an entry whose action changes who serves or
who may act (:data:`CRITICAL_ACTIONS`, which also tag the model's MLflow experiment); once
:data:`EVERY_ENTRIES` entries or :data:`EVERY_MINUTES` minutes have passed since the last checkpoint (at
the next entry); and on ``vigil audit checkpoint`` (which tags every configured model's experiment).
Entries after the newest checkpoint are anchored only by the next one.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import logging
import os
import secrets
import tempfile
import tomllib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb

from connectors.errors import ConnectorError
from connectors.logstore import LogStore
from dashboard.errors import VigilError
from dashboard.settings import ConfigError, Settings, load_settings

if TYPE_CHECKING:
    from connectors.registry import Registry

log = logging.getLogger(__name__)

KEY_ENV = "VIGIL_AUDIT_KEY"
CHECKPOINT_FILE = "audit-checkpoints.jsonl"
DEFAULT_KEY_FILE = "audit.key"
MLFLOW_TAG = "vigil.audit.checkpoint"
FORMAT = 1
#: Actions after which the head is anchored at once: they change who serves, what gates, or who may act.
CRITICAL_ACTIONS: frozenset[str] = frozenset({
    "model.promote", "model.rollback", "policy.override", "policy.change",
    "users.add", "users.remove", "users.set_role"})
#: Actions whose caller writes the checkpoint itself (a restart after a lost checkpoint file).
SELF_ANCHORED: frozenset[str] = frozenset({"audit.reanchor"})
EVERY_ENTRIES = 20
EVERY_MINUTES = 15.0
_TAIL_BYTES = 8192

_STATE_DDL = """
CREATE TABLE IF NOT EXISTS audit_anchor (
    id INTEGER PRIMARY KEY, checkpoints BIGINT NOT NULL, last_entries BIGINT NOT NULL,
    last_at TIMESTAMP NOT NULL, file VARCHAR NOT NULL)
"""


class AuditKeyError(VigilError):
    """The audit key cannot be read or created; the message names where it is looked for."""


# ------------------------------------------------------------------------------------------------ key

@dataclass(frozen=True)
class AuditKey:
    """The signing key and where it came from (``source`` is shown to users, ``secret`` never)."""

    secret: bytes = field(repr=False)
    source: str


def secrets_files() -> tuple[Path, ...]:
    """Where Streamlit reads secrets from, project first (it wins over the user's global file)."""
    return (Path.cwd() / ".streamlit" / "secrets.toml", Path.home() / ".streamlit" / "secrets.toml")


def _secrets_key(files: Iterable[Path]) -> AuditKey | None:
    """``VIGIL_AUDIT_KEY`` at the top level or ``key`` under ``[audit]`` of the first secrets file having one.
    Parsed here (not through ``st.secrets``) because the CLI and background jobs need the same key."""
    for path in files:
        if not path.is_file():
            continue
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise AuditKeyError(f"{path} cannot be read as TOML ({type(exc).__name__}); fix the file, or set "
                                f"{KEY_ENV}") from None
        section = data.get("audit")
        value = data.get(KEY_ENV) or (section.get("key") if isinstance(section, Mapping) else None)
        if value:
            return AuditKey(str(value).encode("utf-8"), str(path))
    return None


def _read_key_file(path: Path) -> AuditKey:
    try:
        text = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise AuditKeyError(f"the audit key file {path} cannot be read ({exc.strerror}); make it readable by "
                            f"the user running Vigil, or set {KEY_ENV}") from None
    if not text:
        raise AuditKeyError(f"the audit key file {path} is empty; restore it from a backup (checkpoints signed "
                            "with the old key verify only with it), or delete it to start a new key")
    if os.name == "posix" and path.stat().st_mode & 0o077:
        log.warning("the audit key file %s is readable by other users; run chmod 600 %s", path, path)
    return AuditKey(text.encode("utf-8"), str(path))


def _create_key_file(path: Path) -> None:
    """A random key written 0600 and linked into place atomically, so two processes agree on one key."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".audit-key-", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(secrets.token_hex(32) + "\n")
        os.chmod(tmp, 0o600)
        with contextlib.suppress(FileExistsError):  # another process created it first: use theirs
            os.link(tmp, path)
    finally:
        os.unlink(tmp)


def load_key(key_file: Path | None, *, create: bool, environ: Mapping[str, str] | None = None,
             secret_files: Iterable[Path] | None = None) -> AuditKey | None:
    """The key by precedence (environment, secrets, key file); ``create`` makes the key file when none
    exists. Verification passes ``create=False``: a fresh key would call every checkpoint forged."""
    env = os.environ if environ is None else environ
    if env.get(KEY_ENV):
        return AuditKey(env[KEY_ENV].encode("utf-8"), KEY_ENV)
    found = _secrets_key(secrets_files() if secret_files is None else secret_files)
    if found is not None:
        return found
    if key_file is None:
        return None
    if not key_file.is_file():
        if not create:
            return None
        try:
            _create_key_file(key_file)
        except OSError as exc:
            raise AuditKeyError(f"cannot create the audit key file {key_file} ({exc.strerror}); set "
                                f"{KEY_ENV}, or point audit_key_file (VIGIL_AUDIT_KEY_FILE) at a writable "
                                "place") from None
    return _read_key_file(key_file)


# ----------------------------------------------------------------------------------------- checkpoint

@dataclass(frozen=True)
class Checkpoint:
    """A signed statement: at ``at`` the chain had ``entries`` entries, starting and ending with these hashes."""

    entries: int
    first_hash: str
    last_hash: str
    at: datetime
    reason: str
    signature: str = ""

    def payload(self) -> str:
        """Canonical JSON of everything signed (all but the signature)."""
        return json.dumps({"v": FORMAT, "entries": int(self.entries), "first_hash": self.first_hash,
                           "last_hash": self.last_hash, "at": _at_text(self.at), "reason": self.reason},
                          sort_keys=True, separators=(",", ":"), ensure_ascii=False)

    def to_json(self) -> str:
        return json.dumps({**json.loads(self.payload()), "sig": self.signature}, sort_keys=True,
                          separators=(",", ":"), ensure_ascii=False)

    @property
    def when(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M:%S} UTC"

    @property
    def label(self) -> str:
        return f"the checkpoint of {self.when} (entry #{self.entries})"


def _at_text(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _mac(key: AuditKey, payload: str) -> str:
    return hmac.new(key.secret, payload.encode("utf-8"), hashlib.sha256).hexdigest()


def sign(key: AuditKey, checkpoint: Checkpoint) -> Checkpoint:
    return replace(checkpoint, signature=_mac(key, checkpoint.payload()))


def is_authentic(key: AuditKey, checkpoint: Checkpoint) -> bool:
    """Constant-time check that ``key`` signed exactly this checkpoint."""
    return hmac.compare_digest(_mac(key, checkpoint.payload()), checkpoint.signature)


def parse(text: str) -> Checkpoint:
    """A checkpoint from its JSON; ``ValueError`` naming what is wrong with it."""
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not JSON ({exc.msg})") from None
    if not isinstance(raw, dict) or raw.get("v") != FORMAT:
        raise ValueError(f"not a version-{FORMAT} checkpoint")
    try:
        entries = raw["entries"]
        if not isinstance(entries, int) or isinstance(entries, bool) or entries < 0:
            raise ValueError("'entries' is not a count")
        at = datetime.fromisoformat(str(raw["at"]).replace("Z", "+00:00"))
        if at.tzinfo is None:
            raise ValueError("'at' has no time zone")
        return Checkpoint(entries, str(raw["first_hash"]), str(raw["last_hash"]), at.astimezone(UTC),
                          str(raw["reason"]), str(raw["sig"]))
    except KeyError as exc:
        raise ValueError(f"field {exc} is missing") from None


# ------------------------------------------------------------------------------ where checkpoints live

@dataclass(frozen=True)
class Found:
    """One checkpoint as read from a file line or an MLflow tag; ``problem`` is None when it is authentic."""

    where: str
    checkpoint: Checkpoint | None
    problem: str | None = None


def append_line(path: Path, checkpoint: Checkpoint) -> None:
    """One JSON line, appended and flushed to disk: the file only ever grows."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (checkpoint.to_json() + "\n").encode("utf-8"))
        os.fsync(fd)
    finally:
        os.close(fd)


def judge(where: str, text: str, key: AuditKey | None) -> Found:
    """Parse one stored checkpoint and check its signature (when a key is at hand)."""
    try:
        checkpoint = parse(text)
    except ValueError as exc:
        return Found(where, None, f"is not a checkpoint ({exc})")
    if key is not None and not is_authentic(key, checkpoint):
        return Found(where, checkpoint, "has a bad signature")
    return Found(where, checkpoint)


def read_file(path: Path, key: AuditKey | None) -> list[Found]:
    """Every line of the checkpoint file, judged; empty when the file does not exist."""
    if not path.is_file():
        return []
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    return [judge(f"line {i} of {path}", line, key) for i, line in enumerate(lines, 1) if line.strip()]


def last_in_file(path: Path, key: AuditKey | None) -> Checkpoint | None:
    """The newest authentic checkpoint among the file's last lines (reads only its tail: called per entry)."""
    try:
        with path.open("rb") as fh:
            fh.seek(max(0, fh.seek(0, os.SEEK_END) - _TAIL_BYTES))
            tail = fh.read().decode("utf-8", errors="replace").splitlines()
    except FileNotFoundError:
        return None
    found = [judge(str(path), line, key) for line in tail[-20:] if line.strip()]
    good = [f.checkpoint for f in found if f.problem is None and f.checkpoint is not None]
    return max(good, key=lambda c: (c.entries, c.at)) if good else None


# --------------------------------------------------------------------- the configuration of one store

@dataclass(frozen=True)
class AnchorConfig:
    """Where the checkpoints of one store go, and the key file that signs them."""

    checkpoint_file: Path
    key_file: Path
    models: tuple[str, ...]
    mlflow_uri: str
    registry: Callable[[], Registry] = field(compare=False, repr=False)

    def key(self) -> AuditKey | None:
        """The key to check checkpoints with; None when there is none (nothing was ever signed here)."""
        return load_key(self.key_file, create=False)

    def signing_key(self) -> AuditKey:
        """The key to sign with, creating the key file on first use."""
        key = load_key(self.key_file, create=True)
        if key is None:  # load_key creates the file or raises
            raise AuditKeyError(f"no audit key: set {KEY_ENV} or make {self.key_file} writable")
        return key


_BOUND: dict[Path, AnchorConfig] = {}
_ENV_SETTINGS: dict[tuple[Any, ...], Settings | None] = {}


def _registry_factory(settings: Settings, ctx: Any = None) -> Callable[[], Registry]:
    cache: list[Registry] = []

    def get() -> Registry:
        if ctx is not None:
            registry: Registry = ctx.registry
            return registry
        if not cache:
            from connectors.registry import Registry

            cache.append(Registry(settings.mlflow_tracking_uri, timeout_s=settings.mlflow_timeout_s))
        return cache[0]

    return get


def bind(ctx_or_settings: Any) -> AnchorConfig:
    """Remember the anchor configuration of a Context's (or Settings') store for this process, so
    :func:`after_append`, which sees only the store, knows where its checkpoints go."""
    settings: Settings = getattr(ctx_or_settings, "settings", ctx_or_settings)
    ctx = ctx_or_settings if ctx_or_settings is not settings else None
    config = AnchorConfig(
        checkpoint_file=settings.data_dir / CHECKPOINT_FILE,
        key_file=settings.audit_key_file or settings.data_dir / DEFAULT_KEY_FILE,
        models=tuple(settings.models), mlflow_uri=settings.mlflow_tracking_uri,
        registry=_registry_factory(settings, ctx))
    _BOUND[Path(settings.duckdb_path).resolve()] = config
    return config


def _environment_settings() -> Settings | None:
    """The settings this process would load (as the app and ``VIGIL_CONFIG`` runs do), cached per
    environment; None when they do not load."""
    cache_key = (os.getcwd(), tuple(sorted((k, v) for k, v in os.environ.items() if k.startswith("VIGIL_"))))
    if cache_key not in _ENV_SETTINGS:
        try:
            _ENV_SETTINGS[cache_key] = load_settings()
        except (ConfigError, OSError):
            _ENV_SETTINGS[cache_key] = None
    return _ENV_SETTINGS[cache_key]


def config_for(store_or_ctx: Any) -> AnchorConfig | None:
    """The anchor configuration of a store: from the Context when given one, else as bound for its file,
    else from the process's own settings when they name the same file; None when unknown."""
    if isinstance(getattr(store_or_ctx, "settings", None), Settings):
        return bind(store_or_ctx)
    path = Path(getattr(getattr(store_or_ctx, "store", store_or_ctx), "path", "")).resolve()
    if path in _BOUND:
        return _BOUND[path]
    settings = _environment_settings()
    if settings is not None and Path(settings.duckdb_path).resolve() == path:
        return bind(settings)
    return None


# ------------------------------------------------------------------------------------- store-side state

@dataclass(frozen=True)
class State:
    """What the store remembers of the checkpoints written for it: a hint that they exist, so a deleted
    checkpoint file is noticed (it is inside the store, so it is a hint, not an anchor)."""

    checkpoints: int
    last_entries: int
    last_at: datetime
    file: str


def ensure_state_table(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(_STATE_DDL)


def read_state(con: duckdb.DuckDBPyConnection) -> State | None:
    ensure_state_table(con)
    row = con.execute("SELECT checkpoints, last_entries, last_at, file FROM audit_anchor WHERE id = 1").fetchone()
    return State(int(row[0]), int(row[1]), row[2], str(row[3])) if row else None


def _remember(con: duckdb.DuckDBPyConnection, checkpoint: Checkpoint, path: Path, restart: bool) -> None:
    ensure_state_table(con)
    if restart:  # the old checkpoints were set aside: count from this one
        con.execute("DELETE FROM audit_anchor WHERE id = 1")
    con.execute("INSERT INTO audit_anchor VALUES (1, 1, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET "
                "checkpoints = audit_anchor.checkpoints + 1, "
                "last_entries = greatest(audit_anchor.last_entries, excluded.last_entries), "
                "last_at = CASE WHEN excluded.last_entries >= audit_anchor.last_entries "
                "THEN excluded.last_at ELSE audit_anchor.last_at END, file = excluded.file",
                [checkpoint.entries, checkpoint.at.replace(tzinfo=None), str(path)])


def _hash_at(con: duckdb.DuckDBPyConnection, seq: int) -> str | None:
    row = con.execute("SELECT hash FROM audit_log WHERE seq = ? ORDER BY hash LIMIT 1", [int(seq)]).fetchone()
    return str(row[0]) if row else None


# -------------------------------------------------------------------------------------------- writing

def due(previous: Checkpoint | None, seq: int, action: str, now: datetime) -> str | None:
    """Why entry ``seq`` should be anchored now, or None: the scheme in the module docstring."""
    if previous is None:
        return "first checkpoint"
    if previous.entries >= seq:
        return None
    if action in CRITICAL_ACTIONS:
        return f"after {action}"
    if seq - previous.entries >= EVERY_ENTRIES:
        return f"{EVERY_ENTRIES} entries since the last checkpoint"
    if now - previous.at >= timedelta(minutes=EVERY_MINUTES):
        return f"{EVERY_MINUTES:g} minutes since the last checkpoint"
    return None


def _continues(con: duckdb.DuckDBPyConnection, previous: Checkpoint | None, seq: int, path: Path,
               restart: bool) -> str | None:
    """Why the chain does not continue the previous checkpoint (then nothing is signed), or None."""
    if previous is None:
        state = read_state(con)
        if state is not None and state.checkpoints and not restart:
            return (f"{state.checkpoints} checkpoint(s) were written for this store (the last of entry "
                    f"#{state.last_entries}) but {path} holds no valid one")
        return None
    if previous.entries == 0:
        return None
    if previous.entries > seq:
        return f"the trail has {seq} entries but {previous.label} records {previous.entries}"
    if _hash_at(con, 1) != previous.first_hash or _hash_at(con, previous.entries) != previous.last_hash:
        return f"the trail no longer matches {previous.label}"
    return None


def write_checkpoint(store: LogStore, config: AnchorConfig, key: AuditKey, entries: int, last_hash: str, reason: str,
          *, previous: Checkpoint | None, restart: bool = False) -> Checkpoint:
    """Sign the head (``entries``, ``last_hash``), append it to the checkpoint file and note it in the store.

    Refuses (:class:`VigilError`) when the chain does not continue ``previous`` (the newest authentic
    checkpoint), or when there is none although the store says checkpoints were written: signing then
    would launder a rewrite. ``restart`` accepts the latter (``vigil audit checkpoint --restart``)."""
    with store.connect() as con:
        problem = _continues(con, previous, entries, config.checkpoint_file, restart)
        if problem:
            raise VigilError(f"not signing a checkpoint: {problem}; run `vigil audit verify` to see what changed")
        first = (_hash_at(con, 1) or last_hash) if entries else last_hash
        checkpoint = sign(key, Checkpoint(entries, first, last_hash, datetime.now(UTC), reason))
        append_line(config.checkpoint_file, checkpoint)
        _remember(con, checkpoint, config.checkpoint_file, restart)
    return checkpoint


def retire(path: Path) -> Path | None:
    """Set a checkpoint file aside (renamed, never deleted) before a restart; None when there is none."""
    if not path.is_file():
        return None
    target = path.with_name(f"{path.name}.retired-{datetime.now(UTC):%Y%m%dT%H%M%S}")
    path.rename(target)
    return target


def tag_experiments(config: AnchorConfig, checkpoint: Checkpoint, models: Iterable[str]) -> tuple[list[str], list[str]]:
    """Copy the checkpoint onto each model's MLflow experiment (named after the model) where one exists.
    Returns (tagged models, problems); MLflow being out of reach is a problem, never an exception."""
    tagged: list[str] = []
    problems: list[str] = []
    if not _mlflow_store_exists(config.mlflow_uri):
        return tagged, problems
    for model in models:
        try:
            if config.registry().set_experiment_tag(model, MLFLOW_TAG, checkpoint.to_json()):
                tagged.append(model)
        except ConnectorError as exc:
            problems.append(f"MLflow experiment '{model}' not tagged: {exc}")
    return tagged, problems


def read_tags(config: AnchorConfig, key: AuditKey | None) -> tuple[list[Found], list[str]]:
    """The checkpoint tag of each configured model's experiment, judged; plus why some could not be read."""
    found: list[Found] = []
    notes: list[str] = []
    if not config.models or not _mlflow_store_exists(config.mlflow_uri):
        return found, notes
    for model in config.models:
        try:
            tags = config.registry().experiment_tags(model)
        except ConnectorError as exc:
            notes.append(f"the MLflow copy of the checkpoints was not checked ({exc})")
            break
        if tags and MLFLOW_TAG in tags:
            found.append(judge(f"tag {MLFLOW_TAG} of MLflow experiment '{model}'", tags[MLFLOW_TAG], key))
    return found, notes


def _mlflow_store_exists(uri: str) -> bool:
    """False for a sqlite store whose file is absent: opening it would create an MLflow database."""
    if uri.startswith("sqlite:///"):
        return Path(uri.removeprefix("sqlite:///")).is_file()
    return True


def after_append(store_or_ctx: Any, seq: int, digest: str, action: str, target: str) -> Checkpoint | None:
    """Called by :func:`trail.record` after each committed entry: write a checkpoint when :func:`due`.

    Never raises: the entry is already committed, so a failure to anchor it is logged (naming the fix)
    and shows up in ``vigil audit verify`` as entries not yet anchored."""
    try:
        return _anchor_entry(store_or_ctx, seq, digest, action, target)
    except Exception as exc:  # anchoring must not undo or fail an action that was recorded
        log.error("audit checkpoint not written for entry #%d: %s", seq, exc)
        return None


def _anchor_entry(store_or_ctx: Any, seq: int, digest: str, action: str, target: str) -> Checkpoint | None:
    config = config_for(store_or_ctx)
    if config is None or action in SELF_ANCHORED:
        return None
    key = config.signing_key()
    previous = last_in_file(config.checkpoint_file, key)
    reason = due(previous, seq, action, datetime.now(UTC))
    if reason is None:
        return None
    store: LogStore = getattr(store_or_ctx, "store", store_or_ctx)
    checkpoint = write_checkpoint(store, config, key, seq, digest, reason, previous=previous)
    if action in CRITICAL_ACTIONS and target in config.models:
        for problem in tag_experiments(config, checkpoint, [target])[1]:
            log.warning("%s; `vigil audit checkpoint` copies it again", problem)
    return checkpoint
