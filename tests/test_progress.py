"""Steps in progress: core work names its slow steps; the CLI shows them on a terminal and nowhere else."""

from __future__ import annotations

import io
import os
import pty
import select
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from dashboard import progress
from dashboard.commands.progress_line import ERASE, TerminalLine
from tests.fixtures.demo import ENV_KEYS
from tests.fixtures.progress import Recorder

REPO = Path(__file__).resolve().parents[1]


def test_a_step_is_a_no_op_when_nobody_listens() -> None:
    with progress.step("nobody hears this"):
        value = 1
    assert value == 1


def test_steps_nest_and_leave_even_on_error() -> None:
    rec = Recorder()
    with progress.reporting(rec), pytest.raises(ValueError), progress.step("outer"), progress.step("inner"):
        raise ValueError("boom")
    assert rec.events == ["+outer", "+inner", "-", "-"]
    with progress.step("after"):  # the reporter is gone once its block ends
        pass
    assert rec.events[-1] == "-"


def test_the_decorator_form_reports_each_call() -> None:
    rec = Recorder()

    @progress.step("working")
    def work(x: int) -> int:
        return x * 2

    with progress.reporting(rec):
        assert work(2) == 4
        assert work(3) == 6
    assert rec.events == ["+working", "-", "+working", "-"]


def test_concurrent_threads_see_only_their_own_steps() -> None:
    """Two page sessions in one Streamlit process: each session's reporter hears its own work only."""
    recs = [Recorder(), Recorder()]
    barrier = threading.Barrier(2)

    def session(i: int) -> None:
        with progress.reporting(recs[i]):
            barrier.wait()
            with progress.step(f"session {i}"):
                barrier.wait()

    threads = [threading.Thread(target=session, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert recs[0].events == ["+session 0", "-"]
    assert recs[1].events == ["+session 1", "-"]


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_terminal_line_draws_nested_steps_with_elapsed_time_and_erases_at_the_end() -> None:
    out, clock = io.StringIO(), FakeClock()
    line = TerminalLine(out, columns=lambda: 80, clock=clock)
    line.enter("drift")
    assert out.getvalue() == ERASE + "vigil: drift"
    clock.now += 4.2
    line.enter("testing 12 columns in DuckDB")
    assert out.getvalue().endswith(ERASE + "vigil: drift: testing 12 columns in DuckDB (4 s)")
    line.leave()
    assert out.getvalue().endswith(ERASE + "vigil: drift (4 s)")
    line.leave()
    assert out.getvalue().endswith("(4 s)" + ERASE)
    line.leave()  # one leave too many neither fails nor writes
    assert out.getvalue().endswith("(4 s)" + ERASE)


def test_terminal_line_fits_the_terminal_and_writes_no_control_characters() -> None:
    out = io.StringIO()
    line = TerminalLine(out, columns=lambda: 30, clock=FakeClock())
    line.enter("policy \x1b]0;pwned\x07" + "x" * 100)
    drawn = out.getvalue().removeprefix(ERASE)
    assert len(drawn) == 29 and drawn.endswith("...")
    assert "\x1b" not in drawn and "\x07" not in drawn


def test_terminal_line_survives_a_closed_stream() -> None:
    out = io.StringIO()
    line = TerminalLine(out, columns=lambda: 80, clock=FakeClock())
    out.close()
    line.enter("still fine")
    line.leave()


@pytest.mark.parametrize(("env", "expected"), [({}, False), ({"VIGIL_NO_PROGRESS": "1"}, False),
                                               ({"TERM": "dumb"}, False)])
def test_no_line_when_stderr_is_not_a_terminal_or_it_is_off(env: dict[str, str], expected: bool) -> None:
    # Under pytest stderr is captured (not a terminal); the two switches win even on a terminal.
    assert (TerminalLine.for_stderr(env) is not None) is expected


def _cli_env(workspace: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ENV_KEYS and k != "VIGIL_NO_PROGRESS"}
    env.update({"VIGIL_CONFIG": str(workspace / "vigil.toml"), "TERM": "xterm", "COLUMNS": "200"})
    return env


def _run_with_terminal_stderr(argv: list[str], env: dict[str, str]) -> tuple[int, str, str]:
    """Run ``argv`` with stderr on a pseudo-terminal (as in an interactive shell) and stdout on a pipe."""
    leader, follower = pty.openpty()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=follower, env=env, cwd=REPO)
    os.close(follower)
    chunks: list[bytes] = []
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        ready, _, _ = select.select([leader], [], [], 1.0)
        if ready:
            try:
                data = os.read(leader, 65536)
            except OSError:  # the terminal's other end closed: the process ended
                break
            if not data:
                break
            chunks.append(data)
        elif proc.poll() is not None:
            break
    os.close(leader)
    stdout = proc.stdout.read().decode() if proc.stdout else ""
    code = proc.wait(60)
    return code, stdout, b"".join(chunks).decode(errors="replace")


def test_vigil_drift_on_a_terminal_shows_its_steps_and_leaves_stdout_clean(private_demo: Path) -> None:
    code, stdout, terminal = _run_with_terminal_stderr(
        [sys.executable, "-m", "dashboard.cli", "drift", "--model", "credit-risk", "--current", "7d", "--json"],
        _cli_env(private_demo))
    assert code == 0, terminal[-2000:]
    assert "vigil: looking up the champion in MLflow" in terminal
    assert "vigil: drift: testing" in terminal and "columns in DuckDB" in terminal
    assert terminal.rstrip("\r\n").endswith(ERASE), "the line is erased once the work is done"
    assert "\x1b" not in stdout and "\r" not in stdout
    assert stdout.lstrip().startswith("{")


def test_vigil_check_on_a_terminal_names_each_policy(private_demo: Path) -> None:
    # A window nobody else evaluates: its measurements are not kept yet, so they are computed here.
    code, stdout, terminal = _run_with_terminal_stderr(
        [sys.executable, "-m", "dashboard.cli", "check", "--model", "credit-risk", "--window", "6d", "--no-record"],
        _cli_env(private_demo))
    assert code in (0, 1), terminal[-2000:]
    assert "vigil: policy " in terminal
    assert "Policies of credit-risk" in stdout and "\x1b" not in stdout


def test_no_progress_line_in_a_pipe(private_demo: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "dashboard.cli", "drift", "--model", "credit-risk", "--json"],
                         env=_cli_env(private_demo), cwd=REPO, capture_output=True, text=True, timeout=300,
                         check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "\x1b" not in out.stderr and "vigil: " not in out.stderr
