"""Label Studio (label-studio-sdk 2.x): projects, task import, annotation read-back.

This adapter knows Label Studio's API and nothing about queues: the exactly-once bookkeeping lives in
``dashboard.learning.annotation``, which relies on three things from here:

* imports are never retried behind the caller's back (``max_retries=0``): a POST that failed or timed
  out may still have created tasks, so the caller reconciles by ``prediction_id`` before trying again;
* :meth:`LabelStudioClient.tasks_by_prediction` lists every task of a project by ``prediction_id``;
* every failure is a :class:`LabelStudioError` whose message says what happened and what to do.

The API token is held privately and never appears in ``repr``, messages or logs; so are the passwords
given to :meth:`LabelStudioClient.create_account`, the organization's invitation token it reads and the
session it opens (httpx's and httpcore's log lines of them are masked, see :class:`_Redact`).
"""

from __future__ import annotations

import html
import logging
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import Any, TypeVar

import httpx
from label_studio_sdk import LabelStudio
from label_studio_sdk.core.api_error import ApiError

from connectors.errors import ConnectorError

T = TypeVar("T")
FROM_NAME = "label"
TO_NAME = "features"
PAGE_SIZE = 500
#: The model_version of every Vigil pre-annotation. Label Studio shows annotators only the predictions
#: whose model_version equals the project's, which it takes from the first import: tagged with the
#: model's own version, tasks of version 1 opened pre-ticked and those of every later version empty.
PREDICTION_VERSION = "vigil"
_FORM_ERROR = re.compile(r'<ul class="field_errors">(.*?)</ul>', re.S)
_ITEM = re.compile(r"<li>(.*?)</li>", re.S)
_SESSION = re.compile(r"(sessionid=)[^;'\"\s]+")


class _Redact(logging.Filter):
    """httpx logs every request's URL at INFO, and httpcore every response's headers at DEBUG. The sign-up
    URL carries the organization's invitation token (``?token=``, which lets anyone join it) and the
    sign-up's answer the new account's session cookie: both are logged masked."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and any(isinstance(a, httpx.URL) for a in record.args):
            record.args = tuple(a.copy_set_param("token", "REDACTED") if isinstance(a, httpx.URL)
                                and "token" in a.params else a for a in record.args)
        if isinstance(record.msg, str) and "sessionid=" in record.msg:
            record.msg = _SESSION.sub(r"\1REDACTED", record.msg)
        return True


for _name in ("httpx", "httpcore.http11", "httpcore.http2"):
    logging.getLogger(_name).addFilter(_Redact())


class LabelStudioError(ConnectorError):
    """Label Studio refused or failed a request; the message names the fix."""


class LabelStudioUnavailable(LabelStudioError):
    """Label Studio did not answer (down, wrong URL, or a timeout)."""


class LabelStudioAuthError(LabelStudioError):
    """The API token was rejected (wrong or revoked)."""


class LabelStudioServerError(LabelStudioError):
    """Label Studio answered with a server error (5xx)."""


@dataclass(frozen=True)
class Annotation:
    """One annotation of a task, reduced to what label sync needs."""

    id: int
    label: str | None
    annotator_id: int | None
    cancelled: bool
    updated_at: datetime | None


@dataclass(frozen=True)
class Task:
    """One task of a Vigil project: its id, the prediction it shows, and its annotations."""

    id: int
    prediction_id: str | None
    annotations: tuple[Annotation, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class Webhook:
    """A Label Studio webhook as the API shows it to an administrator (headers hold the shared secret)."""

    id: int
    project_id: int | None
    url: str
    actions: tuple[str, ...]
    headers: dict[str, str] = field(repr=False)
    is_active: bool = True


def labeling_config(features: Sequence[str], classes: Sequence[str], model: str) -> str:
    """A labeling config showing the features as a table and the classes as single choice.

    The model's own answer comes as a pre-annotation (prediction), so annotators see and can correct it.
    """
    choices = "\n".join(f'    <Choice value="{html.escape(c, quote=True)}"/>' for c in classes)
    shown = ", ".join(features)
    return (
        "<View>\n"
        f'  <Header value="{html.escape(model, quote=True)}: what is the right outcome for this case?"/>\n'
        '  <Text name="meta" value="Prediction $prediction_id (model version $model_version, '
        'predicted $prediction with score $score)"/>\n'
        f"  <!-- features: {html.escape(shown)} -->\n"
        f'  <Table name="{TO_NAME}" value="$features"/>\n'
        f'  <Choices name="{FROM_NAME}" toName="{TO_NAME}" choice="single" showInline="true" required="true">\n'
        f"{choices}\n"
        "  </Choices>\n"
        "</View>"
    )


def choice_result(label: str) -> list[dict[str, Any]]:
    """The annotation/prediction ``result`` that selects ``label`` in a Vigil labeling config."""
    return [{"from_name": FROM_NAME, "to_name": TO_NAME, "type": "choices", "value": {"choices": [label]}}]


def prediction(label: str, score: Any) -> dict[str, Any]:
    """A pre-annotation ticking ``label``, tagged :data:`PREDICTION_VERSION` whatever the model version."""
    return {"model_version": PREDICTION_VERSION, "score": score, "result": choice_result(label)}


def _form_errors(page: str) -> str:
    """The field errors a Label Studio form page shows (its sign-up refusals), as one sentence."""
    items = [html.unescape(i).strip() for block in _FORM_ERROR.findall(page) for i in _ITEM.findall(block)]
    return "; ".join(i for i in items if i) or "the sign-up form was refused"


def _label_of(result: Any) -> str | None:
    for item in result or []:
        if isinstance(item, dict) and item.get("from_name") == FROM_NAME:
            choices = (item.get("value") or {}).get("choices") or []
            if choices:
                return str(choices[0])
    return None


def _when(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        t = value
    else:
        try:
            t = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except ValueError:
            return None
    return t.astimezone(UTC).replace(tzinfo=None) if t.tzinfo else t


def _get(obj: Any, key: str, default: Any = None) -> Any:
    return obj.get(key, default) if isinstance(obj, dict) else getattr(obj, key, default)


class LabelStudioClient:
    """A thin, fault-explaining wrapper over ``label_studio_sdk.LabelStudio``."""

    def __init__(self, url: str, token: str, timeout_s: float = 30.0,
                 transport: httpx.BaseTransport | None = None) -> None:
        if not url:
            raise LabelStudioError("no Label Studio URL is configured; set VIGIL_LABEL_STUDIO_URL "
                                   "(e.g. http://127.0.0.1:8080, which `make demo` starts)")
        if not token:
            raise LabelStudioAuthError("no Label Studio API token is configured; set VIGIL_LABEL_STUDIO_TOKEN "
                                       "(Label Studio: Account & Settings > Access Token) or put it in "
                                       ".streamlit/secrets.toml")
        self.url = url.rstrip("/")
        self.timeout_s = timeout_s
        self.__token = token
        self._transport = transport
        http = httpx.Client(timeout=timeout_s, transport=transport, follow_redirects=True)
        try:
            self._sdk = LabelStudio(base_url=self.url, api_key=token, timeout=timeout_s, max_retries=0,
                                    httpx_client=http)
        except ApiError as exc:  # a JWT-shaped token that is expired is rejected up front
            raise LabelStudioAuthError(self._auth_message()) from exc

    def __repr__(self) -> str:
        return f"LabelStudioClient(url={self.url!r}, token=***)"

    __str__ = __repr__

    # ------------------------------------------------------------------ error mapping

    def _auth_message(self) -> str:
        return (f"Label Studio at {self.url} rejected the API token (wrong or revoked); copy the token from "
                "Label Studio (Account & Settings > Access Token) into VIGIL_LABEL_STUDIO_TOKEN or "
                ".streamlit/secrets.toml and try again")

    def _call(self, what: str, fn: Callable[[], T]) -> T:
        """Run one API call, turning every failure into a :class:`LabelStudioError` that says what to do."""
        try:
            return fn()
        except httpx.TimeoutException:
            raise LabelStudioUnavailable(
                f"Label Studio at {self.url} did not answer within {self.timeout_s:.0f} s while trying to "
                f"{what}; check that it is running and not overloaded, then try again (nothing is sent "
                "twice)") from None
        except (httpx.ConnectError, httpx.RemoteProtocolError, httpx.NetworkError):
            raise LabelStudioUnavailable(
                f"Label Studio at {self.url} is not reachable (could not {what}); start it with "
                "`scripts/labelstudio.sh start` (or `make demo`) or fix VIGIL_LABEL_STUDIO_URL, then try "
                "again (nothing is sent twice)") from None
        except ApiError as exc:
            code = exc.status_code or 0
            if code in (401, 403):
                raise LabelStudioAuthError(self._auth_message()) from None
            if code >= 500:
                raise LabelStudioServerError(
                    f"Label Studio at {self.url} failed with HTTP {code} while trying to {what}; see its log, "
                    "then try again (nothing is sent twice)") from None
            detail = str(exc.body)[:300] if exc.body is not None else ""
            raise LabelStudioError(f"Label Studio at {self.url} refused to {what} (HTTP {code}): {detail}") from None
        except httpx.HTTPError as exc:
            raise LabelStudioUnavailable(f"Label Studio at {self.url}: {type(exc).__name__} while trying to "
                                         f"{what}; try again") from None

    # ------------------------------------------------------------------ reads

    def whoami(self) -> str:
        """The e-mail of the token's user; a cheap check of URL and token."""
        user = self._call("check the API token", self._sdk.users.whoami)
        return str(_get(user, "email") or _get(user, "username") or "")

    def users(self) -> dict[int, str]:
        """User id -> e-mail, to name annotators."""
        found: list[Any] = self._call("list users", lambda: list(self._sdk.users.list()))
        return {int(_get(u, "id")): str(_get(u, "email") or _get(u, "username") or _get(u, "id")) for u in found}

    def find_projects(self, title: str) -> list[int]:
        """Ids of projects with exactly this title, oldest first."""
        found: list[Any] = self._call("list projects", lambda: list(self._sdk.projects.list(title=title, page_size=100)))
        return sorted(int(_get(p, "id")) for p in found if _get(p, "title") == title)

    def project_exists(self, project_id: int) -> bool:
        try:
            self._call("read the project", lambda: self._sdk.projects.get(id=project_id))
        except LabelStudioError as exc:
            if "HTTP 404" in str(exc):
                return False
            raise
        return True

    def project_url(self, project_id: int) -> str:
        return f"{self.url}/projects/{project_id}/data"

    def _iter_tasks(self, project_id: int, fields: str) -> Iterable[Any]:
        def page(number: int) -> list[Any]:
            resp: Any = self._sdk.tasks.list(project=project_id, fields=fields, page=number, page_size=PAGE_SIZE)
            return list(resp.items or [])

        number = 1
        while True:
            try:
                items = self._call("list the project's tasks", partial(page, number))
            except LabelStudioError as exc:
                if "HTTP 404" in str(exc):  # past the last page
                    return
                raise
            yield from items
            if len(items) < PAGE_SIZE:
                return
            number += 1

    def tasks_by_prediction(self, project_id: int) -> dict[str, list[int]]:
        """``prediction_id`` -> ids of the tasks showing it (more than one means a duplicate to remove)."""
        out: dict[str, list[int]] = {}
        for t in self._iter_tasks(project_id, "task_only"):
            pid = (_get(t, "data") or {}).get("prediction_id")
            if pid is not None:
                out.setdefault(str(pid), []).append(int(_get(t, "id")))
        for ids in out.values():
            ids.sort()
        return out

    def tasks(self, project_id: int) -> list[Task]:
        """Every task with its annotations (cancelled ones = skipped)."""
        result = []
        for t in self._iter_tasks(project_id, "all"):
            anns = tuple(
                Annotation(id=int(_get(a, "id")), label=_label_of(_get(a, "result")),
                           annotator_id=_get(a, "completed_by"), cancelled=bool(_get(a, "was_cancelled")),
                           updated_at=_when(_get(a, "updated_at") or _get(a, "created_at")))
                for a in (_get(t, "annotations") or []))
            pid = (_get(t, "data") or {}).get("prediction_id")
            result.append(Task(int(_get(t, "id")), None if pid is None else str(pid), anns))
        return result

    # ------------------------------------------------------------------ writes

    def create_project(self, title: str, label_config: str, description: str = "", overlap: int = 1,
                       pre_annotate: bool = True) -> int:
        """Create a project; ``overlap`` is how many annotators should label each task, ``pre_annotate``
        whether tasks open with Vigil's pre-annotation ticked (see :data:`PREDICTION_VERSION`)."""
        project = self._call("create the project", lambda: self._sdk.projects.create(
            title=title, label_config=label_config, description=description,
            show_skip_button=True, maximum_annotations=overlap, show_collab_predictions=pre_annotate,
            model_version=PREDICTION_VERSION if pre_annotate else ""))
        return int(_get(project, "id"))

    def prediction_settings(self, project_id: int) -> tuple[bool, str]:
        """Whether annotators see pre-annotations, and the model_version those are taken from."""
        project = self._call("read the project", lambda: self._sdk.projects.get(id=project_id))
        return bool(_get(project, "show_collab_predictions")), str(_get(project, "model_version") or "")

    def show_predictions(self, project_id: int, show: bool) -> None:
        """Open tasks with Vigil's pre-annotations ticked, or empty. Showing them needs at least one task
        with a :data:`PREDICTION_VERSION` prediction: Label Studio refuses a model_version it has not seen."""
        extra: dict[str, Any] = {"model_version": PREDICTION_VERSION} if show else {}
        self._call("change the project's pre-annotation setting", lambda: self._sdk.projects.update(
            id=project_id, show_collab_predictions=show, **extra))

    def create_account(self, email: str, password: str) -> int:
        """Create a Label Studio account that can sign in with ``email`` and ``password``; returns its id.

        Label Studio 1.23's ``POST /api/users/`` makes accounts without a password (it ignores one), and no
        API hands out another user's token, so such an account could never sign in. This signs the person
        up the way an invited person does: the admin's token reads the organization's invitation, and a
        fresh session posts Label Studio's sign-up form with it.
        """
        invite = self._call("read the organization's invitation link",
                            self._sdk.organizations.invites.get_invite_link)
        params = {"token": str(_get(invite, "token") or "")}
        with httpx.Client(base_url=self.url, timeout=self.timeout_s, transport=self._transport) as web:
            self._call("open the sign-up page", lambda: web.get("/user/signup/", params=params))
            form = {"email": email, "password": password, "csrfmiddlewaretoken": web.cookies.get("csrftoken") or ""}
            answer = self._call("sign the account up", lambda: web.post("/user/signup/", params=params, data=form))
            if answer.status_code != 302:
                why = _form_errors(answer.text) if answer.status_code == 200 else f"HTTP {answer.status_code}"
                raise LabelStudioError(f"Label Studio at {self.url} refused to create the account {email}: {why}")
            me = self._call("read the new account", lambda: web.get("/api/current-user/whoami"))
            try:
                if me.status_code != 200:
                    raise ValueError(f"HTTP {me.status_code}")
                return int(me.json()["id"])
            except (ValueError, KeyError, TypeError) as exc:  # not signed in, or not the answer expected
                raise LabelStudioError(f"Label Studio at {self.url} created the account {email} but did not sign "
                                       f"it in ({exc}); see its log") from None

    def delete_project(self, project_id: int) -> None:
        self._call("delete a project", lambda: self._sdk.projects.delete(id=project_id))

    def import_tasks(self, project_id: int, tasks: Sequence[dict[str, Any]]) -> list[int]:
        """Import tasks in one request (never retried here); returns the new task ids in request order."""
        resp = self._call(f"import {len(tasks)} task(s)", lambda: self._sdk.projects.import_tasks(
            project_id, request=list(tasks), return_task_ids=True,  # type: ignore[arg-type]
            request_options={"max_retries": 0}))
        return [int(i) for i in (_get(resp, "task_ids") or [])]

    def delete_task(self, task_id: int) -> None:
        self._call("delete a duplicate task", lambda: self._sdk.tasks.delete(id=str(task_id)))

    def annotate(self, task_id: int, label: str | None, cancelled: bool = False) -> int:
        """Submit an annotation as the token's user would in the labeling UI (used by tests and demos)."""
        ann = self._call("submit an annotation", lambda: self._sdk.annotations.create(
            id=task_id, result=choice_result(label) if label else [], was_cancelled=cancelled))
        return int(_get(ann, "id"))

    def update_annotation(self, annotation_id: int, label: str) -> None:
        self._call("update an annotation", lambda: self._sdk.annotations.update(
            id=annotation_id, result=choice_result(label)))

    def delete_annotation(self, annotation_id: int) -> None:
        self._call("delete an annotation", lambda: self._sdk.annotations.delete(id=annotation_id))

    # ------------------------------------------------------------------ webhooks

    def webhooks(self, project_id: int) -> list[Webhook]:
        """The webhooks of one project (their headers included: the token's user administers them)."""
        found: list[Any] = self._call("list webhooks", lambda: list(self._sdk.webhooks.list(project=str(project_id))))
        return [Webhook(int(_get(w, "id")), _get(w, "project"), str(_get(w, "url")),
                        tuple(str(a) for a in (_get(w, "actions") or ())), dict(_get(w, "headers") or {}),
                        bool(_get(w, "is_active", True)))
                for w in found if _get(w, "project") == project_id]

    def ensure_webhook(self, project_id: int, url: str, actions: Sequence[str], headers: dict[str, str]) -> int:
        """One active webhook of ``project_id`` posting ``actions`` to ``url`` with ``headers`` (the shared
        secret): created, or updated in place when it exists with other settings; extra copies deleted.
        Returns its id. Idempotent: a second call with the same arguments changes nothing."""
        same = [w for w in self.webhooks(project_id) if w.url == url]
        for extra in same[1:]:
            self.delete_webhook(extra.id)
        if same:
            w = same[0]
            if set(w.actions) != set(actions) or w.headers != headers or not w.is_active:
                self._call("update a webhook", lambda: self._sdk.webhooks.update(
                    id=w.id, url=url, actions=list(actions),
                    headers=headers, is_active=True, send_payload=True, send_for_all_actions=False))
            return w.id
        created = self._call("create a webhook", lambda: self._sdk.webhooks.create(
            url=url, project=project_id, actions=list(actions), headers=headers,
            is_active=True, send_payload=True, send_for_all_actions=False))
        return int(_get(created, "id"))

    def delete_webhook(self, webhook_id: int) -> None:
        self._call("delete a webhook", lambda: self._sdk.webhooks.delete(id=webhook_id))
