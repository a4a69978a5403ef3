"""Shared fixtures. Area-specific fixtures live in tests/fixtures/<area>.py and are listed here."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import streamlit as st

from connectors.logstore import LogStore
from connectors.schema import LogSchema
from dashboard.context import Context, load_context
from dashboard.settings import Settings, load_settings, log_schema

pytest_plugins: list[str] = ["tests.fixtures.app", "tests.fixtures.labelstudio", "tests.fixtures.mlflow",
                             "tests.fixtures.retraining", "tests.fixtures.demo", "tests.fixtures.alerting",
                             "tests.fixtures.spark"]

REPO = Path(__file__).resolve().parents[1]
DEMO_CONFIG = REPO / "dashboard" / "demo" / "vigil.toml"


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Demo model configuration with every path inside a fresh temporary folder."""
    for key in ("VIGIL_CONFIG", "VIGIL_DUCKDB_PATH", "VIGIL_MLFLOW_URI", "VIGIL_LABEL_STUDIO_URL",
                "VIGIL_LABEL_STUDIO_TOKEN", "VIGIL_USERS_FILE"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("VIGIL_DATA_DIR", str(tmp_path / "data"))
    return load_settings(DEMO_CONFIG)


@pytest.fixture
def ctx(settings: Settings) -> Context:
    return Context(settings)


@pytest.fixture
def store(ctx: Context) -> LogStore:
    return ctx.store


@pytest.fixture
def schema(ctx: Context) -> LogSchema:
    return log_schema(ctx.model("credit-risk"))


def make_logs(n: int = 500, seed: int = 0, start: str = "2026-01-01", id_prefix: str = "p",
              version: str = "1") -> pd.DataFrame:
    """A small, valid prediction log of the demo model (for ingestion and query tests)."""
    rng = np.random.default_rng(seed)
    proba_good = rng.uniform(0.05, 0.95, n)
    return pd.DataFrame({
        "prediction_id": [f"{id_prefix}{i}" for i in range(n)],
        "ts": pd.date_range(start, periods=n, freq="min", tz="UTC"),
        "model_version": version,
        "age": rng.integers(18, 80, n).astype(float),
        "income": rng.lognormal(10.5, 0.4, n),
        "loan_amount": rng.uniform(1_000, 40_000, n),
        "loan_term_months": rng.choice([12.0, 24.0, 36.0, 60.0], n),
        "credit_history_years": rng.uniform(0, 30, n),
        "debt_to_income": rng.uniform(0, 0.8, n),
        "num_open_accounts": rng.integers(0, 15, n).astype(float),
        "employment_type": rng.choice(["salaried", "self_employed", "unemployed"], n),
        "housing": rng.choice(["own", "rent", "mortgage"], n),
        "purpose": rng.choice(["car", "home", "education", "business"], n),
        "sex": rng.choice(["male", "female"], n),
        "prediction": np.where(proba_good >= 0.5, "good", "bad"),
        "proba_good": proba_good,
        "proba_bad": 1 - proba_good,
        "latency_ms": rng.gamma(2.0, 20.0, n),
        "status": "ok",
    })


@pytest.fixture
def logs_factory() -> Callable[..., pd.DataFrame]:
    return make_logs


@pytest.fixture
def write_file(tmp_path: Path) -> Iterator[Callable[[pd.DataFrame, str], Path]]:
    """Write a frame as Parquet/CSV/JSONL (by the name's suffix) into a temp folder; return the path."""
    folder = tmp_path / "files"
    folder.mkdir()

    def write(df: pd.DataFrame, name: str) -> Path:
        path = folder / name
        if name.endswith(".parquet"):
            df.to_parquet(path, index=False)
        elif name.endswith(".csv"):
            df.to_csv(path, index=False)
        elif name.endswith(".jsonl"):
            df.to_json(path, orient="records", lines=True, date_format="iso")
        else:
            path.write_bytes(df.to_csv(index=False).encode())
        return path

    yield write


@pytest.fixture
def fresh_caches() -> Iterator[None]:
    """Streamlit's data and resource caches empty before and after the test (page tests run in one
    process, and a cached read of one test's store would answer the next)."""
    st.cache_data.clear()
    st.cache_resource.clear()
    yield
    st.cache_data.clear()
    st.cache_resource.clear()


def demo_config_context(settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                        extra: str) -> Context:
    """The demo config plus ``extra`` TOML (policies, thresholds), sharing the data folder of ``settings``;
    VIGIL_CONFIG points at it for the pages."""
    text = DEMO_CONFIG.read_text().replace('data_dir = "."', f'data_dir = "{settings.data_dir}"')
    config = tmp_path / "vigil.toml"
    config.write_text(text + extra)
    monkeypatch.delenv("VIGIL_DATA_DIR", raising=False)
    monkeypatch.setenv("VIGIL_CONFIG", str(config))
    return load_context(str(config))
