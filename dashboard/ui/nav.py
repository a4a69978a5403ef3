"""The page registry: every page, its title, and the roles that may see it.

``st.navigation`` receives only the pages of the signed-in role, so a page left out cannot be reached
even by URL. Permission checks on actions live in the core as well (``dashboard.access.roles``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

# pages/ sits beside dashboard/ both in the repository and once installed (same distribution).
PAGES_DIR = Path(__file__).resolve().parents[2] / "pages"
ALL_ROLES = ("data_scientist", "annotator", "manager", "admin")


@dataclass(frozen=True)
class PageSpec:
    file: str
    title: str
    icon: str
    roles: tuple[str, ...] = ALL_ROLES
    default: bool = False

    @property
    def path(self) -> Path:
        return PAGES_DIR / self.file

    @property
    def url_path(self) -> str:
        return self.file.removesuffix(".py").split("_", 1)[-1]


PAGES: tuple[PageSpec, ...] = (
    PageSpec("1_overview.py", "Overview", ":material/dashboard:", default=True),
    PageSpec("10_alerts.py", "Alerts", ":material/notifications_active:", ("data_scientist", "manager", "admin")),
    PageSpec("2_drift.py", "Drift", ":material/ssid_chart:", ("data_scientist", "manager", "admin")),
    PageSpec("9_data_quality.py", "Data quality", ":material/fact_check:", ("data_scientist", "manager", "admin")),
    PageSpec("3_fairness.py", "Fairness", ":material/balance:", ("data_scientist", "manager", "admin")),
    PageSpec("4_operations.py", "Operations", ":material/speed:", ("data_scientist", "manager", "admin")),
    PageSpec("5_annotation.py", "Annotation queue", ":material/label:", ("data_scientist", "annotator", "admin")),
    PageSpec("6_retraining.py", "Retraining", ":material/model_training:", ("data_scientist", "admin")),
    PageSpec("7_models.py", "Models", ":material/inventory_2:", ("data_scientist", "manager", "admin")),
    PageSpec("8_compliance.py", "Compliance", ":material/verified_user:", ("data_scientist", "manager", "admin")),
    # Managers review it; data scientists may read it (changing a profile is a manager's or admin's action).
    PageSpec("11_inventory.py", "Inventory", ":material/checklist:", ("data_scientist", "manager", "admin")),
)


def pages_for(role: str) -> list[PageSpec]:
    """The pages ``role`` may see (deny by default: an unknown role sees none)."""
    return [p for p in PAGES if role in p.roles]


def page_by_url(url_path: str) -> PageSpec | None:
    return next((p for p in PAGES if p.url_path == url_path), None)


#: Which page explains a policy's metric (by metric name prefix), for the Overview's links.
_EXPLAINED_BY: tuple[tuple[tuple[str, ...], str], ...] = (
    (("drift_share", "drifted_features", "feature_drift"), "2_drift.py"),
    (("gate_verdict", "evaluation_", "holdout_", "batch_latency_ratio"), "6_retraining.py"),
    (("card_completeness",), "8_compliance.py"),
    (("missing_share", "unseen_share", "out_of_range_share", "type_violation_share", "data_quality_failures",
      "expectation", "gx_suite:"), "9_data_quality.py"),
    (("disparate_impact", "statistical_parity", "equal_opportunity", "average_odds", "false_", "true_",
      "error_rate_difference", "generalized_entropy", "theil", "between_group", "base_rate"), "3_fairness.py"),
    (("latency", "error_rate", "accuracy", "actual_accuracy", "f1", "roc_auc", "estimated_accuracy",
      "label_coverage", "ingest_rejects"), "4_operations.py"),
)


def page_explaining(metric: str, role: str) -> PageSpec | None:
    """The page that explains ``metric``, if ``role`` may open it (never a link to a page it cannot see)."""
    for prefixes, file in _EXPLAINED_BY:
        if metric.startswith(prefixes):
            spec = next(p for p in PAGES if p.file == file)
            return spec if role in spec.roles else None
    return None
