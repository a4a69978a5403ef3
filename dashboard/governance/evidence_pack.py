"""Evidence packs: one zip an auditor keeps, holding a version's compliance record and the means to check it.

Contents: the compliance report (HTML and PDF, from :mod:`dashboard.governance.reports`), the control
status of every configured pack, the model card, the gate evidence, the policy verdicts used and the
verdict history (CSV and JSON), the audit entries about the model, and ``audit_chain.jsonl`` (every
entry of the trail up to the export, so the chain can be recomputed from entry #1) with
``audit_verification.json`` (the head, the store's verification, and the newest signed checkpoint).
``manifest.json`` lists each file's SHA-256 and size; the pack digest (SHA-256 of the manifest) is
written to the audit trail as ``evidence.export``.

:func:`verify_pack` checks a pack offline: every digest, no file added or missing, every hash and link
of the chain, the checkpoint against the chain, the excerpt against the chain, and the checkpoint's
signature when the audit key is at hand. The zip is untrusted input: members are read in memory with
size caps (never extracted), and unsafe names, links, duplicates and zip bombs are refused.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import zipfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dashboard import progress
from dashboard.access.roles import Actor, require
from dashboard.audit import anchor, checkpoints
from dashboard.audit import trail as audit
from dashboard.audit.checkpoints import AuditKey, Checkpoint
from dashboard.audit.trail import GENESIS, Entry
from dashboard.context import Context
from dashboard.errors import VigilError

FORMAT = 1
MANIFEST = "manifest.json"
CHAIN = "audit_chain.jsonl"
EXCERPT = "audit_excerpt.jsonl"
VERIFICATION = "audit_verification.json"
MAX_MEMBERS = 64
MAX_MEMBER_BYTES = 512 * 1024 * 1024
MAX_TOTAL_BYTES = 2 * 1024 * 1024 * 1024
MAX_RATIO = 500  # uncompressed / compressed: beyond this a member is treated as a zip bomb
UNAUTHENTICATED = "unauthenticated local reader (CLI)"


# ------------------------------------------------------------------------------------------- building

def _entry_json(e: Entry) -> dict[str, Any]:
    return {"seq": e.seq, "ts": e.ts.replace(tzinfo=None).isoformat(timespec="microseconds"), "actor": e.actor,
            "role": e.role, "action": e.action, "target": e.target, "details": e.details,
            "prev_hash": e.prev_hash, "hash": e.hash}


def _jsonl(rows: list[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(r, sort_keys=True, ensure_ascii=False) + "\n" for r in rows).encode("utf-8")


@progress.step("building the evidence pack")
def build_pack(ctx: Context, actor: Actor | None, model: str, version: str | None = None,
               window: str | None = None, include_pdf: bool = True) -> tuple[bytes, str]:
    """The pack's bytes and its digest (``evidence.export``; the export is audited with the digest).
    ``actor`` None: a read-only CLI run without credentials, recorded as an unauthenticated reader."""
    from dashboard.governance import cards, controls, reports
    from dashboard.governance.policy import evaluation_history
    from dashboard.lifecycle import gate

    if actor is not None:
        require(actor, "evidence.export")
    v = controls.resolve_version(ctx, model, version)
    files: dict[str, bytes] = {}
    absent: dict[str, str] = {}
    statuses = controls.all_packs_status(ctx, model, v)
    ev = statuses[0].evaluation if statuses else None
    if ev is None:  # no pack configured: the report's evaluation is still the pack's evidence
        from dashboard.governance.policy import evaluate

        ev = evaluate(ctx, model, version=v, window=window)
    html = reports.build_report(ctx, actor, model, v, window, ev)
    files["report.html"] = html.encode("utf-8")
    if include_pdf:
        from dashboard.governance.report_pdf import html_to_pdf

        files["report.pdf"] = html_to_pdf(html)
    else:
        absent["report.pdf"] = "left out on request (--no-pdf)"
    files["controls.json"] = to_json([s.as_dict() for s in statuses])
    card = cards.load_card(ctx, model, v)
    files["model_card.json"] = to_json(card.to_json())
    files["model_card.md"] = cards.to_markdown(card).encode("utf-8")
    evidence = gate.load_evidence(ctx, model, v)
    if evidence is None:
        absent["gate_evidence.json"] = f"version {v} has not been through the candidate gate"
    else:
        files["gate_evidence.json"] = to_json(evidence)
    files["policy_evaluation.json"] = to_json(ev.to_dict())
    history = evaluation_history(ctx, model, v)
    files["policy_history.csv"] = history.to_csv(index=False).encode("utf-8")
    files["policy_history.json"] = to_json(history.to_dict(orient="records"))
    _anchor_head(ctx)
    chain_entries, stored_head = audit.read_chain(ctx)
    verification = anchor.verify(ctx)
    cp = verification.checkpoint
    files[EXCERPT] = _jsonl([_entry_json(e) for e in chain_entries if e.target == model])
    files[CHAIN] = _jsonl([_entry_json(e) for e in chain_entries])
    files[VERIFICATION] = to_json({"head": {"entries": stored_head[0], "last_hash": stored_head[1]}
                                   if stored_head else None, "verification": verification.as_dict(),
                                   "checkpoint": json.loads(cp.to_json()) if cp is not None else None})
    by = f"{actor.name} ({actor.role})" if actor is not None else UNAUTHENTICATED
    manifest = {"format": FORMAT, "model": model, "version": v, "created_at": datetime.now(UTC).isoformat(),
                "created_by": by, "files": {name: {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
                                            for name, data in sorted(files.items())},
                "absent": absent, "audit_entries": len(chain_entries)}
    files[MANIFEST] = to_json(manifest)
    digest = hashlib.sha256(files[MANIFEST]).hexdigest()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    audit.record(ctx.store, actor if actor is not None else UNAUTHENTICATED, "evidence.export", model,
                 {"version": v, "pack_digest": digest, "files": sorted(files), "audit_entries": len(chain_entries),
                  "controls": {s.pack.id: s.counts() for s in statuses}})
    return buffer.getvalue(), digest


def _anchor_head(ctx: Context) -> None:
    """Sign a checkpoint of the head before the chain is copied, so the pack's checkpoint covers every entry
    in it. Refused (and left to the verification file to say) when the trail does not verify."""
    status = anchor.verify(ctx)
    if status.ok and (status.checkpoint is None or status.checkpoint.entries < status.entries):
        with contextlib.suppress(VigilError):
            anchor.checkpoint(ctx)


def to_json(obj: Any) -> bytes:
    return (json.dumps(_plain(obj), indent=2, sort_keys=True, ensure_ascii=False, default=str) + "\n").encode("utf-8")


def _plain(obj: Any) -> Any:
    """JSON-safe: NaN and infinities become null, times ISO text (pandas rows carry both)."""
    import math

    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_plain(v) for v in obj]
    if isinstance(obj, datetime):
        return obj.isoformat()
    if hasattr(obj, "item") and callable(obj.item):
        return _plain(obj.item())
    return obj


# ------------------------------------------------------------------------------------------ verifying

@dataclass
class PackVerification:
    """What :func:`verify_pack` found: ``ok`` only when ``problems`` is empty."""

    digest: str | None = None
    problems: list[str] = field(default_factory=list)
    checked: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    manifest: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems and self.digest is not None

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "pack_digest": self.digest, "problems": self.problems, "checked": self.checked,
                "notes": self.notes, "model": self.manifest.get("model"), "version": self.manifest.get("version")}


def _unsafe_name(name: str) -> str | None:
    if not name or name.startswith(("/", "\\")) or "\\" in name or ":" in name:
        return "an absolute or drive path"
    if any(part in ("", ".", "..") for part in name.split("/")):
        return "a path that climbs out of the pack (or an empty part)"
    if "/" in name:
        return "a folder (a pack holds files at its top level only)"
    return None


def _members(zf: zipfile.ZipFile, result: PackVerification) -> dict[str, zipfile.ZipInfo]:
    infos = zf.infolist()
    if len(infos) > MAX_MEMBERS:
        result.problems.append(f"the zip holds {len(infos)} members, more than a pack ever does ({MAX_MEMBERS})")
        return {}
    members: dict[str, zipfile.ZipInfo] = {}
    total = 0
    for info in infos:
        name = info.filename
        why = _unsafe_name(name)
        mode = (info.external_attr >> 16) & 0o170000
        if why:
            result.problems.append(f"member {name!r} is {why}: refused")
        elif mode == 0o120000:
            result.problems.append(f"member {name!r} is a symbolic link: refused")
        elif info.flag_bits & 0x1:
            result.problems.append(f"member {name!r} is encrypted: refused")
        elif name in members:
            result.problems.append(f"member {name!r} appears twice (a second copy could shadow the first)")
        elif info.file_size > MAX_MEMBER_BYTES:
            result.problems.append(f"member {name!r} declares {info.file_size:,} bytes, over the "
                                   f"{MAX_MEMBER_BYTES:,}-byte limit")
        elif info.compress_size and info.file_size / info.compress_size > MAX_RATIO:
            result.problems.append(f"member {name!r} expands {info.file_size / info.compress_size:.0f}-fold: "
                                   "refused as a zip bomb")
        else:
            total += info.file_size
            members[name] = info
    if total > MAX_TOTAL_BYTES:
        result.problems.append(f"the members declare {total:,} bytes in all, over the {MAX_TOTAL_BYTES:,} limit")
        return {}
    return members


def _read(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> bytes:
    """A member's bytes, never more than it declared (the header may lie) nor the cap."""
    limit = min(info.file_size, MAX_MEMBER_BYTES)
    with zf.open(info) as fh:
        data = fh.read(limit + 1)
    if len(data) > limit:
        raise VigilError(f"member {info.filename!r} holds more than the {limit:,} bytes it declares")
    return data


def verify_pack(source: Path | bytes, key: AuditKey | None = None) -> PackVerification:
    """Check a pack offline (see the module docstring); never raises on a bad pack, lists its problems."""
    result = PackVerification()
    try:
        zf = zipfile.ZipFile(io.BytesIO(source) if isinstance(source, bytes) else source)
    except (zipfile.BadZipFile, OSError) as exc:
        result.problems.append(f"not a readable zip file ({exc})")
        return result
    with zf:
        members = _members(zf, result)
        if result.problems:
            return result
        contents = _contents(zf, members, result)
    if contents is None:
        return result
    _check_audit(contents, key, result)
    return result


def _contents(zf: zipfile.ZipFile, members: dict[str, zipfile.ZipInfo],
              result: PackVerification) -> dict[str, bytes] | None:
    if MANIFEST not in members:
        result.problems.append(f"{MANIFEST} is missing: this is not an evidence pack (or it was removed)")
        return None
    try:
        raw_manifest = _read(zf, members[MANIFEST])
        manifest = json.loads(raw_manifest)
        listed: dict[str, Any] = manifest["files"]
        if manifest.get("format") != FORMAT or not isinstance(listed, dict):
            raise ValueError(f"not a format-{FORMAT} manifest")
    except (ValueError, KeyError, TypeError, VigilError) as exc:
        result.problems.append(f"{MANIFEST} cannot be read ({exc})")
        return None
    result.digest = hashlib.sha256(raw_manifest).hexdigest()
    result.manifest = manifest
    contents: dict[str, bytes] = {}
    for name in sorted(set(members) - {MANIFEST} - set(listed)):
        result.problems.append(f"{name} was added: the manifest does not list it")
    for name in sorted(set(listed) - set(members)):
        result.problems.append(f"{name} was removed: the manifest lists it")
    for name in sorted(set(listed) & set(members)):
        try:
            data = _read(zf, members[name])
        except (VigilError, zipfile.BadZipFile, OSError, EOFError) as exc:  # a corrupt member is a changed one
            result.problems.append(f"{name} cannot be read ({exc})")
            continue
        want = listed[name]
        if not isinstance(want, dict) or hashlib.sha256(data).hexdigest() != want.get("sha256") \
                or len(data) != want.get("bytes"):
            result.problems.append(f"{name} was changed: its SHA-256 does not match the manifest")
            continue
        contents[name] = data
    result.checked.append(f"{len(contents)} file(s) match their SHA-256 in the manifest")
    for name, why in sorted((manifest.get("absent") or {}).items()):
        result.notes.append(f"{name} is not in the pack: {why}")
    return contents


def _entries(data: bytes) -> list[Entry]:
    out = []
    for n, line in enumerate(data.decode("utf-8").splitlines(), 1):
        r = json.loads(line)
        try:
            out.append(Entry(int(r["seq"]), datetime.fromisoformat(r["ts"]), str(r["actor"]), str(r["role"]),
                             str(r["action"]), str(r["target"]), str(r["details"]), str(r["prev_hash"]),
                             str(r["hash"])))
        except (KeyError, ValueError, TypeError) as exc:
            raise ValueError(f"line {n}: {exc}") from None
    return out


def _check_audit(contents: dict[str, bytes], key: AuditKey | None, result: PackVerification) -> None:
    if CHAIN not in contents or VERIFICATION not in contents:
        if not result.problems:
            result.problems.append(f"{CHAIN} and {VERIFICATION} are required to check the audit excerpt")
        return
    try:
        chain = _entries(contents[CHAIN])
        excerpt = _entries(contents.get(EXCERPT, b""))
        info = json.loads(contents[VERIFICATION])
        head = info.get("head")
        stored = (int(head["entries"]), str(head["last_hash"])) if head else None
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
        result.problems.append(f"the audit files cannot be read ({exc})")
        return
    check = audit.check_chain(chain, stored)
    if not check.ok:
        result.problems.append(f"audit chain: {check.message}")
        return
    result.checked.append(f"audit chain: all {len(chain)} entries hash and link correctly from entry #1 "
                          f"(last hash {check.last_hash[:16]}…)")
    by_seq = {e.seq: e for e in chain}
    changed = [e.seq for e in excerpt if by_seq.get(e.seq) != e]
    if changed:
        result.problems.append(f"audit excerpt: entries {', '.join(f'#{s}' for s in changed[:10])} differ from "
                               "the chain")
    else:
        result.checked.append(f"audit excerpt: {len(excerpt)} entries about the model are those of the chain")
    _check_checkpoint(info.get("checkpoint"), chain, key, result)


def _check_checkpoint(raw: Any, chain: list[Entry], key: AuditKey | None, result: PackVerification) -> None:
    if raw is None:
        result.notes.append("no signed checkpoint in the pack: the chain is self-consistent but not anchored")
        return
    try:
        cp: Checkpoint = checkpoints.parse(json.dumps(raw))
    except ValueError as exc:
        result.problems.append(f"checkpoint: {exc}")
        return
    first = chain[0].hash if chain else GENESIS
    if cp.entries > len(chain) or (cp.entries and (cp.first_hash != first
                                                    or chain[cp.entries - 1].hash != cp.last_hash)):
        result.problems.append(f"checkpoint: {cp.label} does not match the chain in the pack")
        return
    result.checked.append(f"checkpoint: {cp.label} matches entries #1 and #{cp.entries} of the chain")
    if cp.entries < len(chain):
        result.notes.append(f"entries #{cp.entries + 1}-#{len(chain)} are newer than the checkpoint: the chain "
                            "links them, no signature covers them")
    if key is None:
        result.notes.append("the checkpoint's signature was not checked (no audit key: set VIGIL_AUDIT_KEY or "
                            "--key-file). Without it the pack proves its files are those the manifest lists and "
                            "that the chain is internally consistent, but not that it is the trail Vigil signed: "
                            "whoever rebuilt the chain could have rebuilt the checkpoint. Compare the pack digest "
                            "with the evidence.export entry of the audit trail, or check with the key.")
    elif checkpoints.is_authentic(key, cp):
        result.checked.append(f"checkpoint: signature authentic (key from {key.source}): entries #1-#{cp.entries} "
                              "are the trail as signed")
    else:
        result.problems.append(f"checkpoint: the signature of {cp.label} is not authentic for the key from "
                               f"{key.source} (forged, or another key)")
