"""Train the demo credit-risk model and register it in MLflow (the demo's ``training_command``).

Run as ``python -m dashboard.demo.train --model credit-risk [--config PATH] [--include-labels]
[--reweighing] [--seed N]``. It trains a real scikit-learn pipeline, logs params, holdout metrics,
the model with its signature, the training data (as an MLflow dataset input with digest, and as the
artifact ``training_data/train.parquet`` that Vigil uses as drift reference), a model card, registers
a new version and points the ``challenger`` alias at it. The last line printed is
``VIGIL_RESULT {"run_id": ..., "model_version": ...}`` so a retraining job can pick the result up.
:func:`train_model` is the same thing as an importable function.
"""

from __future__ import annotations

import argparse
import json
import logging
import subprocess
import sys
import tempfile
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from dashboard.demo.population import CATEGORICAL, FEATURES, LABEL, NUMERICAL, training_frame
from dashboard.settings import Settings, load_settings

Variant = Literal["fair", "biased"]
LOG_FEATURES: tuple[str, ...] = ("income", "loan_amount")
DEFAULT_ROWS = 20_000
FEMALE_FLIP = 0.3  # share of women's good outcomes recorded as bad in the biased variant's sample


@dataclass(frozen=True)
class TrainResult:
    """What a training run produced."""

    run_id: str
    model_version: str
    metrics: dict[str, float]
    training_rows: int
    model: Any = field(repr=False, default=None)  # the fitted sklearn pipeline (for in-process scoring)


def build_pipeline(extra_categorical: tuple[str, ...] = (), seed: int = 0) -> Any:
    """Log-scaled money amounts, standardised numbers, one-hot categories, logistic regression. Missing
    numbers are imputed with the training median (an input arriving empty, as in the demo's data-quality
    incident, is scored rather than failing the request; with complete training data the imputer changes
    nothing)."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline, make_pipeline
    from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

    plain = [c for c in NUMERICAL if c not in LOG_FEATURES]
    pre = ColumnTransformer([
        ("money", make_pipeline(FunctionTransformer(np.log1p, feature_names_out="one-to-one"),
                                SimpleImputer(strategy="median"), StandardScaler()), list(LOG_FEATURES)),
        ("num", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), plain),
        ("cat", OneHotEncoder(handle_unknown="ignore"), [*CATEGORICAL, *extra_categorical]),
    ])
    return Pipeline([("pre", pre), ("clf", LogisticRegression(max_iter=2000, C=1.0, random_state=seed))])


def reweighing_weights(groups: pd.Series, labels: pd.Series) -> np.ndarray:
    """Kamiran & Calders reweighing: w(g, y) = P(g) P(y) / P(g, y), making group and outcome independent."""
    n = len(labels)
    g = groups.astype(str).to_numpy()
    y = labels.astype(str).to_numpy()
    w = np.ones(n)
    for gv in np.unique(g):
        for yv in np.unique(y):
            mask = (g == gv) & (y == yv)
            if mask.any():
                w[mask] = (np.mean(g == gv) * np.mean(y == yv)) / np.mean(mask)
    return w


def labelled_production_rows(settings: Settings, model: str, before: datetime | None,
                             limit: int = 100_000) -> pd.DataFrame:
    """Production rows with a ground-truth label logged before ``before`` (the out-of-time cut-off), with
    their ``prediction_id`` so the run can list what it trained on."""
    from dashboard.context import Context
    from dashboard.lifecycle.evaluation_split import labelled_rows

    return labelled_rows(Context(settings), model, [*FEATURES, "sex"], before=before, limit=limit)


def evaluation_cutoff(settings: Settings, model: str) -> datetime | None:
    """The split Vigil would choose now (used when the trainer runs by hand, without --labels-before)."""
    from dashboard.context import Context
    from dashboard.lifecycle.evaluation_split import plan

    split = plan(Context(settings), model)
    return split.labels_before if split else None


def code_version() -> str | None:
    """The git commit of this checkout, when there is one."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True,
                             text=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


@contextmanager
def _tracking(settings: Settings) -> Iterator[None]:
    """Point MLflow's fluent API at the configured store for the duration of a run, then restore it."""
    import mlflow

    previous = mlflow.get_tracking_uri() if mlflow.is_tracking_uri_set() else None
    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)  # the registry follows the tracking URI
    try:
        yield
    finally:
        mlflow.set_tracking_uri(previous)  # type: ignore[arg-type]  # None unsets it


def _experiment(settings: Settings, model: str) -> str:
    """The model's experiment; artifacts of a local store go to <data_dir>/mlartifacts, not ./mlruns."""
    import mlflow

    exp = mlflow.get_experiment_by_name(model)
    if exp is not None:
        return str(exp.experiment_id)
    location = None
    if not settings.mlflow_tracking_uri.startswith("http"):
        location = (settings.data_dir / "mlartifacts").resolve().as_uri()
    return str(mlflow.create_experiment(model, artifact_location=location))


def train_model(settings: Settings, model: str = "credit-risk", *, seed: int = 7, rows: int = DEFAULT_ROWS,
                include_labels: bool = False, labels_before: datetime | None = None, reweighing: bool = False,
                variant: Variant = "fair", alias: str | None = "challenger", description: str | None = None,
                progress: Callable[[str], None] | None = None) -> TrainResult:
    """Train, evaluate, log and register one version of the demo model; return its run and version.

    With ``include_labels``, labelled production rows logged before ``labels_before`` join the training
    set (default: the cut-off Vigil's out-of-time split chooses now); the rest are the gate's evaluation
    set. The run lists the production rows it used (``training_data/prediction_ids.parquet``)."""
    import mlflow
    import sklearn
    from mlflow.data.pandas_dataset import from_pandas
    from mlflow.models import infer_signature
    from sklearn.metrics import accuracy_score, f1_score, roc_auc_score
    from sklearn.model_selection import train_test_split

    say = progress or (lambda _m: None)
    cfg = settings.model(model)  # a clear ConfigError for an unknown model
    if set(cfg.features) != set(FEATURES):
        from dashboard.errors import VigilError

        raise VigilError(f"models.{model}: the demo training pipeline only knows the credit-risk features "
                         f"({', '.join(FEATURES)}); point training_command at your own training script")
    biased = variant == "biased"
    data = training_frame(seed, rows, female_flip=FEMALE_FLIP if biased else 0.0)
    added = 0
    used_ids = pd.DataFrame({"prediction_id": pd.Series([], dtype="string")})
    if include_labels:
        if labels_before is None:
            labels_before = evaluation_cutoff(settings, model)
        prod = labelled_production_rows(settings, model, labels_before)
        added = len(prod)
        used_ids = pd.DataFrame({"prediction_id": prod["prediction_id"].astype("string")})
        data = pd.concat([data, prod[data.columns]], ignore_index=True)
        say(f"added {added:,} labelled production rows logged before "
            f"{labels_before:%Y-%m-%d %H:%M} UTC" if labels_before else f"added {added:,} labelled production rows")
    inputs = [*FEATURES, "sex"] if biased else list(FEATURES)
    train_df, test_df = train_test_split(data, test_size=0.25, random_state=seed, stratify=data[LABEL])
    pipe = build_pipeline(("sex",) if biased else (), seed=seed)
    weights = reweighing_weights(train_df["sex"], train_df[LABEL]) if reweighing else None
    say("fitting the pipeline")
    pipe.fit(train_df[inputs], train_df[LABEL], clf__sample_weight=weights)

    proba = pipe.predict_proba(test_df[inputs])[:, list(pipe.classes_).index("good")]
    pred = np.where(proba >= 0.5, "good", "bad")
    y = test_df[LABEL].to_numpy()
    female = test_df["sex"].to_numpy() == "female"
    sel_f, sel_m = float(np.mean(pred[female] == "good")), float(np.mean(pred[~female] == "good"))
    metrics = {"accuracy": float(accuracy_score(y, pred)), "f1": float(f1_score(y, pred, pos_label="good")),
               "roc_auc": float(roc_auc_score(y == "good", proba)), "selection_rate_female": sel_f,
               "selection_rate_male": sel_m, "disparate_impact_sex": sel_f / sel_m if sel_m else float("nan")}

    with _tracking(settings), _quiet_mlflow():
        exp_id = _experiment(settings, model)
        with mlflow.start_run(experiment_id=exp_id, run_name=f"{model}-{variant}-seed{seed}") as run:
            run_id = run.info.run_id
            mlflow.log_params({"model_type": "LogisticRegression", "C": 1.0, "seed": seed, "variant": variant,
                               "training_rows": len(train_df), "holdout_rows": len(test_df),
                               "include_labels": include_labels, "production_rows": added,
                               "labels_before": labels_before.isoformat() if labels_before else "none",
                               "reweighing": reweighing, "features": ",".join(inputs),
                               "sklearn_version": sklearn.__version__})
            mlflow.log_metrics(metrics)
            tags: dict[str, str] = {"vigil.variant": variant}
            commit = code_version()
            if commit:
                tags["code_version"] = commit
            mlflow.set_tags(tags)
            with tempfile.TemporaryDirectory(prefix="vigil-train-") as tmp:
                path = Path(tmp) / "train.parquet"
                data.to_parquet(path, index=False)
                mlflow.log_artifact(str(path), "training_data")
                ids_path = Path(tmp) / "prediction_ids.parquet"
                used_ids.to_parquet(ids_path, index=False)
                mlflow.log_artifact(str(ids_path), "training_data")
                source = _dataset_source(mlflow.get_artifact_uri("training_data/train.parquet"),
                                         settings.mlflow_tracking_uri)
                dataset = from_pandas(data, source=source, name=f"{model}-training", targets=LABEL)
                mlflow.log_input(dataset, context="training")
                card = Path(tmp) / "model_card.md"
                card.write_text(model_card(model, variant, inputs, metrics, len(data), added, reweighing,
                                           dataset.digest), encoding="utf-8")
                mlflow.log_artifact(str(card))
            say("logging and registering the model")
            signature = infer_signature(train_df[inputs].head(200), pipe.predict(train_df[inputs].head(200)))
            info = mlflow.sklearn.log_model(
                pipe, name="model", signature=signature, registered_model_name=model,
                input_example=train_df[inputs].head(3),
                skops_trusted_types=["numpy.dtype"],  # the imputer keeps its input dtype; a plain value type
                pip_requirements=[f"scikit-learn=={sklearn.__version__}", f"pandas=={pd.__version__}"])
        version = str(info.registered_model_version)
        client = mlflow.MlflowClient()
        client.update_model_version(model, version, description=description or
                                    f"{variant} logistic-regression pipeline (seed {seed}); see model_card.md")
        if alias:
            client.set_registered_model_alias(model, alias, version)
    return TrainResult(run_id=run_id, model_version=version, metrics=metrics, training_rows=len(data), model=pipe)


def _dataset_source(artifact_uri: str, tracking_uri: str) -> Any:
    """Where the logged training data can be fetched from. Proxied artifacts (``mlflow-artifacts:``) have
    no dataset-source resolver, so they are recorded as the tracking server's artifact download URL."""
    from mlflow.data.http_dataset_source import HTTPDatasetSource

    prefix = "mlflow-artifacts:"
    if artifact_uri.startswith(prefix) and tracking_uri.startswith("http"):
        path = artifact_uri[len(prefix):].lstrip("/")
        return HTTPDatasetSource(f"{tracking_uri.rstrip('/')}/api/2.0/mlflow-artifacts/artifacts/{path}")
    return artifact_uri


@contextmanager
def _quiet_mlflow() -> Iterator[None]:
    """MLflow logs chatty INFO lines and warnings on every run; keep the CLI output readable."""
    logger = logging.getLogger("mlflow")
    level = logger.level
    logger.setLevel(logging.ERROR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            yield
        finally:
            logger.setLevel(level)


def model_card(model: str, variant: str, inputs: list[str], metrics: dict[str, float], rows: int,
               production_rows: int, reweighing: bool, digest: str) -> str:
    """The model card logged with the run (Markdown, the sections Vigil's compliance page expects)."""
    m = {k: f"{v:.3f}" for k, v in metrics.items()}
    bias_note = (f"This version was trained on a historically biased sample in which {FEMALE_FLIP:.0%} of women's "
                 "good outcomes were recorded as bad, and it uses `sex` as an input. It is the demo's example of "
                 "an unfair model and must not be promoted." if variant == "biased"
                 else "The model does not use `sex`; `sex` is logged only to monitor fairness.")
    return f"""# Model card: {model} ({variant})

## Intended use
Scores consumer loan applications as `good` or `bad` credit risk to support (not replace) a credit
officer's decision. Synthetic demo model of Vigil.

## Out-of-scope use
Fully automated rejection of applicants; applicants outside the training population (business loans
above 100k, applicants under 18); any use on real people's data.

## Training data
{rows:,} rows ({production_rows:,} of them labelled production rows), dataset digest `{digest}`,
artifact `training_data/train.parquet`. Inputs: {", ".join(f"`{c}`" for c in inputs)}.

## Evaluation
Holdout (25%, stratified): accuracy {m["accuracy"]}, F1 (good) {m["f1"]}, ROC AUC {m["roc_auc"]}.

## Fairness
Selection rate (predicted good) on the holdout: women {m["selection_rate_female"]}, men
{m["selection_rate_male"]}; disparate impact {m["disparate_impact_sex"]}{" (reweighing applied)" if reweighing else ""}.
{bias_note}

## Limitations
Logistic regression on synthetic data; reported incomes are trusted as given, so income inflation
makes it over-optimistic. Monitor drift on `income` and `purpose`.

## Owners
Credit risk data science team (model owner); model risk management (approver).
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dashboard.demo.train", description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="credit-risk", help="registered model name (as in vigil.toml)")
    parser.add_argument("--config", help="path of vigil.toml (default: VIGIL_CONFIG or ./vigil.toml)")
    parser.add_argument("--include-labels", action="store_true",
                        help="add labelled production rows from the log store to the training set")
    parser.add_argument("--labels-before", type=datetime.fromisoformat, default=None,
                        help="with --include-labels: only production rows logged before this UTC time "
                             "(Vigil passes its out-of-time cut-off; default: the cut-off it would choose now)")
    parser.add_argument("--reweighing", action="store_true", help="reweigh samples so sex and outcome are independent")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--rows", type=int, default=DEFAULT_ROWS, help="synthetic training rows")
    parser.add_argument("--variant", choices=["fair", "biased"], default="fair",
                        help="'biased' reproduces the demo's unfair version 2")
    parser.add_argument("--alias", default="challenger", help="alias to point at the new version")
    args = parser.parse_args(argv)
    from dashboard.errors import USER_ERRORS

    try:
        settings = load_settings(args.config)
        result = train_model(settings, args.model, seed=args.seed, rows=args.rows,
                             include_labels=args.include_labels, labels_before=args.labels_before,
                             reweighing=args.reweighing,
                             variant=args.variant, alias=args.alias or None,
                             progress=lambda m: print(m, flush=True))
    except USER_ERRORS as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 2
    print("metrics: " + ", ".join(f"{k}={v:.3f}" for k, v in result.metrics.items()), flush=True)
    print("VIGIL_RESULT " + json.dumps({"run_id": result.run_id, "model_version": result.model_version}),
          flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
