"""Bias mitigation for retraining: AIF360's Reweighing turned into per-row training weights.

Why: when the Fairness page shows a gap that comes from the training labels (one group historically
recorded with fewer favourable outcomes), the retraining pipeline can fit the next candidate with
Kamiran & Calders weights, which make group membership and outcome statistically independent in the
weighted training set: w(g, y) = P(g) P(y) / P(g, y). AIF360's implementation is used as is.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from dashboard.errors import VigilError
from dashboard.settings import ModelConfig, ProtectedAttribute

PRIVILEGED, UNPRIVILEGED, NEITHER = 1.0, 0.0, -1.0


def group_codes(values: pd.Series, attr: ProtectedAttribute, privileged: Sequence[str]) -> np.ndarray:
    """1 for privileged rows, 0 for unprivileged, -1 for missing (or outside the bins): in neither group."""
    if attr.is_binned:
        labels = list(attr.bucket_labels())
        text = pd.cut(pd.to_numeric(values, errors="coerce"), bins=list(attr.bins), labels=labels,
                      right=False).astype(object)
    else:
        text = values.astype(object)
    present = text.notna().to_numpy()
    is_priv = text.astype(str).isin([str(p) for p in privileged]).to_numpy()
    return np.where(~present, NEITHER, np.where(is_priv, PRIVILEGED, UNPRIVILEGED))


def reweighing_weights(frame: pd.DataFrame, cfg: ModelConfig, label_column: str = "label",
                       attribute: str | None = None, privileged: Sequence[str] | None = None,
                       sample_weight: Sequence[float] | None = None) -> pd.Series:
    """Instance weights from AIF360 ``Reweighing`` for ``frame`` (indexed like it).

    ``attribute`` defaults to the model's first protected attribute, ``privileged`` to its configured
    values; labels equal to ``cfg.favourable`` are the favourable outcome. Rows with no attribute value
    keep their input weight (AIF360 leaves rows outside both groups unchanged).
    """
    from aif360.algorithms.preprocessing import Reweighing
    from aif360.datasets import BinaryLabelDataset

    if not cfg.protected:
        raise VigilError(f"model '{cfg.name}' has no protected attribute to reweigh by")
    attr = cfg.protected[0] if attribute is None else next(
        (a for a in cfg.protected if a.name == attribute), None)
    if attr is None:
        raise VigilError(f"'{attribute}' is not a protected attribute of model '{cfg.name}' "
                         f"(configured: {', '.join(cfg.protected_names)})")
    for col in (attr.name, label_column):
        if col not in frame.columns:
            raise VigilError(f"the training data has no column '{col}' (columns: {', '.join(map(str, frame.columns))})")
    if frame[label_column].isna().any():
        raise VigilError(f"the training data has rows without a label in '{label_column}'; drop them first")
    priv = tuple(privileged) if privileged is not None else attr.privileged
    codes = group_codes(frame[attr.name], attr, priv)
    y = (frame[label_column].astype(str) == str(cfg.favourable)).astype(float).to_numpy()
    for what, mask in (("privileged", codes == PRIVILEGED), ("unprivileged", codes == UNPRIVILEGED)):
        for outcome in (0.0, 1.0):
            if not np.any(mask & (y == outcome)):
                kind = "favourable" if outcome else "unfavourable"
                raise VigilError(f"reweighing needs every (group, outcome) pair: the {what} group of "
                                 f"'{attr.name}' has no {kind} label in the training data")
    w = np.ones(len(frame)) if sample_weight is None else np.asarray(sample_weight, dtype=float)
    data = pd.DataFrame({"g": codes, "y": y, "w": w})
    ds = BinaryLabelDataset(df=data, label_names=["y"], protected_attribute_names=["g"],
                            instance_weights_name="w", favorable_label=1.0, unfavorable_label=0.0)
    rw = Reweighing(unprivileged_groups=[{"g": UNPRIVILEGED}], privileged_groups=[{"g": PRIVILEGED}])
    out = rw.fit_transform(ds)
    return pd.Series(np.asarray(out.instance_weights, dtype=float), index=frame.index, name="weight")
