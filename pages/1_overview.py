"""Overview: which models need attention now?"""

from __future__ import annotations

from datetime import UTC, datetime

import streamlit as st
from streamlit.errors import StreamlitAPIException

from dashboard.alerting.queries import open_counts
from dashboard.governance.overview import (
    ModelHealth,
    PolicyLine,
    PolicyStatus,
    model_health,
    policy_status,
    versions_to_judge,
)
from dashboard.ui import state
from dashboard.ui.format import clip, fmt_pct, fmt_time, md_code, md_prose, md_text
from dashboard.ui.nav import PageSpec, page_explaining, pages_for
from dashboard.ui.session import current_actor

st.title("Overview")
st.caption("One card per model: policy verdicts of the versions serving, volume, time range, versions and "
           "aliases, reliability and the last ingest.")


@st.cache_data(ttl=60, show_spinner="Reading the log store and the registry…")
def _health(name: str, data_version: str) -> ModelHealth:
    return model_health(state.context(), name)


@st.cache_data(ttl=300, show_spinner="Evaluating policies…")
def _policies(name: str, version: str, data_version: str) -> PolicyStatus:
    return policy_status(state.context(), name, version)


def _line(line: PolicyLine) -> str:
    """A failing or warning policy with its value, threshold and window, and where to look."""
    value = "no value" if line.value is None else f"{line.value:.4g}"
    text = (f"**{md_text(line.name)}**: {value} (needs {md_text(line.comparator)} {md_text(line.threshold)}; "
            f"{md_text(line.verdict)}) over {md_text(line.window)}")
    if line.detail:
        text += f" · {md_prose(line.detail)}"
    return text


def _status_lines(health: ModelHealth, status: PolicyStatus, role: str) -> None:
    alias = next((f" ({md_text(a)})" for a, v in sorted(health.aliases.items()) if v == status.version), "")
    head = f"v{md_text(status.version)}{alias}"
    if status.passed:
        st.write(f":green[**{head}** passes every blocking policy] · {status.phase.replace('_', '-')}")
    else:
        st.write(f":red[**{head}** fails {len(status.failures)} blocking "
                 f"polic{'y' if len(status.failures) == 1 else 'ies'}] · {status.phase.replace('_', '-')}")
        for line in status.failures:
            _with_link(_line(line), line.metric, role)
    if status.warning_lines:
        with st.expander(f"{head}: {len(status.warning_lines)} warning(s)", icon=":material/warning:"):
            for line in status.warning_lines:
                _with_link(_line(line), line.metric, role)


def _with_link(text: str, metric: str, role: str) -> None:
    _linked(f"- {text}", page_explaining(metric, role))


def _linked(text: str, spec: PageSpec | None) -> None:
    left, right = st.columns([6, 1])
    left.markdown(text)
    if spec is not None:
        try:
            right.page_link(str(spec.path), label=spec.title, icon=spec.icon)
        except StreamlitAPIException:  # the page runs alone (tests), outside st.navigation
            right.markdown(f"[{spec.title}](/{spec.url_path})")


ctx = state.guarded(state.context)
actor = current_actor()
role = actor.role if actor is not None else ""
compliance = any(p.file == "8_compliance.py" for p in pages_for(role))
alerts_page = next((p for p in pages_for(role) if p.file == "10_alerts.py"), None)
if ctx is not None:
    alerts_open = state.guarded(open_counts, ctx, datetime.now(UTC)) or {}
    names = sorted(ctx.settings.models)
    if not names:
        st.info("No model is configured. Add a [models.<name>] table to vigil.toml, or run `vigil demo`.")
    for name in names:
        version = state.guarded(state.data_version, name)
        if version is None:
            continue
        health = state.guarded(_health, name, version)
        if health is None:
            continue
        statuses = [p for p in (state.guarded(_policies, name, v, version) for v in versions_to_judge(health))
                    if p is not None]
        needs_attention = bool(health.attention) or not all(p.passed for p in statuses) or name in alerts_open
        with st.container(border=True):
            head, badge = st.columns([4, 1])
            head.subheader(health.name)
            if health.description:
                head.caption(health.description)
            if needs_attention:
                badge.error("Needs attention", icon=":material/warning:")
            else:
                badge.success("Healthy", icon=":material/check_circle:")
            c1, c2, c3, c4, c5 = st.columns(5)
            c1.metric("Predictions", f"{health.rows:,}")
            c2.metric("Error rate", fmt_pct(health.error_rate))
            c3.metric("Latency p95", "n/a" if health.latency_p95_ms is None else f"{health.latency_p95_ms:.0f} ms")
            c4.metric("Label coverage", fmt_pct(health.label_coverage))
            c5.metric("Latest version", clip(health.latest_version) or "n/a")
            st.write(f"**Time range:** {fmt_time(health.first_ts)} → {fmt_time(health.last_ts)} · "
                     f"**Versions serving:** {', '.join(map(md_text, health.versions_logged)) or 'none'} · "
                     f"**Last ingest:** {fmt_time(health.last_ingest)}")
            if health.aliases:
                st.write("**Aliases:** " + ", ".join(f"{md_code(a)} → v{md_text(v)}" for a, v in sorted(health.aliases.items())))
            if name in alerts_open:
                n = alerts_open[name]
                _linked(f":red[**{n} open alert{'' if n == 1 else 's'}**] (not acknowledged or silenced)", alerts_page)
            if health.registry_error:
                st.warning(f"Registry unavailable: {md_prose(health.registry_error)}")
            for status in statuses:
                _status_lines(health, status, role)
            if statuses:
                command = f"vigil check --model {name}" + (" --version V" if compliance else "")
                where = " Evidence and history: the Compliance page, or " if compliance else " Headless: "
                st.caption(f"Policies evaluated {fmt_time(statuses[0].evaluated_at)}, each over its own window "
                           "(relative windows end at the version's latest logged prediction)."
                           + where + md_code(command) + ".")
            for reason in health.attention:
                st.write(f"- {md_prose(reason)}")
