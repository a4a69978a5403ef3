"""Settings: one typed object from vigil.toml + VIGIL_* env; a bad file lists every problem with its key."""

from __future__ import annotations

from pathlib import Path

import pytest

from dashboard.settings import ENV_KEYS, ConfigError, load_settings, log_schema, settings_from_mapping

REPO = Path(__file__).resolve().parents[1]


def minimal_model(**over):
    spec = {"features": {"x": "numerical", "c": "categorical"}, "classes": ["no", "yes"], "favourable": "yes"}
    spec.update(over)
    return spec


def test_demo_config_loads_with_embedded_defaults(tmp_path, monkeypatch):
    monkeypatch.delenv("VIGIL_DATA_DIR", raising=False)
    s = load_settings(REPO / "dashboard/demo/vigil.toml", env={})
    cfg = s.model("credit-risk")
    assert cfg.favourable == "good" and cfg.classes == ("bad", "good")
    assert [p.name for p in cfg.protected] == ["sex", "age"]
    age = cfg.protected[1]
    assert age.is_binned and age.bucket_labels() == ("18-24", "25-39", "40-64", "65+")
    assert s.duckdb_path == (REPO / "dashboard/demo/vigil.duckdb").resolve()
    assert s.mlflow_tracking_uri.startswith("sqlite:///")
    schema = log_schema(cfg)
    assert schema.table == "logs_credit_risk" and schema.columns["sex"] == "categorical"


def test_environment_overrides_file(tmp_path):
    env = {"VIGIL_DATA_DIR": str(tmp_path), "VIGIL_MLFLOW_URI": "http://127.0.0.1:5999",
           "VIGIL_LABEL_STUDIO_TOKEN": "abc", "VIGIL_LOCK_TIMEOUT": "5"}
    s = load_settings(REPO / "dashboard/demo/vigil.toml", env=env)
    assert s.duckdb_path == tmp_path / "vigil.duckdb"
    assert s.mlflow_tracking_uri == "http://127.0.0.1:5999"
    assert s.mlflow_ui_url == "http://127.0.0.1:5000"  # the file's explicit UI link wins over the derived one
    assert s.label_studio_token == "abc" and s.lock_timeout_s == 5


def test_no_config_file_means_defaults_under_dot_vigil(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    s = load_settings(env={})
    assert s.data_dir == tmp_path / ".vigil" and s.models == {}


def test_explicit_missing_config_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="VIGIL_CONFIG"):
        load_settings(env={"VIGIL_CONFIG": str(tmp_path / "nope.toml")})


def test_invalid_toml_names_the_file(tmp_path):
    bad = tmp_path / "vigil.toml"
    bad.write_text("[models\nx = 1")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(bad, env={})


def test_every_problem_is_listed_with_its_key():
    raw = {
        "vigil": {"mlflow_tracking_uri": "ftp://nope", "label_studio_token": "secret"},
        "surprise": 1,
        "models": {
            "m1": minimal_model(features={"x": "float", "bad col": "numerical"}, classes=["a"], favourable="z",
                                thresholds={"drift_share": "high", "nope": 1},
                                protected=[{"name": "age", "bins": [1, 0], "privileged": []}],
                                policies=[{"metric": "latency_p95", "comparator": "~", "threshold": "x"}],
                                reference={"source": "window"}),
            "9bad": minimal_model(),
        },
    }
    with pytest.raises(ConfigError) as info:
        settings_from_mapping(raw, env={})
    text = str(info.value)
    for key in ["vigil.mlflow_tracking_uri", "vigil.label_studio_token", "surprise", "models.m1.features.x",
                "models.m1.features.bad col", "models.m1.classes", "models.m1.favourable",
                "models.m1.thresholds.drift_share", "models.m1.thresholds.nope", "models.m1.protected[0].bins",
                "models.m1.protected[0].privileged", "models.m1.policies[0].comparator",
                "models.m1.policies[0].threshold", "models.m1.reference.window", "models.9bad"]:
        assert key in text, f"{key} missing from:\n{text}"
    assert len(info.value.problems) >= 15


def test_policies_and_overrides_parse():
    raw = {"models": {"m": minimal_model(
        policies=[{"name": "p95", "metric": "latency_p95_ms", "comparator": "<=", "threshold": 150,
                   "severity": "warning", "window": "7d"},
                  {"metric": "disparate_impact", "comparator": "within", "threshold": [0.8, 1.25],
                   "attribute": "sex"}],
        drift={"x": {"method": "psi", "threshold": 0.2}})}}
    m = settings_from_mapping(raw, env={}).model("m")
    assert m.policies[0].severity == "warning" and m.policies[0].threshold == 150.0
    assert m.policies[1].threshold == (0.8, 1.25) and m.policies[1].params == {"attribute": "sex"}
    assert m.drift_overrides["x"].method == "psi" and m.drift_overrides["x"].threshold == 0.2


def test_unknown_model_lists_configured_ones():
    s = settings_from_mapping({"models": {"a": minimal_model(), "b": minimal_model()}}, env={})
    with pytest.raises(ConfigError, match="configured: a, b"):
        s.model("c")


def test_every_environment_variable_is_documented_in_the_readme():
    readme = (REPO / "README.md").read_text()
    missing = [k for k in ENV_KEYS if k not in readme]
    assert not missing, f"README does not document {missing}"


def test_separation_of_duties_from_the_file_or_the_environment():
    model = {"m": minimal_model()}
    assert settings_from_mapping({"models": model}).separation_of_duties is True
    off = settings_from_mapping({"vigil": {"separation_of_duties": False}, "models": model})
    assert off.separation_of_duties is False
    assert settings_from_mapping({"models": model}, env={"VIGIL_SEPARATION_OF_DUTIES": "off"}).separation_of_duties \
        is False
    back_on = settings_from_mapping({"vigil": {"separation_of_duties": False}, "models": model},
                                    env={"VIGIL_SEPARATION_OF_DUTIES": "on"})
    assert back_on.separation_of_duties is True
    with pytest.raises(ConfigError, match=r"separation_of_duties.*'maybe' is not on or off"):
        settings_from_mapping({"models": model}, env={"VIGIL_SEPARATION_OF_DUTIES": "maybe"})
