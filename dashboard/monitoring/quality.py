"""Model quality: realised metrics on labelled rows and estimated accuracy (CBPE) on unlabelled ones.

Why both: ground truth arrives late or never. Until it does, the model's own calibrated scores say how
often it should be right; once labels arrive, realised and estimated accuracy are shown together and
their gap is itself a signal (miscalibration or concept drift).

Conventions (also stated on the page and in the README):

* **Positive class** = ``classes[1]`` of the model's configuration (for the demo, "good"): precision,
  recall, F1, ROC AUC and the reliability curve are scikit-learn's with ``pos_label=classes[1]``.
  Precision/recall with an empty denominator are 0, as scikit-learn's default ``zero_division``. With
  more than two classes, precision/recall/F1 are macro averages and ROC AUC / calibration are not computed.
* **ROC AUC** is exact (Mann-Whitney with ties counted one half), computed in SQL.
* **Calibration**: reliability curve of the positive-class probability in 10 equal-width bins (as
  ``sklearn.calibration.calibration_curve(strategy="uniform")``); ECE = sum over bins of
  ``n_bin / n * |mean probability - share positive|``.
* **CBPE estimated accuracy** = mean over rows of the probability of the predicted class (``proba_<class>``,
  or ``score``): for a binary model that predicts the more likely class this is ``max(p, 1 - p)``. It
  assumes calibrated scores and no concept drift (P(y | x) unchanged since calibration); covariate shift
  is fine.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from connectors.queries import quality as q
from connectors.windows import Window
from dashboard import progress
from dashboard.context import Context
from dashboard.errors import VigilError

__all__ = ["CBPE_ASSUMPTIONS", "ActualQuality", "LabelDelay", "QualityReport", "classification_metrics",
           "compute_quality", "expected_calibration_error", "positive_class"]

CBPE_ASSUMPTIONS = (
    "Estimated accuracy (confidence-based performance estimation, CBPE) is the mean probability the model "
    "gave to the class it predicted. It is trustworthy only when (1) the scores are calibrated (a 0.8 is "
    "right 80% of the time; see the reliability curve) and (2) there is no concept drift: the relation "
    "between features and outcome has not changed since calibration. Covariate shift (drifting inputs) is "
    "fine. A gap between estimated and realised accuracy on labelled rows breaks one of these assumptions.")


@dataclass(frozen=True)
class ActualQuality:
    """Realised quality on labelled rows; every value is None (and ``reason`` says why) without labels."""

    n_labelled: int
    accuracy: float | None = None
    precision: float | None = None
    recall: float | None = None
    f1: float | None = None
    roc_auc: float | None = None
    ece: float | None = None
    reliability: pd.DataFrame = field(default_factory=pd.DataFrame)  # bin, n, mean_proba, frac_positive
    confusion: pd.DataFrame = field(default_factory=pd.DataFrame)  # label, prediction, n
    reason: str | None = None


@dataclass(frozen=True)
class LabelDelay:
    """Time from prediction to its (current) label: summary in hours and a histogram in whole days."""

    n: int
    p50_hours: float | None
    p90_hours: float | None
    p99_hours: float | None
    mean_hours: float | None
    max_hours: float | None
    n_negative: int  # labels timed before their prediction (clock skew or a bad file)
    histogram: pd.DataFrame  # day (0 = under 24 h, last bin = that many days or more), n


@dataclass(frozen=True)
class QualityReport:
    """Realised and estimated quality of one model (optionally one version) over a window."""

    model: str
    window: Window
    version: str | None
    bucket: str
    positive_class: str | None
    n_rows: int
    n_labelled: int
    actual: ActualQuality
    estimated_accuracy: float | None  # CBPE over the unlabelled rows
    estimated_accuracy_all: float | None  # CBPE over every row (comparable across windows)
    estimated_accuracy_labelled: float | None  # CBPE over the labelled rows (compare with actual)
    estimate_reason: str | None
    rows_without_score: int  # rows with neither score nor the predicted class's probability (empty or NaN)
    label_delay: LabelDelay
    buckets: pd.DataFrame  # bucket, n, n_labelled, label_coverage, actual_accuracy, estimated_accuracy, ...
    notes: tuple[str, ...] = ()

    @property
    def label_coverage(self) -> float | None:
        """Labelled / successful predictions: :func:`connectors.queries.quality.label_coverage`, the one
        definition the Overview, the CLI, policies and reports share."""
        return q.label_coverage(self.n_labelled, self.n_rows)

    @property
    def score_missing_share(self) -> float:
        """Share of rows the estimate cannot use: a high share makes the estimate say little."""
        return self.rows_without_score / self.n_rows if self.n_rows else 0.0

    @property
    def estimation_gap(self) -> float | None:
        """Realised minus estimated accuracy on the same (labelled) rows."""
        if self.actual.accuracy is None or self.estimated_accuracy_labelled is None:
            return None
        return self.actual.accuracy - self.estimated_accuracy_labelled

    def summary(self) -> dict[str, Any]:
        a = self.actual
        return {"model": self.model, "window": self.window.label, "version": self.version,
                "positive_class": self.positive_class, "rows": self.n_rows, "labelled_rows": self.n_labelled,
                "label_coverage": self.label_coverage, "accuracy": a.accuracy, "precision": a.precision,
                "recall": a.recall, "f1": a.f1, "roc_auc": a.roc_auc, "ece": a.ece,
                "actual_reason": a.reason, "estimated_accuracy": self.estimated_accuracy,
                "estimated_accuracy_all": self.estimated_accuracy_all,
                "estimated_accuracy_labelled": self.estimated_accuracy_labelled,
                "estimation_gap": self.estimation_gap, "estimate_reason": self.estimate_reason,
                "rows_without_score": self.rows_without_score, "score_missing_share": self.score_missing_share,
                "label_delay_p50_hours": self.label_delay.p50_hours,
                "label_delay_p90_hours": self.label_delay.p90_hours}


def positive_class(classes: tuple[str, ...]) -> str | None:
    """``classes[1]`` for a binary model (scikit-learn's ``pos_label`` for sorted 0/1 labels), else None."""
    return classes[1] if len(classes) == 2 else None


def _ratio(num: float, den: float) -> float:
    return num / den if den else 0.0


def classification_metrics(confusion: pd.DataFrame, positive: str | None) -> dict[str, float | None]:
    """Accuracy, precision, recall and F1 from (label, prediction, n) counts, as scikit-learn computes them.

    Binary (``positive`` given): the positive class's precision/recall/F1. Otherwise macro averages over
    the labels seen in either column.
    """
    total = float(confusion["n"].sum())
    if total == 0:
        return {"accuracy": None, "precision": None, "recall": None, "f1": None}
    correct = float(confusion.loc[confusion["label"] == confusion["prediction"], "n"].sum())

    def prf(c: str) -> tuple[float, float, float]:
        tp = float(confusion.loc[(confusion["label"] == c) & (confusion["prediction"] == c), "n"].sum())
        pred = float(confusion.loc[confusion["prediction"] == c, "n"].sum())
        true = float(confusion.loc[confusion["label"] == c, "n"].sum())
        p, r = _ratio(tp, pred), _ratio(tp, true)
        return p, r, _ratio(2 * tp, pred + true)

    if positive is not None:
        p, r, f = prf(positive)
    else:
        labels = sorted(set(confusion["label"]) | set(confusion["prediction"]))
        scores = np.array([prf(c) for c in labels])
        p, r, f = (float(x) for x in scores.mean(axis=0))
    return {"accuracy": correct / total, "precision": p, "recall": r, "f1": f}


def expected_calibration_error(bins: pd.DataFrame) -> float | None:
    """ECE over reliability bins (n, mean_proba, frac_positive): weighted mean absolute gap."""
    n = float(bins["n"].sum()) if len(bins) else 0.0
    if n == 0:
        return None
    return float((bins["n"] / n * (bins["mean_proba"] - bins["frac_positive"]).abs()).sum())


def _mean(total: Any, count: Any) -> float | None:
    return float(total) / float(count) if count and not pd.isna(total) else None


def _span_message(ctx: Context, model: str, window: Window, version: str | None) -> str:
    from dashboard.monitoring.operations import data_span

    first, last, n = data_span(ctx, model, version)
    what = f"model {model}" + (f" version {version}" if version else "")
    if n == 0:
        return f"no predictions of {what} are in the log store; ingest logs with `vigil ingest --model {model} FILES`"
    return (f"no successful predictions of {what} in {window.label}; its logs cover "
            f"{first:%Y-%m-%d %H:%M}..{last:%Y-%m-%d %H:%M} UTC: choose a window inside that range")


@progress.step("quality and calibration")
def compute_quality(ctx: Context, model: str, window: Window, version: str | None = None,
                    bucket: str = "day") -> QualityReport:
    """Realised quality on labelled rows, CBPE estimates, label coverage and delay, and both per bucket.

    Only successful predictions (``status = 'ok'``) count. Raises :class:`VigilError` for a window with
    none; a window without labels gives a report whose ``actual`` values are None with the reason.
    """
    if bucket not in q.BUCKETS:
        raise VigilError(f"bucket '{bucket}' is not one of {', '.join(q.BUCKETS)}")
    cfg = ctx.model(model)
    schema = ctx.schema(model)
    pos = positive_class(cfg.classes)
    rel, params = q.relation(schema, pos, window.start, window.end, version)
    with ctx.connect(model) as con:
        ctx.store.ensure_model(schema, con)
        per_bucket = q.bucket_sums(con, rel, params, bucket)
        totals = per_bucket.drop(columns="bucket").sum(min_count=1)  # every column is a count or a sum
        n_rows = int(per_bucket["n"].sum())
        if n_rows == 0:
            raise VigilError(_span_message(ctx, model, window, version))
        # One join of the window's logs with their labels for the four label queries.
        with q.labelled_rows(con, rel, params) as (labelled, labelled_params):
            confusion = q.confusion(con, labelled, labelled_params)
            auc: float | None = None
            reliability = pd.DataFrame(columns=["bin", "n", "mean_proba", "frac_positive"])
            if pos is not None and int(totals["n_labelled"]):
                auc, _, _ = q.roc_auc(con, labelled, labelled_params, pos)
                reliability = q.calibration_bins(con, labelled, labelled_params, pos)
            delay_summary, delay_hist = q.label_delay(con, labelled, labelled_params)

    n_labelled = int(totals["n_labelled"])
    notes: list[str] = []
    if n_labelled == 0:
        actual = ActualQuality(
            n_labelled=0, confusion=confusion, reliability=reliability,
            reason=(f"none of the {n_rows} predictions in {window.label} has a ground-truth label yet, so "
                    "realised quality is unknown (estimated accuracy below does not need labels); ingest "
                    f"labels with `vigil ingest --labels --model {model} FILES` or sync them from Label Studio"))
    else:
        m = classification_metrics(confusion, pos)
        reason = None
        if pos is None:
            reason = "ROC AUC and calibration are computed for binary models only"
        elif auc is None:
            reason = "ROC AUC needs labelled rows of both classes; the labelled rows hold only one"
        actual = ActualQuality(n_labelled=n_labelled, accuracy=m["accuracy"], precision=m["precision"],
                               recall=m["recall"], f1=m["f1"], roc_auc=auc,
                               ece=expected_calibration_error(reliability) if pos is not None else None,
                               reliability=reliability, confusion=confusion, reason=reason)
        unknown = sorted(set(confusion["label"]) - set(cfg.classes))
        if unknown:
            notes.append(f"labels {unknown} are not classes of the model; they count as wrong predictions")

    est_all = _mean(totals["sum_conf"], totals["n_conf"])
    est_unl = _mean(totals["sum_conf_unlabelled"], totals["n_conf_unlabelled"])
    est_lab = _mean(totals["sum_conf_labelled"], totals["n_conf_labelled"])
    estimate_reason = None
    if est_all is None:
        estimate_reason = ("the logs carry no score or proba_<class> values, so accuracy cannot be estimated; "
                           "log the probability of the predicted class as `score`")
    elif est_unl is None:
        estimate_reason = "every prediction in the window is labelled: nothing left to estimate"
    no_score = n_rows - int(totals["n_conf"])
    if no_score and est_all is not None:
        notes.append(f"{no_score} predictions have no score ({no_score / n_rows:.1%}; empty or NaN) and are left "
                     "out of the estimate")

    b = per_bucket.copy()
    b["label_coverage"] = b["n_labelled"] / b["n"]
    b["actual_accuracy"] = b["n_correct"] / b["n_labelled"].where(b["n_labelled"] > 0)
    b["estimated_accuracy"] = b["sum_conf"] / b["n_conf"].where(b["n_conf"] > 0)
    b["estimated_accuracy_labelled"] = b["sum_conf_labelled"] / b["n_conf_labelled"].where(b["n_conf_labelled"] > 0)
    b["estimated_accuracy_unlabelled"] = (b["sum_conf_unlabelled"]
                                          / b["n_conf_unlabelled"].where(b["n_conf_unlabelled"] > 0))
    b["gap"] = b["actual_accuracy"] - b["estimated_accuracy_labelled"]
    keep = ["bucket", "n", "n_labelled", "label_coverage", "actual_accuracy", "estimated_accuracy",
            "estimated_accuracy_labelled", "estimated_accuracy_unlabelled", "gap"]

    delay = LabelDelay(histogram=delay_hist, **{k: delay_summary[k] for k in (
        "n", "p50_hours", "p90_hours", "p99_hours", "mean_hours", "max_hours", "n_negative")})
    if delay.n_negative:
        notes.append(f"{delay.n_negative} labels are timed before their prediction (check the label files' ts)")
    return QualityReport(
        model=model, window=window, version=version, bucket=bucket, positive_class=pos, n_rows=n_rows,
        n_labelled=n_labelled, actual=actual, estimated_accuracy=est_unl, estimated_accuracy_all=est_all,
        estimated_accuracy_labelled=est_lab, estimate_reason=estimate_reason, rows_without_score=no_score,
        label_delay=delay,
        buckets=b[keep], notes=tuple(notes))
