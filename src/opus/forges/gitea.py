"""Gitea and Forgejo (`/api/v1`) as a `Forge`: find, open, read and comment on PRs.

Gitea's pull listing has no head-branch filter that every version honours, so `find_pr`
lists the repository's pulls (newest first, bounded) and matches the head branch itself.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from opus.config import PRConfig
from opus.errors import ConfigError
from opus.forges.feedback import build_feedback, remark_from, review_from
from opus.forges.http import ApiClient, iso_z, require_token
from opus.forges.remote import repository_for
from opus.forges.rest import RestForge
from opus.seams import PRFeedback, PullRequest

API_PREFIX = "/api/v1"

CHANGES = "REQUEST_CHANGES"
VERDICTS = frozenset({"APPROVED", "REQUEST_CHANGES"})
"""Review states that replace a reviewer's earlier verdict."""


class GiteaForge(RestForge):
    """Implements `opus.seams.Forge` over the Gitea/Forgejo REST API."""

    label = "Gitea"

    def find_pr(self, branch: str) -> PullRequest | None:
        """The newest PR whose head is `branch` in this repository, open or not."""
        found = self.client.get_all(f"{self.repo_path}/pulls", {"state": "all", "sort": "newest"})
        return self.newest_for(found, branch)

    def open_pr(self, *, branch: str, base: str, title: str, body: str) -> PullRequest:
        """Open a PR from `branch` into `base`."""
        payload = {"title": title, "head": branch, "base": base, "body": body}
        return self.pull(self.client.post(f"{self.repo_path}/pulls", payload))

    def feedback(self, pr: PullRequest, since: datetime | None) -> PRFeedback:
        """The PR's state plus the reviews and comments given after `since`."""
        pull = f"{self.repo_path}/pulls/{pr.number}"
        state = self.pull(self.client.get(pull)).state
        found_reviews = self.client.get_all(f"{pull}/reviews")
        reviews = [review_from(r, changes=CHANGES, verdicts=VERDICTS) for r in found_reviews]
        remarks = [
            remark_from(c, "position", "original_position")
            for r in found_reviews
            if int(r.get("comments_count") or 0) > 0
            for c in self.client.get(f"{pull}/reviews/{r['id']}/comments")
        ]
        params = {"since": iso_z(since)} if since is not None else None
        issue = self.client.get_all(f"{self.repo_path}/issues/{pr.number}/comments", params)
        remarks += [remark_from(c) for c in issue]
        return build_feedback(state, reviews, remarks, since)



def make(
    pr: PRConfig, *, repo: Path, remote: str, vault_root: Path, token: str | None
) -> GiteaForge:
    """The Gitea forge for `repo`; `pr.api_url` is required (there is no public Gitea)."""
    del vault_root  # Gitea keeps PRs on the forge, not in the vault.
    if not pr.api_url:
        raise ConfigError(
            "pr.provider = \"gitea\" needs `pr.api_url`, the server's address "
            "(e.g. https://gitea.example.com); set it in opus.toml or $OPUS_PR__API_URL"
        )
    token = require_token(pr, token)
    owner, name = repository_for(pr.repository, repo=repo, remote=remote)
    client = ApiClient(
        api_base(pr.api_url),
        headers={
            "Authorization": f"token {token}",
            "Accept": "application/json",
            "User-Agent": "opus",
        },
        token_env=pr.token_env,
        repository=f"{owner}/{name}",
        page_param="limit",
    )
    return GiteaForge(client, owner, name)


def api_base(api_url: str) -> str:
    """`api_url` ending in `/api/v1`, whether the user gave the server or the API root."""
    base = api_url.rstrip("/")
    return base if base.endswith(API_PREFIX) else base + API_PREFIX
