"""Overview: which models need attention now?"""

from __future__ import annotations

import streamlit as st

from dashboard.governance.overview import (
    ModelHealth,
    PolicyStatus,
    model_health,
    policy_status,
    versions_to_judge,
)
from dashboard.ui import state
from dashboard.ui.format import clip, fmt_pct, fmt_time, md_prose, md_text

st.title("Overview")
st.caption("One card per model: policy verdicts of the versions serving, volume, time range, versions and "
           "aliases, reliability and the last ingest.")


@st.cache_data(ttl=60, show_spinner="Reading the log store and the registry…")
def _health(name: str, data_version: str) -> ModelHealth:
    return model_health(state.context(), name)


@st.cache_data(ttl=300, show_spinner="Evaluating policies…")
def _policies(name: str, version: str, data_version: str) -> PolicyStatus:
    return policy_status(state.context(), name, version)


ctx = state.guarded(state.context)
if ctx is not None:
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
        needs_attention = bool(health.attention) or not all(p.passed for p in statuses)
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
                st.write("**Aliases:** " + ", ".join(f"`{a}` → v{v}" for a, v in sorted(health.aliases.items())))
            if health.registry_error:
                st.warning(f"Registry unavailable: {md_prose(health.registry_error)}")
            for status in statuses:
                role = next((f" ({a})" for a, v in sorted(health.aliases.items()) if v == status.version), "")
                verdict = ("passes every blocking policy" if status.passed
                           else "fails " + ", ".join(status.blocking_failures))
                shown = ", ".join(status.warnings[:3]) + (", …" if len(status.warnings) > 3 else "")
                warn = f" · {len(status.warnings)} warning(s): {shown}" if status.warnings else ""
                st.write(f"{':green' if status.passed else ':red'}[**v{md_text(status.version)}{role}** {verdict}]"
                         + warn)
            if statuses:
                st.caption(f"Policies evaluated {fmt_time(statuses[0].evaluated_at)} over each policy's window. "
                           f"Evidence and history: Compliance page (or `vigil check --model {name} --version V`).")
            for reason in health.attention:
                st.write(f"- {md_prose(reason)}")
