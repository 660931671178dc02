"""GitHub (REST v3) as a `Forge`: find, open, read and comment on pull requests.

opus never merges; it only opens PRs and reads what reviewers said.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from opus.config import PRConfig
from opus.forges.feedback import build_feedback, head_sha, remark_from, review_from
from opus.forges.http import ApiClient, ForgeRefused, iso_z, require_token
from opus.forges.remote import repository_for
from opus.forges.rest import RestForge
from opus.seams import PRFeedback, PullRequest

PUBLIC_API = "https://api.github.com"

CHANGES = "CHANGES_REQUESTED"
VERDICTS = frozenset({"APPROVED", "CHANGES_REQUESTED", "DISMISSED"})
"""Review states that replace a reviewer's earlier verdict."""


class GitHubForge(RestForge):
    """Implements `opus.seams.Forge` over the GitHub REST API."""

    label = "GitHub"

    def find_pr(self, branch: str, base: str | None = None) -> PullRequest | None:
        """The open PR whose head is `branch` in this repository, else its newest one."""
        del base  # the `head` filter names the branch exactly; any base will do
        found = self.client.get_all(
            f"{self.repo_path}/pulls", {"head": f"{self.owner}:{branch}", "state": "all"}
        )
        return self.pick(found, branch)

    def open_pr(self, *, branch: str, base: str, title: str, body: str) -> PullRequest:
        """Open a (non-draft) PR from `branch` into `base`; an open one already there
        (GitHub answers 422 "A pull request already exists") is returned instead."""
        payload = {"title": title, "head": branch, "base": base, "body": body, "draft": False}
        try:
            return self.pull(self.client.post(f"{self.repo_path}/pulls", payload))
        except ForgeRefused as exc:
            existing = self.find_pr(branch) if exc.status == 422 else None
            if existing is not None and existing.state == "open" and "already exists" in str(exc):
                return existing
            raise

    def feedback(self, pr: PullRequest, since: datetime | None) -> PRFeedback:
        """The PR's state plus the reviews and comments given since `since`."""
        pull = self.client.get(f"{self.repo_path}/pulls/{pr.number}")
        state = self.pull(pull).state
        found_reviews = self.client.get_all(f"{self.repo_path}/pulls/{pr.number}/reviews")
        reviews = [review_from(r, changes=CHANGES, verdicts=VERDICTS) for r in found_reviews]
        params = {"since": iso_z(since)} if since is not None else None
        found = self.client.get_all(f"{self.repo_path}/pulls/{pr.number}/comments", params)
        found += self.client.get_all(f"{self.repo_path}/issues/{pr.number}/comments", params)
        remarks = [remark_from(c, "line", "original_line") for c in found]
        return build_feedback(state, reviews, remarks, since, head=head_sha(pull))

def make(
    pr: PRConfig, *, repo: Path, remote: str, vault_root: Path, token: str | None
) -> GitHubForge:
    """The GitHub forge for `repo` (owner/name from `pr.repository` or the remote URL)."""
    del vault_root  # GitHub keeps PRs on the forge, not in the vault.
    token = require_token(pr, token)
    owner, name = repository_for(pr.repository, repo=repo, remote=remote)
    client = ApiClient(
        pr.api_url or PUBLIC_API,
        headers={
            "Authorization": f"Bearer {token}",
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": "2022-11-28",
            "User-Agent": "opus",
        },
        token_env=pr.token_env,
        repository=f"{owner}/{name}",
        page_param="per_page",
    )
    return GitHubForge(client, owner, name)
