"""Retrain runners: where a retraining job actually trains.

* :class:`LocalProcessRunner` (default) runs the model's configured ``training_command`` as a child
  process on this machine, with the MLflow tracking URI and the Vigil config in its environment.
* :class:`WebhookRunner` POSTs a signed JSON request to a training service you run elsewhere.
* :class:`GitHubActionsRunner` dispatches a GitHub Actions workflow (``workflow_dispatch``).

Remote runners only *start* training; the remote pipeline registers its version in MLflow itself.
Every failure is a :class:`TriggerError` whose message names the fix.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import shlex
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import requests

from connectors.errors import ConnectorError

SIGNATURE_HEADER = "X-Vigil-Signature"
TIMESTAMP_HEADER = "X-Vigil-Timestamp"
RESULT_PREFIX = "VIGIL_RESULT "


class TriggerError(ConnectorError):
    """A runner could not start (or reach) the training it was asked for."""


@dataclass(frozen=True)
class TrainingRequest:
    """What to train: the model, where its config lives, and options (``--include-labels`` etc.)."""

    model: str
    config_path: str | None = None
    options: Mapping[str, Any] = field(default_factory=dict)
    job_id: str | None = None

    def payload(self) -> dict[str, Any]:
        return {"model": self.model, "job_id": self.job_id, "options": dict(self.options)}


def option_args(options: Mapping[str, Any]) -> list[str]:
    """Options as command-line flags: ``True`` -> ``--flag``, ``False``/``None`` omitted, else ``--key value``."""
    args: list[str] = []
    for key, value in options.items():
        flag = "--" + str(key).replace("_", "-")
        if value is True:
            args.append(flag)
        elif value is False or value is None:
            continue
        else:
            args += [flag, str(value)]
    return args


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """HMAC-SHA256 over ``timestamp.body`` (the timestamp stops replays of an old request)."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify(secret: str, timestamp: str, body: bytes, signature: str) -> bool:
    """What a receiving service does: constant-time comparison of the expected signature."""
    return hmac.compare_digest(sign(secret, timestamp, body), signature)


def parse_result(line: str) -> dict[str, Any] | None:
    """The JSON of a ``VIGIL_RESULT {...}`` line, or None for any other line."""
    if not line.startswith(RESULT_PREFIX):
        return None
    try:
        value = json.loads(line[len(RESULT_PREFIX):])
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


class LocalProcessRunner:
    """Runs ``training_command --model M --config PATH [options]`` as a child process.

    ``env`` is the command's whole environment (nothing else of this process's environment is passed
    on, so secrets stay here); without it the command inherits this process's environment.
    """

    name = "local"

    def __init__(self, command: str, env: Mapping[str, str] | None = None, cwd: str | Path | None = None) -> None:
        if not command or not command.strip():
            raise TriggerError("no training_command is configured for this model; set training_command in its "
                               "[models.<name>] table of vigil.toml (e.g. \"python -m dashboard.demo.train\")")
        self.command = command
        self.env = dict(env) if env is not None else None
        self.cwd = str(cwd) if cwd else None

    def argv(self, request: TrainingRequest) -> list[str]:
        argv = shlex.split(self.command)
        if argv and argv[0] in ("python", "python3"):
            import sys

            argv[0] = sys.executable  # the same interpreter (and venv) as Vigil
        argv += ["--model", request.model]
        if request.config_path:
            argv += ["--config", str(request.config_path)]
        return argv + option_args(request.options)

    def start(self, request: TrainingRequest, log: IO[bytes]) -> subprocess.Popen[bytes]:
        """Start the training process (stdout and stderr into ``log``) and return it without waiting."""
        env = {**(os.environ if self.env is None else self.env), "PYTHONUNBUFFERED": "1"}
        argv = self.argv(request)
        try:
            return subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    env=env, cwd=self.cwd)
        except OSError as exc:
            raise TriggerError(f"cannot run the training command {argv[0]!r} ({exc.strerror}); fix "
                               "training_command in vigil.toml") from None


class WebhookRunner:
    """POSTs ``{"model", "job_id", "options"}`` as JSON, signed with HMAC-SHA256 over a shared secret."""

    name = "webhook"

    def __init__(self, url: str, secret: str, timeout_s: float = 10.0) -> None:
        if not url.startswith(("http://", "https://")):
            raise TriggerError(f"webhook URL {url!r} must start with http:// or https://")
        if not secret:
            raise TriggerError("the webhook runner needs a shared secret: set VIGIL_WEBHOOK_SECRET")
        self.url = url
        self.secret = secret
        self.timeout_s = timeout_s

    def trigger(self, request: TrainingRequest) -> dict[str, Any]:
        body = json.dumps(request.payload(), sort_keys=True).encode()
        ts = str(int(time.time()))
        headers = {"Content-Type": "application/json", TIMESTAMP_HEADER: ts,
                   SIGNATURE_HEADER: sign(self.secret, ts, body)}
        try:
            resp = requests.post(self.url, data=body, headers=headers, timeout=self.timeout_s)
        except requests.Timeout:
            raise TriggerError(f"the webhook {self.url} did not answer within {self.timeout_s:g} s; check the "
                               "training service or raise the timeout") from None
        except requests.RequestException as exc:
            raise TriggerError(f"cannot reach the webhook {self.url} ({type(exc).__name__}); check the URL and "
                               "that the training service runs") from None
        if resp.status_code >= 300:
            hint = " (the shared secret differs: check VIGIL_WEBHOOK_SECRET)" if resp.status_code in (401, 403) \
                else ""
            raise TriggerError(f"the webhook {self.url} answered HTTP {resp.status_code}{hint}: "
                               f"{resp.text[:200]}")
        try:
            data = resp.json()
        except ValueError:
            data = {"text": resp.text[:500]}
        return {"runner": self.name, "status": resp.status_code, "response": data}


class GitHubActionsRunner:
    """Dispatches ``.github/workflows/<workflow>`` with ``workflow_dispatch`` inputs (REST API v3)."""

    name = "github"

    def __init__(self, repo: str, workflow: str, token: str, ref: str = "main",
                 api_url: str = "https://api.github.com", timeout_s: float = 15.0) -> None:
        if repo.count("/") != 1:
            raise TriggerError(f"GitHub repository {repo!r} must be 'owner/name'")
        if not token:
            raise TriggerError("the GitHub Actions runner needs a token with actions:write: set VIGIL_GITHUB_TOKEN")
        self.repo, self.workflow, self.token, self.ref = repo, workflow, token, ref
        self.api_url = api_url.rstrip("/")
        self.timeout_s = timeout_s

    def trigger(self, request: TrainingRequest) -> dict[str, Any]:
        url = f"{self.api_url}/repos/{self.repo}/actions/workflows/{self.workflow}/dispatches"
        # workflow_dispatch inputs are strings.
        inputs = {"model": request.model, "job_id": request.job_id or "",
                  "options": json.dumps(dict(request.options), sort_keys=True)}
        headers = {"Accept": "application/vnd.github+json", "Authorization": f"Bearer {self.token}",
                   "X-GitHub-Api-Version": "2022-11-28"}
        try:
            resp = requests.post(url, json={"ref": self.ref, "inputs": inputs}, headers=headers,
                                 timeout=self.timeout_s)
        except requests.RequestException as exc:
            raise TriggerError(f"cannot reach the GitHub API at {self.api_url} ({type(exc).__name__})") from None
        if resp.status_code != 204:
            hint = {401: "the token is invalid", 403: "the token lacks actions:write",
                    404: f"no workflow {self.workflow!r} in {self.repo} (or no access)",
                    422: f"the workflow has no workflow_dispatch trigger or ref {self.ref!r} does not exist"}
            raise TriggerError(f"GitHub refused the workflow dispatch (HTTP {resp.status_code}: "
                               f"{hint.get(resp.status_code, resp.text[:200])})")
        return {"runner": self.name, "status": resp.status_code, "workflow": self.workflow, "ref": self.ref,
                "runs": f"https://github.com/{self.repo}/actions/workflows/{self.workflow}"}


RUNNERS: tuple[str, ...] = ("local", "webhook", "github")
