"""Evidence packs exported from the demo workspace with `vigil evidence` (real report code and Chromium for
the PDF, real audit chain and checkpoint) and checked offline with `vigil evidence verify`: the pack as
exported passes; any file changed, added or removed fails; a rebuilt manifest no longer matches the
digest on the audit trail; a tampered chain or a forged checkpoint fails; unsafe zips are refused."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from pathlib import Path

import pytest

from dashboard.audit import trail as audit
from dashboard.audit.checkpoints import AuditKey, Checkpoint, load_key, parse, sign
from dashboard.cli import cli
from dashboard.commands.common import run_cli
from dashboard.context import Context
from dashboard.governance import evidence_pack as ep

MODEL = "credit-risk"


@pytest.fixture(scope="module")
def pack(demo_module_ctx: Context, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("evidence") / "pack.zip"
    assert run_cli(cli, ["evidence", "--model", MODEL, "-o", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def key(demo_module_ctx: Context) -> AuditKey:
    found = load_key(demo_module_ctx.settings.audit_key_file, create=False, environ={}, secret_files=())
    assert found is not None
    return found


def _members(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as zf:
        return {n: zf.read(n) for n in zf.namelist()}


def _zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def _remanifest(members: dict[str, bytes]) -> dict[str, bytes]:
    """What a forger does: recompute every digest so the manifest agrees with the changed files."""
    manifest = json.loads(members[ep.MANIFEST])
    manifest["files"] = {n: {"sha256": hashlib.sha256(d).hexdigest(), "bytes": len(d)}
                         for n, d in members.items() if n != ep.MANIFEST}
    return {**members, ep.MANIFEST: ep.to_json(manifest)}


def test_pack_holds_every_record_and_its_digest_is_on_the_audit_trail(pack: Path, demo_module_ctx: Context) -> None:
    members = _members(pack)
    assert {"report.html", "report.pdf", "controls.json", "model_card.json", "model_card.md",
            "policy_evaluation.json", "policy_history.csv", "policy_history.json", ep.EXCERPT, ep.CHAIN,
            ep.VERIFICATION, ep.MANIFEST} <= set(members)
    assert members["report.pdf"].startswith(b"%PDF-") and b"Compliance report" in members["report.html"]
    status = json.loads(members["controls.json"])
    assert {s["pack"] for s in status} == {"eu-ai-act", "nist-ai-rmf"}
    manifest = json.loads(members[ep.MANIFEST])
    assert manifest["absent"] == {"gate_evidence.json": "version 1 has not been through the candidate gate"}
    digest = hashlib.sha256(members[ep.MANIFEST]).hexdigest()
    exported = audit.entries(demo_module_ctx.store, action="evidence.export", limit=1).iloc[0]
    assert json.loads(exported["details"])["pack_digest"] == digest
    # The export signed a checkpoint first, so the pack's checkpoint covers every entry in it.
    checkpoint = json.loads(members[ep.VERIFICATION])["checkpoint"]
    assert checkpoint["entries"] == len(members[ep.CHAIN].splitlines())


def test_the_pack_as_exported_verifies(pack: Path, key: AuditKey, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(cli, ["evidence", "verify", str(pack)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("OK: evidence pack of credit-risk version 1 verifies")
    assert "signature was not checked" in out  # no key: it says what is left unproven
    result = ep.verify_pack(pack, key)
    assert result.ok and any("signature authentic" in c for c in result.checked), result.problems


@pytest.mark.parametrize("change", ["changed", "added", "removed"])
def test_any_file_changed_added_or_removed_fails(pack: Path, change: str, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    members = _members(pack)
    if change == "changed":
        members["controls.json"] = members["controls.json"].replace(b'"not met"', b'"met"', 1)
    elif change == "added":
        members["extra.txt"] = b"an extra file"
    else:
        del members["model_card.md"]
    bad = tmp_path / "bad.zip"
    bad.write_bytes(_zip(members))
    assert run_cli(cli, ["evidence", "verify", str(bad)]) == 1
    out = capsys.readouterr().out
    assert out.startswith("FAILED") and f"was {change}" in out


def test_a_rebuilt_manifest_is_caught_by_the_chain_or_the_digest(pack: Path, key: AuditKey) -> None:
    members = _members(pack)
    # A changed card with a recomputed manifest passes the digests, but its pack digest is not the one
    # the audit trail recorded at export.
    forged = _remanifest({**members, "model_card.md": b"# a different card\n"})
    result = ep.verify_pack(_zip(forged), key)
    assert result.ok and result.digest != hashlib.sha256(members[ep.MANIFEST]).hexdigest()
    # A changed audit entry breaks its hash, whatever the manifest says.
    lines = members[ep.CHAIN].decode().splitlines()
    entry = json.loads(lines[0])
    entry["actor"] = "someone else"
    lines[0] = json.dumps(entry, sort_keys=True)
    tampered = _remanifest({**members, ep.CHAIN: ("\n".join(lines) + "\n").encode()})
    result = ep.verify_pack(_zip(tampered), key)
    assert not result.ok and any("#1" in p and "was altered" in p for p in result.problems), result.problems


def test_a_checkpoint_signed_with_another_key_fails_with_the_key(pack: Path, key: AuditKey) -> None:
    members = _members(pack)
    info = json.loads(members[ep.VERIFICATION])
    cp: Checkpoint = parse(json.dumps(info["checkpoint"]))
    info["checkpoint"] = json.loads(sign(AuditKey(b"not the key", "test"), cp).to_json())
    forged = _zip(_remanifest({**members, ep.VERIFICATION: ep.to_json(info)}))
    assert ep.verify_pack(forged, None).ok  # without the key a re-signed checkpoint cannot be told apart
    result = ep.verify_pack(forged, key)
    assert not result.ok and any("not authentic" in p for p in result.problems)


def _raw_zip(name: str, data: bytes, mode: int | None = None) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        info = zipfile.ZipInfo(name)
        info.compress_type = zipfile.ZIP_DEFLATED
        if mode is not None:
            info.external_attr = mode << 16
        zf.writestr(info, data)
    return buf.getvalue()


@pytest.mark.parametrize(("archive", "why"), [
    (_raw_zip("../../etc/evil", b"x"), "climbs out"),
    (_raw_zip("/abs/path", b"x"), "absolute"),
    (_raw_zip("link", b"/etc/passwd", mode=0o120777), "symbolic link"),
    (_raw_zip("bomb.json", b"0" * 5_000_000), "zip bomb"),
    (b"not a zip at all", "not a readable zip"),
])
def test_unsafe_zips_are_refused_without_extracting(archive: bytes, why: str) -> None:
    result = ep.verify_pack(archive)
    assert not result.ok and any(why in p for p in result.problems), result.problems


def test_duplicate_members_are_refused(pack: Path) -> None:
    members = _members(pack)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf, pytest.warns(UserWarning):
        for name, data in members.items():
            zf.writestr(name, data)
        zf.writestr("controls.json", b"[]")
    result = ep.verify_pack(buf.getvalue())
    assert not result.ok and any("appears twice" in p for p in result.problems)
