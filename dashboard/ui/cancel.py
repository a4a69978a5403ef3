"""Cancel a page's store queries when the user leaves the page (or the session ends).

Why: Streamlit stops a script run only at its next ``st.*`` call, and a DuckDB query running in C never
reaches one; without this, a user who opens the hourly 30-day drift and moves on keeps two cores busy for
a minute for nobody. The predicate reads the script runner's request state, an internal of Streamlit
(``ScriptRequests._state``): when it is missing (another Streamlit version) nothing is ever cancelled,
which is the behaviour without this module.
"""

from __future__ import annotations

from collections.abc import Callable

from streamlit.runtime.scriptrunner_utils.script_run_context import get_script_run_ctx

from connectors.store_owner import set_cancel_check


def _left_page_check() -> Callable[[], bool] | None:
    ctx = get_script_run_ctx()
    requests = getattr(ctx, "script_requests", None) if ctx is not None else None
    if requests is None or not hasattr(requests, "_state"):
        return None

    def left() -> bool:
        state = getattr(requests._state, "name", "CONTINUE")
        if state == "STOP":
            return True
        if state == "RERUN":  # a full rerun (another page, new inputs); a fragment's own rerun is not
            pending = getattr(requests, "_rerun_data", None)
            return not getattr(pending, "fragment_id_queue", None)
        return False

    return left


def cancel_queries_when_left() -> None:
    """From now on, this run's store queries stop when the user leaves the page."""
    set_cancel_check(_left_page_check())
