"""Model cards: structured sections kept with the model version in MLflow, with every revision kept.

Where they live: on the run behind the version, ``model_card/<version>/model_card.json`` (the
structured source), ``model_card.md`` (the rendered card) and ``history/rev-<n>.json`` (each past
revision); the version description holds the rendered card too, so the MLflow UI shows it, and tags
``vigil.card.*`` carry the revision, author and completeness. Rendering never passes raw HTML through:
card text is Markdown with HTML escaped, so a ``<script>`` in a card shows as text.
"""

from __future__ import annotations

import html
import json
import re
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from markdown_it import MarkdownIt

from connectors.registry import RegistryNotFound
from dashboard.access.roles import Actor, require
from dashboard.context import Context
from dashboard.errors import VigilError

SECTIONS: dict[str, str] = {
    "intended_use": "Intended use",
    "out_of_scope_use": "Out-of-scope use",
    "training_data": "Training data",
    "evaluation": "Evaluation",
    "fairness": "Fairness",
    "limitations": "Limitations",
    "human_oversight": "Human oversight",
    "owners": "Owners",
    "approvals": "Approvals",
}
# Approvals are written by the approval workflow (``dashboard.governance.approvals``), not by authors, so they are
# not edited as card text.
EDITABLE: tuple[str, ...] = tuple(k for k in SECTIONS if k != "approvals")
# Completeness counts the sections every card needs. Human oversight (how people oversee, override and stop the
# model) is what the control packs ask of high-risk systems (EU AI Act Article 14): a control checks it, so a
# minimal-risk model's card is not incomplete without it.
AUTHORED: tuple[str, ...] = tuple(k for k in EDITABLE if k != "human_oversight")
TAG = "vigil.card."
DESCRIPTION_LIMIT = 4800  # MLflow's SQL store keeps at most 5000 characters of a description
LINK_SCHEMES = ("http", "https")


class _SafeMarkdown(MarkdownIt):
    """CommonMark that renders untrusted text: raw HTML escaped, an image shown as its Markdown text (a
    viewer, or the Chromium that prints the PDF, would fetch any URL), links only to http(s) (others stay
    as the text they were written as)."""

    def __init__(self) -> None:
        super().__init__("commonmark", {"html": False})
        self.add_render_rule("image", _image_as_text)

    def validateLink(self, url: str) -> bool:
        return urlsplit(url.strip()).scheme.lower() in LINK_SCHEMES


def _image_as_text(self: Any, tokens: Any, idx: int, options: Any, env: Any) -> str:
    """An image token rendered as the text ``![alt](url)``: never an ``<img>``."""
    token = tokens[idx]
    return html.escape(f"![{token.content}]({token.attrGet('src') or ''})")


_MD = _SafeMarkdown()


@dataclass(frozen=True)
class ModelCard:
    model: str
    version: str
    sections: dict[str, str] = field(default_factory=dict)
    revision: int = 0
    updated_by: str = ""
    updated_at: str = ""

    def text(self, key: str) -> str:
        return self.sections.get(key, "").strip()

    def missing_sections(self) -> list[str]:
        return [SECTIONS[k] for k in AUTHORED if not self.text(k)]

    def completeness(self) -> float:
        return sum(1 for k in AUTHORED if self.text(k)) / len(AUTHORED)

    def to_json(self) -> dict[str, Any]:
        return {"model": self.model, "version": self.version, "revision": self.revision,
                "updated_by": self.updated_by, "updated_at": self.updated_at,
                "sections": {k: self.sections.get(k, "") for k in SECTIONS}}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ModelCard:
        return cls(model=str(data.get("model", "")), version=str(data.get("version", "")),
                   sections={k: str(v) for k, v in (data.get("sections") or {}).items() if k in SECTIONS},
                   revision=int(data.get("revision", 0)), updated_by=str(data.get("updated_by", "")),
                   updated_at=str(data.get("updated_at", "")))


# ------------------------------------------------------------------------------------ rendering

def escape_markdown_html(text: str) -> str:
    """Escape HTML so Markdown renderers (st.markdown included) show tags as text."""
    return html.escape(text, quote=False)


# ``![`` not already escaped (an even run of backslashes before it): where an image starts.
_IMAGE_START = re.compile(r"(?<!\\)((?:\\\\)*)!\[")


def inert_markdown(text: str) -> str:
    """Card Markdown for renderers Vigil does not control (MLflow's UI shows the version description):
    HTML escaped and the ``!`` of every image escaped (it renders as ``!`` and a link), so no viewer fetches it."""
    return _IMAGE_START.sub(r"\1\\![", escape_markdown_html(text))


def to_markdown(card: ModelCard) -> str:
    """The card as Markdown (for the artifact and the version description); HTML escaped, images inert."""
    lines = [f"# Model card: {escape_markdown_html(card.model)} version {escape_markdown_html(card.version)}", ""]
    for key, title in SECTIONS.items():
        lines += [f"## {title}", "", inert_markdown(card.text(key)) or "_Not written yet._", ""]
    if card.revision:
        lines.append(f"_Revision {card.revision} by {escape_markdown_html(card.updated_by)} at {card.updated_at}_")
    return "\n".join(lines)


def markdown_to_html(text: str) -> str:
    """Untrusted Markdown (cards, notes) to safe HTML for the exported report and the app: raw HTML
    escaped, no images, links only to http(s) URLs."""
    return str(_MD.render(text))


def to_html(card: ModelCard) -> str:
    parts = []
    for key, title in SECTIONS.items():
        body = card.text(key)
        parts.append(f"<h3>{html.escape(title)}</h3>" + (markdown_to_html(body) if body
                                                         else "<p><em>Not written yet.</em></p>"))
    return "\n".join(parts)


# -------------------------------------------------------------------------------------- storage

def _folder(version: str) -> str:
    return f"model_card/{version}"


def champion_version(ctx: Context, model: str) -> str | None:
    try:
        return ctx.registry.version_by_alias(model, "champion").version
    except RegistryNotFound:
        return None


def _run_id(ctx: Context, model: str, version: str) -> str:
    v = ctx.registry.version(model, version)
    if not v.run_id:
        raise VigilError(f"version {version} of '{model}' has no MLflow run to keep its model card with")
    return v.run_id


def _read_json(ctx: Context, run_id: str, path: str) -> dict[str, Any] | None:
    with tempfile.TemporaryDirectory(prefix="vigil-card-") as tmp:
        try:
            local = ctx.registry.download_artifact(run_id, path, tmp)
        except RegistryNotFound:
            return None
        except Exception as exc:  # MLflow raises plain exceptions for a missing artifact on some stores
            if "not found" in str(exc).lower() or "no such file" in str(exc).lower():
                return None
            raise
        data = json.loads(Path(local).read_text(encoding="utf-8"))
    return data if isinstance(data, dict) else None


RUN_CARD = "model_card.md"  # a card a training run logged at the root of its artifacts
FROM_RUN = "the training run's model_card.md"


def load_card(ctx: Context, model: str, version: str) -> ModelCard:
    """The current card of a version. With no revision saved in Vigil yet: the card its training run logged
    (``model_card.md``, revision 0, ``updated_by`` says so), else an empty card at revision 0."""
    v = ctx.registry.version(model, version)
    if not v.run_id:
        return ModelCard(model, str(version))
    if not v.tags.get(TAG + "revision"):
        sections = run_card_sections(ctx, v.run_id)
        return ModelCard(model, str(version), sections, 0, FROM_RUN if sections else "")
    data = _read_json(ctx, v.run_id, f"{_folder(str(version))}/model_card.json")
    return ModelCard.from_json(data) if data else ModelCard(model, str(version))


def parse_markdown_card(text: str) -> dict[str, str]:
    """Sections of a Markdown card: each ``## <title>`` whose title is one of :data:`SECTIONS` (case and
    spacing ignored) up to the next heading of that level; other headings stay inside their section."""
    titles = {" ".join(title.lower().split()): key for key, title in SECTIONS.items()}
    sections: dict[str, list[str]] = {}
    current: str | None = None
    for line in text.splitlines():
        if line.startswith("## ") or line.startswith("# "):
            current = titles.get(" ".join(line.lstrip("#").strip().lower().split())) if line.startswith("## ") \
                else None
            if current is not None:
                sections.setdefault(current, [])
            continue
        if current is not None:
            sections[current].append(line)
    return {k: "\n".join(lines).strip() for k, lines in sections.items() if "\n".join(lines).strip()}


def run_card_sections(ctx: Context, run_id: str) -> dict[str, str]:
    """The sections of the ``model_card.md`` a run logged ({} when it logged none)."""
    with tempfile.TemporaryDirectory(prefix="vigil-card-") as tmp:
        try:
            local = ctx.registry.download_artifact(run_id, RUN_CARD, tmp)
        except Exception:  # no card logged (stores differ in how they say so): nothing to import
            return {}
        return parse_markdown_card(Path(local).read_text(encoding="utf-8", errors="replace"))


def history(ctx: Context, model: str, version: str) -> list[ModelCard]:
    """Every saved revision, oldest first."""
    v = ctx.registry.version(model, version)
    if not v.run_id or not v.tags.get(TAG + "revision"):
        return []
    revisions = int(v.tags[TAG + "revision"])
    out = []
    for rev in range(1, revisions + 1):
        data = _read_json(ctx, v.run_id, f"{_folder(str(version))}/history/rev-{rev:04d}.json")
        if data:
            out.append(ModelCard.from_json(data))
    return out


def save_card(ctx: Context, actor: Actor, model: str, version: str, sections: dict[str, str],
              expected_revision: int | None = None) -> ModelCard:
    """Save a new revision (``card.edit``); refuses when someone saved since ``expected_revision``."""
    require(actor, "card.edit")
    unknown = sorted(set(sections) - set(SECTIONS))
    if unknown:
        raise VigilError(f"unknown card section(s) {', '.join(unknown)}; sections are {', '.join(SECTIONS)}")
    current = load_card(ctx, model, version)
    if expected_revision is not None and current.revision != expected_revision:
        raise VigilError(f"the card of {model} version {version} was saved by {current.updated_by} "
                         f"(revision {current.revision}) since you opened it; reload and apply your changes again")
    merged = {**current.sections, **{k: str(v) for k, v in sections.items()}}
    card = ModelCard(model, str(version), merged, current.revision + 1, actor.name,
                     datetime.now(UTC).isoformat(timespec="seconds"))
    _write(ctx, card)
    changed = sorted(k for k in SECTIONS if merged.get(k, "") != current.sections.get(k, ""))
    from dashboard.audit import trail as audit

    audit.record(ctx.store, actor, "card.edit", model, {"version": str(version), "revision": card.revision,
                                                        "changed": changed, "completeness": card.completeness()})
    return card


def _write(ctx: Context, card: ModelCard) -> None:
    folder = _folder(card.version)
    with tempfile.TemporaryDirectory(prefix="vigil-card-") as tmp:
        base = Path(tmp)
        (base / "model_card.json").write_text(json.dumps(card.to_json(), indent=2), encoding="utf-8")
        markdown = to_markdown(card)
        (base / "model_card.md").write_text(markdown, encoding="utf-8")
        hist = base / "history"
        hist.mkdir()
        (hist / f"rev-{card.revision:04d}.json").write_text(json.dumps(card.to_json(), indent=2), encoding="utf-8")
        ctx.registry.log_artifact_to_version(card.model, card.version, hist / f"rev-{card.revision:04d}.json",
                                             f"{folder}/history")
        ctx.registry.log_artifact_to_version(card.model, card.version, base / "model_card.json", folder)
        ctx.registry.log_artifact_to_version(card.model, card.version, base / "model_card.md", folder)
    description = markdown if len(markdown) <= DESCRIPTION_LIMIT else (
        markdown[:DESCRIPTION_LIMIT] + f"\n\n… (full card: artifact {folder}/model_card.md)")
    ctx.registry.update_version_description(card.model, card.version, description)
    for key, value in (("revision", str(card.revision)), ("updated_by", card.updated_by),
                       ("updated_at", card.updated_at), ("completeness", f"{card.completeness():.2f}")):
        ctx.registry.set_version_tag(card.model, card.version, TAG + key, value)


# ------------------------------------------------------------------------------- carried forward

CARRIED: tuple[str, ...] = ("intended_use", "out_of_scope_use", "limitations", "owners")  # people's words
FROM_EVIDENCE: tuple[str, ...] = ("training_data", "evaluation", "fairness")  # facts of this version


def _fmt(x: Any) -> str:
    return "n/a" if x is None else f"{x:.3f}" if isinstance(x, float) else str(x)


def evidence_sections(evidence: dict[str, Any]) -> dict[str, str]:
    """Training data, evaluation and fairness sections written from the gate's evidence of a version."""
    ds = evidence.get("datasets", {})
    metrics = evidence.get("metrics", {})
    train, hold, ev = ds.get("training", {}), ds.get("holdout", {}), ds.get("evaluation", {})
    out: dict[str, str] = {}
    lines = []
    if train.get("rows") is not None:
        lines.append(f"{train['rows']:,} training rows (dataset digest `{train.get('digest') or 'n/a'}`).")
    if train.get("production_rows") is not None:
        cut = train.get("labels_before")
        lines.append(f"{train['production_rows']:,} of them labelled production rows"
                     + (f" logged before {cut}" if cut and cut != "none" else "")
                     + f" (prediction ids digest `{train.get('production_ids_digest')}`).")
    if lines:
        out["training_data"] = " ".join(lines)
    champion = evidence.get("champion")
    parts = []
    for name, info in (("Holdout", hold), ("Out-of-time evaluation", ev)):
        m = metrics.get("holdout" if name == "Holdout" else "evaluation", {}).get("candidate")
        if not m:
            continue
        champ = metrics.get("holdout" if name == "Holdout" else "evaluation", {}).get("champion", {})
        vs = (f" (champion v{champion}: accuracy {_fmt(champ.get('accuracy'))}, ROC AUC {_fmt(champ.get('roc_auc'))})"
              if champ else "")
        parts.append(f"{name}, {info.get('rows', 0):,} rows from {info.get('source', '')}: accuracy "
                     f"{_fmt(m.get('accuracy'))}, F1 {_fmt(m.get('f1'))}, ROC AUC {_fmt(m.get('roc_auc'))}{vs}.")
    if parts:
        out["evaluation"] = "\n\n".join(parts) + f"\n\nCandidate gate: {evidence.get('verdict', 'n/a')} " \
                            f"(evaluated {evidence.get('evaluated_at', '')})."
    fair = []
    for ds_name in ("evaluation", "holdout"):
        m = metrics.get(ds_name, {}).get("candidate", {})
        for key, value in sorted(m.items()):
            if key.startswith(("disparate_impact_", "statistical_parity_difference_")):
                metric, _, attr = key.rpartition("_")
                fair.append(f"- {ds_name}: {metric.replace('_', ' ')} ({attr}) {_fmt(value)}")
    if fair:
        out["fairness"] = "\n".join(fair)
    return out


def seed_card(ctx: Context, model: str, version: str, parent: str | None = None,
              evidence: dict[str, Any] | None = None, requested_by: str = "") -> ModelCard:
    """Write a new version's first card revision, as the system (part of a retrain someone requested):
    the parent's intended use, out-of-scope use, limitations and owners carried forward; training data,
    evaluation and fairness from the gate's evidence of this version; the rest from the card the run
    logged. A version that already has a revision is left as it is."""
    v = ctx.registry.version(model, version)
    if v.tags.get(TAG + "revision"):
        return load_card(ctx, model, version)
    sections = run_card_sections(ctx, v.run_id) if v.run_id else {}
    sources = {k: "run" for k in sections}
    if parent and parent not in ("none", str(version)):
        prior = load_card(ctx, model, parent)
        for key in CARRIED:
            if prior.text(key):
                sections[key], sources[key] = prior.text(key), f"v{parent}"
    for key, text in evidence_sections(evidence or {}).items():
        sections[key], sources[key] = text, "gate evidence"
    sections.pop("approvals", None)
    card = ModelCard(model, str(version), sections, 1, "vigil", datetime.now(UTC).isoformat(timespec="seconds"))
    _write(ctx, card)
    from dashboard.audit import trail as audit

    audit.record(ctx.store, "vigil", "card.seed", model,
                 {"version": str(version), "parent": parent, "sources": sources, "requested_by": requested_by,
                  "completeness": card.completeness()}, role="system")
    return card


def append_approval_note(ctx: Context, actor: Actor, model: str, version: str, note: str) -> ModelCard:
    """Add a line to the card's approvals section: the record of a manager's promotion or rollback, so only
    a manager writes it (``card.approval_note``), and it is audited like every other revision."""
    require(actor, "card.approval_note")
    current = load_card(ctx, model, version)
    text = (current.text("approvals") + "\n" if current.text("approvals") else "") + f"- {note}"
    card = ModelCard(model, str(version), {**current.sections, "approvals": text}, current.revision + 1,
                     actor.name, datetime.now(UTC).isoformat(timespec="seconds"))
    _write(ctx, card)
    from dashboard.audit import trail as audit

    audit.record(ctx.store, actor, "card.approval_note", model, {"version": str(version), "revision": card.revision,
                                                                 "note": note})
    return card
