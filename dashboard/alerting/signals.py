"""What a check reports to the alerting domain: one :class:`Signal` per failing subject.

Why a separate value: monitors (policies, SLOs, the retrain rule, jobs, registry watchers) know what
failed; the alerting domain knows how to keep it one alert, whom to tell and when. The signal is the
contract between them, and its dedup key (model, version, kind and subject) is the alert's identity.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from dashboard.settings import ALERT_SEVERITIES

KINDS: tuple[str, ...] = ("policy", "slo", "retrain_rule", "job", "external_change")
# Most severe first; a route's ``min_severity`` accepts its own level and everything before it.
SEVERITIES: tuple[str, ...] = ALERT_SEVERITIES
# One-off events have no check that could resolve them: a person does.
EVENT_KINDS: frozenset[str] = frozenset({"job", "external_change"})


@dataclass(frozen=True)
class Signal:
    """One failing subject of one check, as plain data (JSON-able evidence, a plain-text summary)."""

    model: str
    version: str | None
    kind: str  # one of KINDS
    subject: str  # policy name, SLO name, rule name, job id, alias name
    severity: str  # one of SEVERITIES
    summary: str  # one plain-text line
    evidence: dict[str, Any] = field(default_factory=dict)
    page: str = ""  # file of the page that explains it, e.g. "8_compliance.py"

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown alert kind '{self.kind}'; kinds are {', '.join(KINDS)}")
        if self.severity not in SEVERITIES:
            raise ValueError(f"unknown severity '{self.severity}'; severities are {', '.join(SEVERITIES)}")

    @property
    def dedup_key(self) -> str:
        """``model|version|kind:subject``: the same failure keeps this key, so it stays one alert."""
        return dedup_key(self.model, self.version, self.kind, self.subject)


def dedup_key(model: str, version: str | None, kind: str, subject: str) -> str:
    return f"{model}|{version or ''}|{kind}:{subject}"


def severity_rank(severity: str) -> int:
    """0 for the most severe; unknown severities rank last."""
    return SEVERITIES.index(severity) if severity in SEVERITIES else len(SEVERITIES)
