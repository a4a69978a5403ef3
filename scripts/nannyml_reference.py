"""Run NannyML on Parquet files and print its per-chunk results as JSON (run with NannyML's own python).

Vigil's cross-check tests and bench/nannyml.py call this in the virtualenv scripts/nannyml.sh installs,
because NannyML's dependencies conflict with Vigil's. Input: one JSON spec on the command line::

    {"method": "cbpe" | "reconstruction" | "domain_classifier", "reference": "ref.parquet",
     "analysis": "cur.parquet", "timestamp": "ts", "chunk_period": "D", ...method options}

``{"jobs": [spec, ...]}`` runs several in one process (NannyML takes seconds to import) and prints
``{"results": [...]}``. Output of one (stdout): {"seconds": fit + estimate time, "chunks": [{"key": ..., "<metric>": {...}}, ...], ...}.
"""

from __future__ import annotations

import json
import math
import sys
import time
import warnings
from typing import Any

import pandas as pd


def _num(x: Any) -> Any:
    if isinstance(x, bool):
        return x
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None if x is None else str(x)
    return v if math.isfinite(v) else None


def _records(data: pd.DataFrame, metrics: list[str], fields: list[str]) -> list[dict[str, Any]]:
    out = []
    for _, row in data.iterrows():
        rec: dict[str, Any] = {"key": str(row[("chunk", "key")])}
        for m in metrics:
            rec[m] = {f: _num(row[(m, f)]) for f in fields if (m, f) in row.index}
        out.append(rec)
    return out


def cbpe(spec: dict[str, Any], ref: pd.DataFrame, cur: pd.DataFrame) -> dict[str, Any]:
    import nannyml as nml

    metrics = spec.get("metrics", ["roc_auc", "f1", "precision", "recall", "specificity", "accuracy"])
    est = nml.CBPE(y_pred_proba="u", y_pred="yp", y_true="yt", timestamp_column_name=spec["timestamp"],
                   metrics=metrics, chunk_period=spec["chunk_period"], problem_type="classification_binary")
    t0 = time.perf_counter()
    est.fit(ref)
    res = est.estimate(cur)
    seconds = time.perf_counter() - t0
    data = res.filter(period="analysis").to_df()
    fields = ["value", "sampling_error", "realized", "upper_confidence_boundary", "lower_confidence_boundary",
              "upper_threshold", "lower_threshold", "alert"]
    return {"seconds": seconds, "needs_calibration": bool(est.needs_calibration),
            "chunks": _records(data, metrics, fields)}


def multivariate(spec: dict[str, Any], ref: pd.DataFrame, cur: pd.DataFrame) -> dict[str, Any]:
    import nannyml as nml

    kwargs = dict(timestamp_column_name=spec["timestamp"], chunk_period=spec["chunk_period"])
    if spec["method"] == "reconstruction":
        calc = nml.DataReconstructionDriftCalculator(column_names=spec["columns"], **kwargs)
        metric = "reconstruction_error"
    else:  # options: e.g. {"hyperparameters": {...}} (LightGBM's, replacing NannyML's defaults)
        calc = nml.DomainClassifierCalculator(feature_column_names=spec["columns"], **kwargs,
                                              **spec.get("options", {}))
        metric = "domain_classifier_auroc"
    t0 = time.perf_counter()
    calc.fit(ref)
    res = calc.calculate(cur)
    seconds = time.perf_counter() - t0
    fields = ["value", "sampling_error", "upper_confidence_boundary", "lower_confidence_boundary",
              "upper_threshold", "lower_threshold", "alert"]
    return {"seconds": seconds, "chunks": _records(res.filter(period="analysis").to_df(), [metric], fields),
            "reference_chunks": _records(res.filter(period="reference").to_df(), [metric], fields)}


def run(spec: dict[str, Any]) -> dict[str, Any]:
    ref = pd.read_parquet(spec["reference"])
    cur = pd.read_parquet(spec["analysis"])
    return cbpe(spec, ref, cur) if spec["method"] == "cbpe" else multivariate(spec, ref, cur)


def main() -> None:
    spec = json.loads(sys.argv[1])
    warnings.filterwarnings("ignore")
    out = {"results": [run(s) for s in spec["jobs"]]} if "jobs" in spec else run(spec)
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
