"""One colour per meaning, in every chart (pages, the exported report).

Why: a colour is read as a meaning before any legend is. Green is "good" (passed, labelled, within the
objective), red is "bad" (failed, breached, a threshold not to cross), grey is "nothing known" (no data,
queued). Plotly's and Streamlit's default colour cycles hand out red and green by trace order, so the same
state could be green in one chart and red in the one beside it; every chart takes its colours from here,
and categories without a good/bad meaning take :data:`CATEGORICAL`, which holds neither red nor green.
"""

from __future__ import annotations

GOOD = "#2e7d32"
GOOD_FILL = "rgba(46, 125, 50, 0.12)"
BAD = "#c62828"
BAD_FILL = "rgba(198, 40, 40, 0.15)"
NEUTRAL = "#9e9e9e"
CAUTION = "#ef6c00"  # needs a look but is not a failure: too small, cancelled, skipped
BROKEN = "#6a1b9a"  # the check itself failed (an evaluation error)
ACTIVE = "#1e88e5"  # in progress: running, being sent

#: The measured quantity of a chart, its secondary series, and an estimate of it.
MEASURE = "#1f77b4"
MEASURE_LIGHT = "#9ecae1"
ESTIMATE = "#9467bd"
#: A limit that must not be crossed (an SLO, a minimum accuracy); drawn dashed.
THRESHOLD = BAD

#: Categories without a good/bad meaning (classes, metrics, actions, versions): no red, no green.
CATEGORICAL: tuple[str, ...] = ("#1f77b4", "#9467bd", "#17becf", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
                                "#aec7e8", "#c5b0d5", "#9edae5")

VERDICT: dict[str, str] = {"pass": GOOD, "fail": BAD, "no data": NEUTRAL, "error": BROKEN}
JOB_STATE: dict[str, str] = {"queued": NEUTRAL, "running": ACTIVE, "succeeded": GOOD, "failed": BAD,
                             "cancelled": CAUTION}
#: Annotation queue states and the annotator outcomes ("labelled", "skipped") share one mapping.
QUEUE_STATE: dict[str, str] = {"pending": NEUTRAL, "sending": MEASURE_LIGHT, "sent": ACTIVE, "labelled": GOOD,
                               "skipped": CAUTION}
ROLE: dict[str, str] = {"champion": "#90a4ae", "candidate": ACTIVE}
LATENCY: dict[str, str] = {"p50": MEASURE_LIGHT, "p95": MEASURE, "p99": "#8c564b"}
ERRORS = CAUTION
#: Drift's two sides (for the Drift page's figures).
REFERENCE = "#4c78a8"
CURRENT = "#f58518"


def categorical(i: int) -> str:
    """The ``i``-th colour of :data:`CATEGORICAL` (cycling)."""
    return CATEGORICAL[i % len(CATEGORICAL)]


def state_colour(mapping: dict[str, str], state: str) -> str:
    """The colour of ``state`` in ``mapping``; an unknown state is neutral, never a guess at good or bad."""
    return mapping.get(state, NEUTRAL)
