"""Benchmark: Vigil's fairness metrics (SQL counts + formulas) vs AIF360 on the same rows, one run.

Data: ``--rows`` predictions with one protected attribute (sex), a favourable class, and ground truth for
60% of the rows in a separate labels table (as in the log store). Both sides start from the same rows
with their label attached: Vigil from a DuckDB table (one GROUP BY, then every metric from the counts),
AIF360 from the same rows as a pandas frame (encode, build the BinaryLabelDatasets: all rows for the
prediction-only metrics, labelled rows for the rest; then the same 13 metrics and per-group rates).
Also timed: Vigil's production path, where the GROUP BY first joins the log with its labels table
(``vigil_with_label_join_seconds``); AIF360's equivalent fetch-and-join is not timed.
Agreement: the largest absolute difference over every metric and rate.
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _common import median_seconds, peak_rss_mb, write_result

from connectors.queries.fairness import confusion_counts
from dashboard.monitoring.fairness_metrics import METRIC_KEYS, Counts, group_rates, metric_rates, total

PRIVILEGED, UNPRIVILEGED = ["male"], ["female"]
RATES = ("selection_rate", "base_rate", "tpr", "fpr", "fnr", "precision", "error_rate")


def make_data(con: duckdb.DuckDBPyConnection, rows: int) -> None:
    """Deterministic rows (hash-based draws): version-2-like gap against women, 60% labelled."""
    con.execute(f"""
        CREATE OR REPLACE TABLE logs AS
        SELECT 'p' || i AS prediction_id, sex, truth,
               CASE WHEN u3 < (CASE WHEN sex = 'female' THEN 0.35 ELSE 0.55 END) + (CASE WHEN truth THEN 0.3 ELSE 0 END)
                    THEN 'good' ELSE 'bad' END AS prediction, labelled
        FROM (SELECT i,
                     CASE WHEN hash(i, 1) % 1000 < 480 THEN 'female' ELSE 'male' END AS sex,
                     hash(i, 2) % 1000 < 550 AS truth,
                     (hash(i, 3) % 1000000) / 1e6 AS u3,
                     hash(i, 4) % 1000 < 600 AS labelled
              FROM range({int(rows)}) t(i));
        CREATE OR REPLACE TABLE labels AS
        SELECT prediction_id, CASE WHEN truth THEN 'good' ELSE 'bad' END AS label FROM logs WHERE labelled;
        CREATE OR REPLACE TABLE logs AS SELECT prediction_id, sex, prediction FROM logs;
    """)


RELATION = "(SELECT t.prediction_id, t.sex, t.prediction, l.label FROM logs t LEFT JOIN labels l USING (prediction_id))"


def vigil(con: duckdb.DuckDBPyConnection, relation: str) -> dict[str, float | None]:
    counts = confusion_counts(con, relation, {"sex": "sex"}, "good")
    by = {str(r["sex"]): Counts.from_mapping(r) for _, r in counts.iterrows()}
    u = total([c for g, c in by.items() if g in UNPRIVILEGED])
    p = total([c for g, c in by.items() if g in PRIVILEGED])
    out: dict[str, float | None] = {k: r.value for k, r in metric_rates(u, p, total(list(by.values()))).items()}
    for side, c in (("privileged", p), ("unprivileged", u)):
        out.update({f"{side}.{k}": r.value for k, r in group_rates(c).items()})
    return out


def reference(frame: pd.DataFrame) -> dict[str, float | None]:
    from aif360.datasets import BinaryLabelDataset
    from aif360.metrics import BinaryLabelDatasetMetric, ClassificationMetric

    priv, unpriv = [{"sex": 1.0}], [{"sex": 0.0}]

    def build(f: pd.DataFrame, truth: pd.Series) -> tuple[Any, Any]:
        df = pd.DataFrame({"sex": (f["sex"] == "male").astype(float).to_numpy(),
                           "y": (truth == "good").astype(float).to_numpy()})
        ds = BinaryLabelDataset(df=df, label_names=["y"], protected_attribute_names=["sex"],
                                favorable_label=1.0, unfavorable_label=0.0)
        pred = ds.copy(deepcopy=True)
        pred.labels = (f["prediction"] == "good").astype(float).to_numpy().reshape(-1, 1)
        return ds, pred

    ds_all, pr_all = build(frame, frame["label"].where(frame["label"].notna(), frame["prediction"]))
    lab = frame[frame["label"].notna()]
    ds, pr = build(lab, lab["label"])
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        cm_all = ClassificationMetric(ds_all, pr_all, unprivileged_groups=unpriv, privileged_groups=priv)
        cm = ClassificationMetric(ds, pr, unprivileged_groups=unpriv, privileged_groups=priv)
        bl = BinaryLabelDatasetMetric(ds, unprivileged_groups=unpriv, privileged_groups=priv)
        out = {
            "disparate_impact": cm_all.disparate_impact(),
            "statistical_parity_difference": cm_all.statistical_parity_difference(),
            "equal_opportunity_difference": cm.equal_opportunity_difference(),
            "average_odds_difference": cm.average_odds_difference(),
            "average_abs_odds_difference": cm.average_abs_odds_difference(),
            "false_positive_rate_difference": cm.false_positive_rate_difference(),
            "false_negative_rate_difference": cm.false_negative_rate_difference(),
            "error_rate_difference": cm.error_rate_difference(),
            "base_rate_disparate_impact": bl.disparate_impact(),
            "base_rate_parity_difference": bl.statistical_parity_difference(),
            "generalized_entropy_index": cm.generalized_entropy_index(),
            "theil_index": cm.theil_index(),
            "between_group_theil_index": cm.between_group_theil_index(),
        }
        for side, flag in (("privileged", True), ("unprivileged", False)):
            out.update({
                f"{side}.selection_rate": cm_all.selection_rate(privileged=flag),
                f"{side}.base_rate": bl.base_rate(privileged=flag),
                f"{side}.tpr": cm.true_positive_rate(privileged=flag),
                f"{side}.fpr": cm.false_positive_rate(privileged=flag),
                f"{side}.fnr": cm.false_negative_rate(privileged=flag),
                f"{side}.precision": cm.precision(privileged=flag),
                f"{side}.error_rate": cm.error_rate(privileged=flag),
            })
    return {k: float(v) for k, v in out.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=None, help="result file (default bench/results/fairness.json)")
    args = parser.parse_args()

    con = duckdb.connect()
    t0 = time.perf_counter()
    make_data(con, args.rows)
    setup_s = time.perf_counter() - t0
    logging.getLogger().setLevel(logging.ERROR)  # aif360 warns about optional extras on import
    import aif360.metrics  # noqa: F401  (import cost is not part of either side)

    con.execute(f"CREATE TABLE joined AS SELECT * FROM {RELATION}")  # the rows AIF360 gets, as a table
    ours: dict[str, float | None] = {}
    joined_s = median_seconds(lambda: ours.update(vigil(con, RELATION)), args.repeats)

    def run_vigil() -> None:
        ours.update(vigil(con, "joined"))

    vigil_s = median_seconds(run_vigil, args.repeats)
    vigil_rss = peak_rss_mb()
    frame = con.execute("SELECT * FROM joined").df()
    theirs: dict[str, float | None] = {}

    def run_ref() -> None:
        theirs.update(reference(frame))

    ref_s = median_seconds(run_ref, args.repeats)
    diffs = [abs(float(ours[k]) - float(theirs[k]))  # type: ignore[arg-type]
             for k in ours if ours[k] is not None and theirs[k] is not None and math.isfinite(float(theirs[k]))]  # type: ignore[arg-type]
    compared = len(diffs)
    result = {
        "rows": args.rows, "vigil_seconds": round(vigil_s, 4), "reference": "aif360 0.6.1 (BinaryLabelDataset + "
        "ClassificationMetric + BinaryLabelDatasetMetric)", "reference_seconds": round(ref_s, 4),
        "speedup": round(ref_s, 4) / round(vigil_s, 4), "peak_rss_mb": round(peak_rss_mb(), 1), "vigil_peak_rss_mb": round(vigil_rss, 1),
        "vigil_with_label_join_seconds": round(joined_s, 4), "speedup_with_label_join": ref_s / joined_s,
        "max_abs_diff": max(diffs) if diffs else None, "metrics_compared": compared,
        "metric_keys": len(METRIC_KEYS), "repeats": args.repeats, "data_setup_seconds": round(setup_s, 2),
        "disparate_impact": ours["disparate_impact"],
    }
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        import json

        args.out.write_text(json.dumps({"name": "fairness", **result}, indent=2))
    else:
        write_result("fairness", result)
    print(f"fairness: {args.rows:,} rows  vigil {vigil_s:.3f}s (with the label join {joined_s:.3f}s)  "
          f"aif360 {ref_s:.3f}s  speedup {ref_s / vigil_s:.1f}x ({ref_s / joined_s:.1f}x)  "
          f"max|diff| {result['max_abs_diff']:.2e} over {compared} values  peak RSS {result['peak_rss_mb']} MB")


if __name__ == "__main__":
    main()
