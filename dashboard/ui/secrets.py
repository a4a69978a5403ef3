"""Credentials the app may take from Streamlit's secrets file when the settings do not give them."""

from __future__ import annotations

from typing import Any

import streamlit as st


def label_studio_credentials(url: str | None, token: str | None) -> tuple[str | None, str | None]:
    """URL and token from the settings, else from Streamlit secrets (``VIGIL_LABEL_STUDIO_URL`` /
    ``VIGIL_LABEL_STUDIO_TOKEN`` at top level, or ``url`` / ``token`` under ``[label_studio]``)."""
    def secret(flat: str, section_key: str) -> str | None:
        try:
            secrets: Any = st.secrets
            if flat in secrets:
                return str(secrets[flat])
            section = secrets.get("label_studio")
            if section and section_key in section:
                return str(section[section_key])
        except (FileNotFoundError, KeyError, AttributeError):
            return None
        except Exception:  # no secrets.toml at all: Streamlit raises its own error type
            return None
        return None

    return url or secret("VIGIL_LABEL_STUDIO_URL", "url"), token or secret("VIGIL_LABEL_STUDIO_TOKEN", "token")
