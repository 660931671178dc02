"""`opus top --url`: the board of a running `opus dashboard`, read through its JSON API.

For a host that can reach the dashboard but not the database. `GET /api/v1/board` is
`Board.as_dict()`; `board_from_dict` turns it back into the records `opus top` draws. The
keys post to the API's actions (`/api/v1/jobs/{id}/retry|cancel|answer`,
`/api/v1/pause|resume`) with `Authorization: Bearer <token>` (a bearer needs no CSRF
token: no cookie is sent); without the token the board is read-only and an action says
so. An answer is written in `$EDITOR` from what the job's page data says it waits on
(`opus.board.reply`).

Only `urllib` is used: this stays as light as `opus status`.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import fields
from datetime import datetime
from typing import Any

from opus.board.lanes import ENDED_LANES, ENDED_SHOWN, Board, Card, Lane, LaneView
from opus.domain import DaemonRecord
from opus.errors import NotFound, OpusError, StoreError, UsageError
from opus.status import BreakerView, DaemonView

TIMEOUT_S = 10.0
CARD_FIELDS = tuple(field.name for field in fields(Card))


class RemoteBoard:
    """The board and the actions of the dashboard at `url` (its `Actions` for `TopApp`)."""

    def __init__(self, url: str, token: str | None, *, timeout_s: float = TIMEOUT_S) -> None:
        self.url = url.rstrip("/")
        self._token = token
        self.timeout_s = timeout_s

    def __repr__(self) -> str:
        return f"RemoteBoard({self.url}, token={'set' if self._token else 'none'})"

    def board(self, ended: int = ENDED_SHOWN) -> Board:
        """The board with the latest `ended` cards of the Done and Failed lanes."""
        query = "&".join(f"{lane.value}_n={ended}" for lane in ENDED_LANES)
        return board_from_dict(self._call("GET", f"/api/v1/board?{query}"))

    def retry(self, fr: str) -> str:
        return self._act(f"/api/v1/jobs/{fr}/retry")

    def cancel(self, fr: str) -> str:
        return self._act(f"/api/v1/jobs/{fr}/cancel")

    def set_paused(self, paused: bool) -> str:
        return self._act("/api/v1/pause" if paused else "/api/v1/resume")

    def answer(self, fr: str, texts: Sequence[str] | None, edit: Callable[[str], str]) -> str:
        """Answer job `fr` (its number) as the page would: the questions, or the plan,
        read from the dashboard, edited (or `texts`), posted back."""
        from opus.board.reply import answer_body

        body = answer_body(self._call("GET", f"/api/v1/jobs/{fr}"), texts, edit)
        return self._act(f"/api/v1/jobs/{fr}/answer", body)

    def _act(self, path: str, body: Mapping[str, Any] | None = None) -> str:
        return str(self._call("POST", path, body).get("message", "done"))

    def _call(
        self, method: str, path: str, body: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        data = None if body is None else json.dumps(body).encode("utf-8")
        request = urllib.request.Request(self.url + path, method=method, data=data)
        request.add_header("Accept", "application/json")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        if self._token:
            request.add_header("Authorization", f"Bearer {self._token}")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                answer: dict[str, Any] = json.loads(response.read())
                return answer
        except urllib.error.HTTPError as err:
            raise _refusal(err) from err
        except (urllib.error.URLError, OSError, ValueError) as err:
            reason = getattr(err, "reason", err)
            raise StoreError(f"cannot read the board at {self.url}: {reason}; is `opus "
                             "dashboard` serving there?") from err


def _refusal(err: urllib.error.HTTPError) -> OpusError:
    """The API's `{"error": ...}` as the error the CLI would raise for it."""
    try:
        message = str(json.loads(err.read()).get("error") or err.reason)
    except (ValueError, AttributeError, OSError):
        message = str(err.reason)
    if err.code in (401, 403):
        return UsageError(f"{message} (opus top --url reads the token from "
                          "dashboard.token_env, OPUS_DASHBOARD_TOKEN by default)")
    if err.code == 404:
        return NotFound(message)
    if err.code == 409:
        return UsageError(message)
    return StoreError(f"the board answered {err.code}: {message}")


def board_from_dict(data: Mapping[str, Any]) -> Board:
    """The `Board` whose `as_dict()` is `data` (a daemon's `info` is not carried)."""
    return Board(
        at=datetime.fromisoformat(data["at"]),
        lanes=tuple(LaneView(Lane(view["lane"]), tuple(_card(c) for c in view["cards"]),
                             int(view.get("total", -1)), int(view.get("offset", 0)))
                    for view in data["lanes"]),
        paused=bool(data["paused"]),
        spent_today_usd=float(data["spent_today_usd"]),
        daily_usd=float(data["daily_usd"]),
        daemons=tuple(_daemon(item) for item in data.get("daemons", [])),
        breakers=tuple(BreakerView(**item) for item in data.get("breakers", [])),
        problems=int(data.get("problems", 0)),
    )


def _card(data: Mapping[str, Any]) -> Card:
    values: dict[str, Any] = {name: data.get(name) for name in CARD_FIELDS}
    values["lane"] = Lane(data["lane"])
    values["updated_at"] = _time(data.get("updated_at"))
    return Card(**values)


def _daemon(data: Mapping[str, Any]) -> DaemonView:
    record = DaemonRecord(
        id=str(data["id"]), host=str(data["host"]), pid=int(data["pid"]),
        role=str(data["role"]), version=str(data["version"]),
        started_at=datetime.fromisoformat(data["started_at"]),
        beat_at=datetime.fromisoformat(data["beat_at"]),
        beat_every_s=float(data["beat_every_s"]),
    )
    return DaemonView(record, float(data["beat_age_s"]), bool(data["alive"]))


def _time(value: object) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) else None
