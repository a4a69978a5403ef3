"""Alerting: failing checks become deduplicated alerts, people acknowledge or silence them, routes deliver.

Modules: :mod:`signals` (the contract with the monitors), :mod:`state` (alerts and their history in the
store), :mod:`evaluation` (policy verdicts as signals) and :mod:`delivery` (notifications to the routes
with retries).

May import every domain below it (governance, lifecycle, learning, monitoring, access, audit), the shared
ground and connectors; only the front doors (app, ui, pages, cli, commands, service) import alerting.
"""

from dashboard.alerting.delivery import DeliveryReport, deliver_due
from dashboard.alerting.evaluation import observe_evaluation
from dashboard.alerting.signals import KINDS, SEVERITIES, Signal
from dashboard.alerting.state import AlertChange, observe, raise_event

__all__ = ["KINDS", "SEVERITIES", "AlertChange", "DeliveryReport", "Signal", "deliver_due", "observe",
           "observe_evaluation", "raise_event"]
