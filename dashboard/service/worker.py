"""``python -m dashboard.service.worker run JOB_ID``: the detached process that runs one retrain job.

Why here: the job itself is lifecycle work (:func:`dashboard.lifecycle.jobs.run_worker`), but once the new
version's gate is recorded its model card is seeded (carried forward from the parent version, filled in
from the run and the gate), which is governance; the worker is the one place that composes both.
"""

from __future__ import annotations

import sys
from typing import Any

from dashboard.context import Context, load_context
from dashboard.lifecycle import jobs


def seed_card(ctx: Context, job: jobs.Job, version: str, gate_result: Any) -> None:
    """Give the new version its first card revision; a failure is logged, never fails the job."""
    from dashboard.governance import cards

    try:
        card = cards.seed_card(ctx, job.model, version, parent=job.params.get("parent_version"),
                               evidence=gate_result.to_json(), requested_by=job.requested_by)
    except Exception as exc:  # the version and its gate stand; the card can still be written on the page
        jobs.append_log(job.log_path, f"model card not seeded: {type(exc).__name__}: {exc}")
        return
    missing = card.missing_sections()
    jobs.append_log(job.log_path, f"model card revision {card.revision} seeded"
                    + (f"; still missing: {', '.join(missing)}" if missing else "; every section filled"))


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 2 or args[0] != "run":
        print("usage: python -m dashboard.service.worker run JOB_ID", file=sys.stderr)
        return 2
    return jobs.run_worker(load_context(), args[1], after_gate=seed_card)


if __name__ == "__main__":
    sys.exit(main())
