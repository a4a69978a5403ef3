"""Control packs as code: TOML files that map each obligation to the evidence kinds that satisfy it.

Why data and not code: an auditor (or a team adding its own framework) reads and reviews a pack without
reading Python. Vigil ships ``eu-ai-act`` and ``nist-ai-rmf`` (``dashboard/governance/packs/``);
``[controls] packs`` chooses which apply and may name a team's own ``.toml`` files. A pack is checked
whole on load: every problem is listed with its place, like the config.

Format::

    [pack]
    id = "our-pack"; title = "..."; source = "..."; tiers = ["high"]   # tiers: the default of its controls
    [[controls]]
    id = "c-1"; ref = "Clause 1"; title = "..."; obligation = "..."; required = true; tiers = ["high"]
    evidence = [{ kind = "card_sections", sections = ["intended_use"] }, { kind = "audit_chain" }]
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dashboard.errors import VigilError
from dashboard.governance.cards import SECTIONS
from dashboard.governance.control_evidence import KINDS
from dashboard.settings import Settings

PACKS_DIR = Path(__file__).resolve().parent / "packs"


@dataclass(frozen=True)
class EvidenceSpec:
    kind: str
    params: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Control:
    id: str
    ref: str
    title: str
    obligation: str
    tiers: tuple[str, ...]
    required: bool
    evidence: tuple[EvidenceSpec, ...]


@dataclass(frozen=True)
class Pack:
    id: str
    title: str
    source: str
    controls: tuple[Control, ...]
    path: Path

    def control(self, control_id: str) -> Control:
        for c in self.controls:
            if c.id == control_id:
                return c
        raise VigilError(f"pack '{self.id}' has no control '{control_id}' (its controls: "
                         f"{', '.join(c.id for c in self.controls)})")


def shipped() -> dict[str, Path]:
    """Pack id -> file of the packs Vigil ships."""
    return {p.stem: p for p in sorted(PACKS_DIR.glob("*.toml"))}


def _strings(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) and v for v in value)


def _evidence(where: str, raw: Any, problems: list[str]) -> EvidenceSpec | None:
    if not isinstance(raw, Mapping) or not isinstance(raw.get("kind"), str):
        problems.append(f"{where}: must be a table with a kind (one of {', '.join(KINDS)})")
        return None
    kind = raw["kind"]
    if kind not in KINDS:
        problems.append(f"{where}.kind: '{kind}' is not an evidence kind (known: {', '.join(KINDS)})")
        return None
    allowed = {"kind", "label", *KINDS[kind][2]}
    problems += [f"{where}.{k}: not a parameter of {kind} (it takes: {', '.join(sorted(allowed - {'kind'}))})"
                 for k in sorted(set(raw) - allowed)]
    for key in KINDS[kind][2]:
        if key in ("policies", "sections") and not _strings(raw.get(key)):
            problems.append(f"{where}.{key}: {kind} needs a non-empty list of {key}")
    unknown = [s for s in raw.get("sections", []) if isinstance(s, str) and s not in SECTIONS]
    if unknown:
        problems.append(f"{where}.sections: unknown card section(s) {', '.join(unknown)} (known: {', '.join(SECTIONS)})")
    return EvidenceSpec(kind, {k: v for k, v in raw.items() if k != "kind"})


def _control(where: str, raw: Any, default_tiers: tuple[str, ...], risk_tiers: tuple[str, ...] | None,
             problems: list[str]) -> Control | None:
    if not isinstance(raw, Mapping):
        problems.append(f"{where}: must be a table")
        return None
    start = len(problems)
    for key in ("id", "title", "obligation"):
        if not isinstance(raw.get(key), str) or not raw[key].strip():
            problems.append(f"{where}.{key}: required text")
    known = {"id", "ref", "title", "obligation", "tiers", "required", "evidence"}
    problems += [f"{where}.{k}: unknown key (known: {', '.join(sorted(known))})" for k in sorted(set(raw) - known)]
    tiers = raw.get("tiers", list(default_tiers))
    if not _strings(tiers) or not tiers:
        problems.append(f"{where}.tiers: a non-empty list of risk tiers")
    elif risk_tiers is not None:
        problems += [f"{where}.tiers: '{t}' is not one of the risk tiers {', '.join(risk_tiers)}"
                     for t in tiers if t not in risk_tiers]
    if not isinstance(raw.get("required", True), bool):
        problems.append(f"{where}.required: true or false")
    raw_evidence = raw.get("evidence")
    if not isinstance(raw_evidence, list) or not raw_evidence:
        problems.append(f"{where}.evidence: list at least one evidence kind, e.g. [{{ kind = \"audit_chain\" }}]")
        raw_evidence = []
    evidence = [_evidence(f"{where}.evidence[{i}]", e, problems) for i, e in enumerate(raw_evidence)]
    if len(problems) > start:
        return None
    return Control(str(raw["id"]), str(raw.get("ref", raw["id"])), str(raw["title"]), str(raw["obligation"]),
                   tuple(tiers), bool(raw.get("required", True)), tuple(e for e in evidence if e is not None))


def load_pack(path: Path, risk_tiers: tuple[str, ...] | None = None) -> Pack:
    """Read and check one pack file; :class:`VigilError` lists every problem with its place."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise VigilError(f"control pack {path} cannot be read ({exc.strerror}); fix [controls] packs") from None
    except tomllib.TOMLDecodeError as exc:
        raise VigilError(f"control pack {path} is not valid TOML ({exc})") from None
    problems: list[str] = []
    head = raw.get("pack")
    if not isinstance(head, Mapping) or not isinstance(head.get("id"), str) or not head.get("title"):
        problems.append("[pack]: a table with id and title is required")
        head = {}
    problems += [f"{k}: unknown top-level key (expected [pack] and [[controls]])" for k in sorted(set(raw) - {
        "pack", "controls"})]
    default_tiers = head.get("tiers", list(risk_tiers or ()))
    if not _strings(default_tiers):
        problems.append("pack.tiers: a list of risk tiers")
        default_tiers = []
    raw_controls = raw.get("controls")
    if not isinstance(raw_controls, list) or not raw_controls:
        problems.append("[[controls]]: a pack lists at least one control")
        raw_controls = []
    controls = [c for i, rc in enumerate(raw_controls)
                if (c := _control(f"controls[{i}]", rc, tuple(default_tiers), risk_tiers, problems)) is not None]
    ids = [str(rc.get("id")) for rc in raw_controls if isinstance(rc, Mapping) and rc.get("id")]
    problems += [f"controls: id '{i}' is used twice" for i in sorted({i for i in ids if ids.count(i) > 1})]
    if problems:
        raise VigilError(f"control pack {path} has {len(problems)} problem(s):\n  - " + "\n  - ".join(problems))
    return Pack(str(head["id"]), str(head["title"]), str(head.get("source", "")), tuple(controls), path)


def configured_packs(settings: Settings) -> dict[str, Pack]:
    """The packs ``[controls] packs`` chooses, by id (shipped ids and the team's own files)."""
    known = shipped()
    spec = settings.controls
    missing = [p for p in spec.packs if p not in known]
    if missing:
        raise VigilError(f"[controls] packs: no shipped pack {', '.join(missing)} (shipped: {', '.join(known)}); "
                         "name your own pack by its .toml path")
    packs: dict[str, Pack] = {}
    for path in [known[p] for p in spec.packs] + list(spec.pack_files):
        pack = load_pack(path, spec.risk_tiers)
        if pack.id in packs:
            raise VigilError(f"[controls] packs: two packs have the id '{pack.id}' ({packs[pack.id].path}, {path})")
        packs[pack.id] = pack
    return packs


def get_pack(settings: Settings, pack_id: str) -> Pack:
    packs = configured_packs(settings)
    if pack_id not in packs:
        raise VigilError(f"pack '{pack_id}' is not configured (configured: {', '.join(packs) or 'none'}); "
                         "add it to [controls] packs")
    return packs[pack_id]
