"""What the REST forges (GitHub, Gitea) share: the repository, picking opus's PR out of a
listing, and commenting. Each forge adds its own listing, opening and feedback calls."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from opus.forges.feedback import head_ref, to_pull_request
from opus.forges.http import OPUS_MARKER, ApiClient
from opus.seams import PullRequest


class RestForge:
    """A repository `owner/name` on a forge reached through `client`."""

    label = "the forge"

    def __init__(self, client: ApiClient, owner: str, name: str) -> None:
        self.client = client
        self.owner = owner
        self.name = name
        self.repo_path = f"/repos/{owner}/{name}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.owner}/{self.name} at {self.client.base_url})"

    def comment(self, pr: PullRequest, body: str) -> None:
        """Post `body` on the PR's conversation, marked as opus's own."""
        self.client.post(
            f"{self.repo_path}/issues/{pr.number}/comments", {"body": f"{body}\n\n{OPUS_MARKER}"}
        )

    def pick(self, found: Iterable[Any], branch: str) -> PullRequest | None:
        """opus's PR among `found`: the open one whose head is `branch` in this repo, else
        the highest-numbered such PR (a closed one is history, not the current PR)."""
        mine = [item for item in found if head_ref(item) == branch and self._same_repo(item)]
        if not mine:
            return None
        pulls = [self.pull(item) for item in mine]
        return max(pulls, key=lambda pr: (pr.state == "open", pr.number))

    def pull(self, item: Any) -> PullRequest:
        """A `PullRequest` from this forge's JSON for one pull."""
        return to_pull_request(item, self.label)

    def _same_repo(self, item: Any) -> bool:
        # A fork's branch of the same name is someone else's PR, not opus's.
        head_repo = (item.get("head") or {}).get("repo") or {}
        full_name = head_repo.get("full_name")
        names = {f"{self.owner}/{self.name}".lower(), (self.client.moved_to or "").lower()}
        return full_name is None or str(full_name).lower() in names
