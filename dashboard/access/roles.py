"""Roles and permissions, enforced in the core: every state-changing function calls :func:`require`.

Deny by default: an action missing from :data:`ACTIONS` is refused for everyone, and a test fails
when a state-changing action has no rule.
"""

from __future__ import annotations

from dataclasses import dataclass

from dashboard.errors import PermissionDenied

ROLES: tuple[str, ...] = ("data_scientist", "annotator", "manager", "admin")
#: The role of ``vigil serve``'s own actor. It is no person's: the users file only takes :data:`ROLES`, so
#: no user or token can hold it. It may do what the scheduled monitors and webhook receivers do unattended:
#: bring labels back and run the retrain rule (which starts a retrain) or the gate of a new version.
SERVICE_ROLE = "service"
SERVICE_ACTIONS: frozenset[str] = frozenset({"labels.sync", "retrain.start"})

# action -> roles allowed to perform it
ACTIONS: dict[str, frozenset[str]] = {
    "ingest": frozenset({"data_scientist", "admin"}),
    "queue.send": frozenset({"data_scientist", "annotator", "admin"}),
    "labels.sync": frozenset({"data_scientist", "annotator", "admin"}),
    "retrain.start": frozenset({"data_scientist", "admin"}),
    "retrain.cancel": frozenset({"data_scientist", "admin"}),
    "promotion.request": frozenset({"data_scientist", "admin"}),
    "promotion.withdraw": frozenset({"data_scientist", "admin"}),
    "promotion.reject": frozenset({"manager"}),
    "model.promote": frozenset({"manager"}),
    "model.rollback": frozenset({"manager"}),
    "policy.override": frozenset({"manager"}),
    "policy.change": frozenset({"manager", "admin"}),
    "card.edit": frozenset({"data_scientist", "manager", "admin"}),
    "card.approval_note": frozenset({"manager"}),
    "report.export": frozenset({"data_scientist", "manager", "admin"}),
    "artifact.store": frozenset({"data_scientist", "admin"}),
    "quality.import": frozenset({"data_scientist", "admin"}),
    "users.manage": frozenset({"admin"}),
    "inventory.edit": frozenset({"manager", "admin"}),
    "control.tailor": frozenset({"manager"}),
    "finding.record": frozenset({"data_scientist", "manager"}),
    "finding.resolve": frozenset({"manager"}),
    "evidence.export": frozenset({"data_scientist", "manager", "admin"}),
    "alert.acknowledge": frozenset({"data_scientist", "manager", "admin"}),
    "alert.silence": frozenset({"data_scientist", "manager", "admin"}),
    "alert.resolve": frozenset({"data_scientist", "manager", "admin"}),
}


@dataclass(frozen=True)
class Actor:
    """Who performs an action: a signed-in user, or a named system actor (CLI, cron) with a role."""

    name: str
    role: str

    def __post_init__(self) -> None:
        if self.role not in ROLES and self.role != SERVICE_ROLE:
            raise PermissionDenied(f"unknown role '{self.role}' for {self.name}; roles are {', '.join(ROLES)}")


#: The actor every audit entry of ``vigil serve`` names.
SERVICE = Actor("vigil serve", SERVICE_ROLE)


def allowed(actor: Actor, action: str) -> bool:
    if actor.role == SERVICE_ROLE:
        return action in ACTIONS and action in SERVICE_ACTIONS
    return actor.role in ACTIONS.get(action, frozenset())


def require(actor: Actor, action: str) -> None:
    """Raise :class:`PermissionDenied` unless ``actor`` may perform ``action``."""
    if action not in ACTIONS:
        raise PermissionDenied(f"'{action}' is not a known action; refused for everyone")
    if not allowed(actor, action):
        roles = ", ".join(sorted(ACTIONS[action]))
        raise PermissionDenied(f"{actor.name} ({actor.role}) may not {action}; it needs one of: {roles}")


def actions_for(role: str) -> list[str]:
    """The actions ``role`` may perform, sorted (for the UI and the docs)."""
    return sorted(a for a, roles in ACTIONS.items() if role in roles)
