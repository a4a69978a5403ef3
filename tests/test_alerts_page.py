"""Alerts page (AppTest) over a real DuckDB file: tabs by state, evidence and history as text (HTML in a
value stays text), a link only to a page the role may open, acknowledge and silence for permitted roles;
the Overview shows the open alerts per model."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from dashboard.alerting import Signal, observe, raise_event
from dashboard.audit import trail
from dashboard.context import Context
from dashboard.settings import Settings
from tests.conftest import REPO, demo_config_context
from tests.fixtures.access import signed_in

XSS = "<script>alert('x')</script><img src=x onerror=alert(1)>"
pytestmark = pytest.mark.usefixtures("fresh_caches")


@pytest.fixture
def ctx(settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Context:
    context = demo_config_context(settings, tmp_path, monkeypatch, """
[[alerts.routes]]
name = "team-slack"
type = "slack"
url = "https://hooks.example.org/services/T000/B000/SECRETPATH"
""")
    now = datetime.now(UTC)
    drift = Signal("credit-risk", "3", "policy", "drift_share", "blocking", f"drift share 0.41 on {XSS}",
                   {"metric": "drift_share", "value": 0.41, "detail": XSS}, "8_compliance.py")
    observe(context, "credit-risk", "policy", [drift], ["drift_share"], now - timedelta(hours=1))
    observe(context, "credit-risk", "policy", [drift], ["drift_share"], now)
    latency = Signal("credit-risk", "3", "slo", "latency_p95_ms", "warning", "p95 912 ms > 500 ms",
                     {"metric": "latency_p95_ms", "value": 912.0}, "4_operations.py")
    observe(context, "credit-risk", "slo", [latency], ["latency_p95_ms"], now - timedelta(hours=2))
    observe(context, "credit-risk", "slo", [], ["latency_p95_ms"], now - timedelta(minutes=30))  # resolved
    raise_event(context, Signal("credit-risk", None, "external_change", "alias champion", "blocking",
                                "champion moved from v2 to v3 outside Vigil", {"from": "2", "to": "3"},
                                "7_models.py"), now)
    return context


def _page(name: str, role: str, file: str = "10_alerts.py") -> AppTest:
    at = AppTest.from_file(str(REPO / "pages" / file), default_timeout=120)
    signed_in(at, name, role)
    return at.run()


def _text(at: AppTest) -> str:
    parts = [m.value for m in at.markdown] + [c.value for c in at.caption] + [e.label for e in at.expander]
    parts += [s.value for s in at.success] + [w.value for w in at.warning] + [e.value for e in at.error]
    return "\n".join(str(p) for p in parts)


def test_tabs_evidence_history_and_links(ctx: Context) -> None:
    at = _page("dana", "data_scientist")
    assert not at.exception, at.exception
    assert [t.label for t in at.tabs] == ["Open (2)", "Acknowledged / silenced (0)", "Resolved (1)"]
    text = _text(at)
    assert not re.search(r"(?<!\\)[<>]", text) and r"\<script\>" in text  # every < and > escaped: text
    assert "seen 2× since" in text
    frames = [df.value for df in at.dataframe]
    evidence = next(f for f in frames if list(f.columns) == ["field", "value"] and "detail" in set(f["field"]))
    assert XSS in set(evidence["value"])  # a table cell: text, never HTML
    assert any("opened" in set(f.get("event", [])) for f in frames)
    routes = next(f for f in frames if "route" in f.columns and "type" in f.columns)
    assert list(routes["target"]) == ["https://hooks.example.org/…"]  # never the URL's secret path
    assert "SECRETPATH" not in text + "".join(f.to_string() for f in frames)
    assert any("not delivered yet" in w.value for w in at.warning)  # 3 opened notifications owed to the route
    links = "\n".join(m.value for m in at.markdown if "Explained on" in m.value)
    assert "/drift" in links and "/models" in links and "/operations" in links  # drift_share is explained on Drift


def test_a_manager_acknowledges_and_silences_and_each_is_audited(ctx: Context) -> None:
    at = _page("mia", "manager")
    assert not at.exception, at.exception
    assert "/drift" in "\n".join(m.value for m in at.markdown if "Explained on" in m.value)
    next(b for b in at.button if b.label == "Acknowledge").click().run()
    assert not at.exception, at.exception
    assert any("acknowledged" in s.value for s in at.success)
    assert [t.label for t in at.tabs][:2] == ["Open (1)", "Acknowledged / silenced (1)"]
    next(b for b in at.button if b.label == "Silence").click().run()
    assert [t.label for t in at.tabs][:2] == ["Open (0)", "Acknowledged / silenced (2)"]
    audited = trail.entries(ctx, action="alert.")
    assert sorted(audited["action"]) == ["alert.acknowledge", "alert.silence"] and set(audited["actor"]) == {"mia"}


def test_an_annotator_gets_no_buttons_and_the_overview_counts_open_alerts(ctx: Context,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    at = _page("ann", "annotator")
    assert not at.exception, at.exception
    assert not [b for b in at.button if b.label in ("Acknowledge", "Silence", "Resolve")]
    assert not [m for m in at.markdown if "Explained on" in m.value]  # no page the annotator may not open
    monkeypatch.setenv("VIGIL_MLFLOW_URI", "http://127.0.0.1:9")  # no registry: the Overview says so, quickly
    monkeypatch.setenv("VIGIL_MLFLOW_TIMEOUT", "2")
    overview = _page("dana", "data_scientist", "1_overview.py")
    assert not overview.exception, overview.exception
    assert any("2 open alerts" in m.value for m in overview.markdown), _text(overview)
