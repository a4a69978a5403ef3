"""Drift formulas over aggregates (counts, KS numerators, Wasserstein integrals): pure functions.

They reproduce Evidently 0.7's stattests (``evidently/legacy/calculations/stattests``) from the small
aggregates SQL returns, so the verdicts are Evidently's while no row leaves DuckDB. SciPy is imported
where a formula needs it: ``scipy.stats`` alone costs about 0.7 s of every ``vigil`` call's start, and on
windows of more than 1,000 rows the default methods (Wasserstein, Jensen-Shannon) never need it.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

Direction = Literal["p_value", "distance"]
Counts = Sequence[float] | np.ndarray


@dataclass(frozen=True)
class Method:
    """A drift test as Evidently names it, with its default threshold and the direction of drift."""

    name: str
    display: str
    threshold: float
    kind: Direction
    inclusive: bool  # p-value tests: drift when p <= t (KS) or p < t (others); distances: score >= t
    numerical: bool
    categorical: bool

    def drifted(self, score: float, threshold: float) -> bool:
        if math.isnan(score):
            return False
        if self.kind == "p_value":
            return score <= threshold if self.inclusive else score < threshold
        return score >= threshold


METHODS: dict[str, Method] = {m.name: m for m in (
    Method("ks", "K-S p_value", 0.05, "p_value", True, True, False),
    Method("chisquare", "chi-square p_value", 0.05, "p_value", False, False, True),
    Method("z", "Z-test p_value", 0.05, "p_value", False, False, True),
    Method("wasserstein", "Wasserstein distance (normed)", 0.1, "distance", True, True, False),
    Method("jensenshannon", "Jensen-Shannon distance", 0.1, "distance", True, True, True),
    Method("psi", "PSI", 0.1, "distance", True, True, True),
)}


def default_method(column_type: str, n_ref: int, n_unique: int) -> str:
    """Evidently's default test: by reference size (after cleaning) and distinct values of both sides."""
    if n_ref <= 1000:
        if column_type == "numerical" and n_unique > 5:
            return "ks"
        return "chisquare" if n_unique > 2 else "z"
    if column_type == "numerical" and n_unique > 5:
        return "wasserstein"
    return "jensenshannon"


# ----------------------------------------------------------------------------- KS

KS_MAX_EXACT_N = 10_000  # scipy's MAX_AUTO_N: method="auto" is exact when both samples are this small


def ks_pvalue(ks_num: int, n1: int, n2: int) -> float:
    """Two-sided two-sample KS p-value from ``D = ks_num / (n1 n2)``, as ``scipy.stats.ks_2samp``
    (method="auto") computes it: exact when ``max(n1, n2) <= 10000``, else Smirnov's asymptotic
    distribution ``kstwo(round(n1 n2 / (n1 + n2)))``; an exact attempt that fails falls back likewise."""
    d = ks_num / (n1 * n2)
    if max(n1, n2) <= KS_MAX_EXACT_N:
        p = _ks_exact(n1, n2, d)
        if p is not None:
            return p
    m, n = sorted([float(n1), float(n2)], reverse=True)
    en = m * n / (m + n)
    from scipy import stats

    return float(np.clip(stats.kstwo.sf(d, np.round(en)), 0, 1))


def _ks_exact(n1: int, n2: int, d: float) -> float | None:
    """scipy's exact two-sided probability (its own lattice-path routine, so results are identical)."""
    try:
        from scipy.stats._stats_py import _attempt_exact_2kssamp
    except ImportError:  # pragma: no cover - a scipy without the routine: use the asymptotic form
        return None
    g = math.gcd(n1, n2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        success, _, prob = _attempt_exact_2kssamp(n1, n2, g, d, "two-sided")
    if not success:
        return None
    return float(np.clip(prob, 0, 1))


# ----------------------------------------------------------------------------- counts-based tests

def chisquare_pvalue(ref: Counts, cur: Counts) -> float:
    """Evidently's chi-square: expected = reference counts scaled to the current total; |K|-1 dof.
    A category absent from the reference has expected 0, so the statistic is infinite and p = 0."""
    r = np.asarray(ref, dtype=float)
    c = np.asarray(cur, dtype=float)
    exp = r * (c.sum() / r.sum())
    from scipy import stats

    with np.errstate(divide="ignore", invalid="ignore"):
        return float(stats.chisquare(c, exp)[1])


def z_pvalue(ref_keys: Sequence[object], ref: Sequence[float], cur_keys: Sequence[object],
             cur: Sequence[float]) -> float:
    """Two-proportion Z-test on ``value != smallest value`` (Evidently's binary test).

    Both sides constant with the same value give p = 1."""
    rk = [k for k, n in zip(ref_keys, ref, strict=True) if n > 0]
    ck = [k for k, n in zip(cur_keys, cur, strict=True) if n > 0]
    if len(rk) == 1 and len(ck) == 1 and rk[0] == ck[0]:
        return 1.0
    v0 = sorted(set(rk) | set(ck))[0]  # type: ignore[type-var]
    n1, n2 = float(sum(ref)), float(sum(cur))
    p1 = sum(n for k, n in zip(ref_keys, ref, strict=True) if k != v0) / n1
    p2 = sum(n for k, n in zip(cur_keys, cur, strict=True) if k != v0) / n2
    pooled = (p1 * n1 + p2 * n2) / (n1 + n2)
    from scipy import stats

    with np.errstate(divide="ignore", invalid="ignore"):
        z = (p1 - p2) / np.sqrt(pooled * (1 - pooled) * (1.0 / n1 + 1.0 / n2))
        return float(2 * (1 - stats.norm.cdf(np.abs(z))))


def shares(ref: Counts, cur: Counts, ref_total: float | None = None,
           cur_total: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per-bin shares of each side (over its non-missing rows, as Evidently divides by ``len``)."""
    r = np.asarray(ref, dtype=float)
    c = np.asarray(cur, dtype=float)
    return r / (ref_total or r.sum()), c / (cur_total or c.sum())


def jensenshannon_distance(p: np.ndarray, q: np.ndarray) -> float:
    """Jensen-Shannon distance (natural log, no smoothing), as ``scipy.spatial.distance.jensenshannon``
    computes it for Evidently: both sides normalised, then ``sqrt((KL(p||m) + KL(q||m)) / 2)`` with
    ``m = (p + q) / 2`` (written out: importing scipy.spatial costs a quarter of a second per call)."""
    p = np.asarray(p, dtype=float)
    q = np.asarray(q, dtype=float)
    p, q = p / p.sum(), q / q.sum()
    m = (p + q) / 2.0

    def rel_entr(x: np.ndarray) -> float:  # scipy.special.rel_entr(x, m): 0 where x is 0 (m > 0 where x > 0)
        with np.errstate(divide="ignore", invalid="ignore"):
            return float(np.sum(np.where(x > 0, x * np.log(x / m), 0.0)))

    return float(np.sqrt((rel_entr(p) + rel_entr(q)) / 2.0))


def _fill_zeroes(x: np.ndarray) -> np.ndarray:
    x = x.copy()
    nz = x[x != 0]
    if nz.size == 0:
        return x
    m = nz.min()
    x[x == 0] = m / 10**6 if m <= 0.0001 else 0.0001
    return x


def psi(p: np.ndarray, q: np.ndarray) -> float:
    """Population stability index with Evidently's zero filling (no renormalisation)."""
    r, c = _fill_zeroes(p), _fill_zeroes(q)
    return float(np.sum((r - c) * np.log(r / c)))


def wasserstein_normed(w1: float, std_ref: float) -> float:
    """Wasserstein-1 distance divided by ``max(std_ref, 0.001)`` (population std of the reference)."""
    return float(w1 / max(float(std_ref), 0.001))


def sturges_edges(lo: float, hi: float, n: int) -> np.ndarray:
    """``np.histogram_bin_edges(pooled, "sturges")`` from the pooled min, max and size."""
    width = (hi - lo) / (np.log2(n) + 1.0) if n > 0 else 0.0
    k = int(np.ceil((hi - lo) / width)) if width else 1
    if lo == hi:
        lo, hi = lo - 0.5, hi + 0.5
    return np.linspace(lo, hi, k + 1)
