"""Synthetic loan applicants with realistic relationships, generated in vectorised numpy chunks.

Why synthetic: the demo must be deterministic by seed, free of personal data, and carry known
ground truth so every page (drift, fairness, accuracy) has something true to find. The true
probability of good credit depends on income, debt-to-income, credit history, loan size and term,
employment, housing, purpose and open accounts; it never depends on ``sex`` directly. Women are more
often in part-time work (lower income), which is the proxy a biased model can learn.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

NUMERICAL: tuple[str, ...] = ("age", "income", "loan_amount", "loan_term_months", "credit_history_years",
                              "debt_to_income", "num_open_accounts")
CATEGORICAL: tuple[str, ...] = ("employment_type", "housing", "purpose")
FEATURES: tuple[str, ...] = NUMERICAL + CATEGORICAL
PROTECTED: tuple[str, ...] = ("sex",)
LABEL = "label"

EMPLOYMENT = np.array(["full_time", "part_time", "self_employed", "unemployed", "retired"], dtype=object)
EMPLOYMENT_P = {"female": [0.56, 0.29, 0.08, 0.07, 0.0], "male": [0.72, 0.07, 0.14, 0.07, 0.0]}
EMPLOYMENT_INCOME = np.array([48_000.0, 24_000.0, 52_000.0, 9_000.0, 23_000.0])
EMPLOYMENT_EFFECT = np.array([0.0, -0.15, -0.2, -1.0, 0.0])
HOUSING = np.array(["own", "mortgage", "rent", "free"], dtype=object)
HOUSING_EFFECT = np.array([0.3, 0.2, 0.0, -0.1])
PURPOSE = np.array(["car", "home_improvement", "debt_consolidation", "education", "business", "vacation"],
                   dtype=object)
PURPOSE_P = np.array([0.25, 0.15, 0.30, 0.10, 0.08, 0.12])
PURPOSE_AMOUNT = np.array([15_000.0, 20_000.0, 12_000.0, 10_000.0, 30_000.0, 4_000.0])
PURPOSE_EFFECT = np.array([0.1, 0.15, -0.2, 0.0, -0.5, -0.3])
TERMS = np.array([12.0, 24.0, 36.0, 48.0, 60.0, 72.0])


@dataclass(frozen=True)
class Population:
    """Applicant features (as the model sees them), protected attributes, and the true P(good)."""

    frame: pd.DataFrame  # FEATURES + sex
    p_good: np.ndarray

    def draw_labels(self, rng: np.random.Generator) -> np.ndarray:
        """Ground truth outcomes ("good"/"bad") drawn from the true probabilities."""
        return np.where(rng.random(len(self.p_good)) < self.p_good, "good", "bad").astype(object)


def generate(rng: np.random.Generator, n: int, *, income_factor: float = 1.0,
             purpose_p: np.ndarray | None = None) -> Population:
    """``n`` applicants. ``income_factor`` scales the *reported* income only (the truth keeps the real
    income, so a model fed inflated incomes becomes over-optimistic); ``purpose_p`` changes the loan mix."""
    female = rng.random(n) < 0.48
    sex = np.where(female, "female", "male").astype(object)
    age = np.clip(18.0 + rng.gamma(3.0, 7.0, n), 18.0, 85.0).round()

    u = rng.random(n)
    emp: np.ndarray = np.empty(n, dtype=np.int64)
    for label, mask in (("female", female), ("male", ~female)):
        cum = np.cumsum(EMPLOYMENT_P[label])
        emp[mask] = np.searchsorted(cum / cum[-1], u[mask], side="right")
    retired = (age >= 65) & (rng.random(n) < 0.8)
    emp[retired] = 4
    emp = np.minimum(emp, 4)

    age_mult = 1.0 + 0.015 * (np.minimum(age, 50.0) - 30.0)
    real_income = EMPLOYMENT_INCOME[emp] * age_mult * rng.lognormal(0.0, 0.35, n)
    real_income = np.clip(real_income, 3_000.0, 400_000.0).round(-1)

    own_p = np.clip(0.05 + (age - 18) * 0.012, 0.05, 0.6)
    hu = rng.random(n)
    housing = np.where(hu < own_p, 0, np.where(hu < own_p + 0.25, 1, np.where(hu < 0.93, 2, 3)))

    pp = PURPOSE_P if purpose_p is None else np.asarray(purpose_p, dtype=float)
    purpose = np.searchsorted(np.cumsum(pp) / pp.sum(), rng.random(n), side="right").clip(0, len(PURPOSE) - 1)
    loan = np.clip(PURPOSE_AMOUNT[purpose] * rng.lognormal(0.0, 0.5, n), 500.0, 100_000.0).round(-1)
    term_idx = np.clip(np.round(np.log(loan / 2_000.0) / 1.0 + rng.normal(0, 0.8, n)), 0, len(TERMS) - 1)
    term = TERMS[term_idx.astype(np.int64)]
    history = np.minimum(age - 18.0, rng.gamma(2.0, 4.0, n)).clip(0.0).round(1)
    payment = loan / term * 12.0
    dti = np.clip(rng.beta(2.0, 6.0, n) + 0.25 * payment / real_income, 0.0, 1.5).round(3)
    accounts = rng.poisson(2.0 + history / 5.0).astype(float)

    z = (0.75 + 0.9 * np.log(real_income / 35_000.0) - 2.8 * (dti - 0.3) + 0.06 * history
         - 0.35 * np.log(loan / 10_000.0) - 0.01 * (term - 36.0) + EMPLOYMENT_EFFECT[emp]
         + HOUSING_EFFECT[housing] + PURPOSE_EFFECT[purpose] - 0.08 * (accounts - 3.0))
    p_good = 1.0 / (1.0 + np.exp(-z))

    frame = pd.DataFrame({
        "age": age, "income": (real_income * income_factor).round(-1), "loan_amount": loan,
        "loan_term_months": term, "credit_history_years": history, "debt_to_income": dti,
        "num_open_accounts": accounts, "employment_type": EMPLOYMENT[emp], "housing": HOUSING[housing],
        "purpose": PURPOSE[purpose], "sex": sex,
    })
    return Population(frame=frame, p_good=p_good)


def training_frame(seed: int, n: int, *, female_flip: float = 0.0) -> pd.DataFrame:
    """A labelled training set. ``female_flip`` records that share of women's good outcomes as bad:
    a historically biased sample, used to build the demo's unfair model version."""
    rng = np.random.default_rng([seed, 1_000])
    pop = generate(rng, n)
    labels = pop.draw_labels(rng)
    if female_flip > 0:
        flip = (pop.frame["sex"].to_numpy() == "female") & (labels == "good") & (rng.random(n) < female_flip)
        labels = np.where(flip, "bad", labels).astype(object)
    df = pop.frame.copy()
    df[LABEL] = labels
    return df
