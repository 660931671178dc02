"""Gitea and Forgejo (`/api/v1`) as a `Forge`: find, open, read and comment on PRs, and
read their head commit's statuses (Gitea Actions and other CI report through them).

`find_pr` asks the exact `GET /repos/{owner}/{repo}/pulls/{base}/{head}` (Gitea ≥ 1.22).
That lookup returns *a* pull of the pair, not the newest (models/issues/pull.go
`GetPullRequestByBaseHeadInfo` has no order), so when it is not open the open pulls are
listed too: one open pull per pair is all Gitea allows. Issue comments are listed once:
that endpoint takes only `since`/`before` and answers every comment, whatever `page`.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from opus.config import PRConfig
from opus.errors import ConfigError, ForgeError
from opus.forges.checks import check_from_status, overall
from opus.forges.feedback import build_feedback, head_sha, remark_from, review_from
from opus.forges.http import ApiClient, ForgeRefused, iso_z, require_token, unless_withheld
from opus.forges.remote import repository_for
from opus.forges.rest import RestForge
from opus.seams import CIReport, PRFeedback, PullRequest, RequiredChecks

API_PREFIX = "/api/v1"

CHANGES = "REQUEST_CHANGES"
VERDICTS = frozenset({"APPROVED", "REQUEST_CHANGES"})
"""Review states that replace a reviewer's earlier verdict."""


class GiteaForge(RestForge):
    """Implements `opus.seams.Forge` over the Gitea/Forgejo REST API."""

    label = "Gitea"

    def find_pr(self, branch: str, base: str | None = None) -> PullRequest | None:
        """The open PR whose head is `branch` (into `base`), else the pair's known one."""
        if base is None or "/" in base:
            # Only the head is a catch-all segment of the exact route: list instead.
            return self.pick(self.client.get_all(f"{self.repo_path}/pulls", {"state": "all"}),
                             branch)
        path = f"{self.repo_path}/pulls/{quote(base, safe='')}/{quote(branch, safe='/')}"
        item = self.client.get_optional(path)
        exact = self.pull(item) if item is not None else None
        if exact is None or exact.state == "open":
            return exact
        # A closed pull of the pair may hide a newer open one.
        found = self.client.get_all(f"{self.repo_path}/pulls", {"state": "open"})
        return self.pick(found, branch) or exact

    def open_pr(self, *, branch: str, base: str, title: str, body: str) -> PullRequest:
        """Open a PR from `branch` into `base`; when one is open already (Gitea answers
        409 Conflict) that one is returned."""
        payload = {"title": title, "head": branch, "base": base, "body": body}
        try:
            return self.pull(self.client.post(f"{self.repo_path}/pulls", payload))
        except ForgeRefused as exc:
            existing = self.find_pr(branch, base) if exc.status == 409 else None
            if existing is None or existing.state != "open":
                raise
            return existing

    def feedback(self, pr: PullRequest, since: datetime | None) -> PRFeedback:
        """The PR's state plus the reviews and comments given since `since`."""
        pull = f"{self.repo_path}/pulls/{pr.number}"
        item = self.client.get(pull)
        state = self.pull(item).state
        found_reviews = self.client.get_all(f"{pull}/reviews")
        reviews = [review_from(r, changes=CHANGES, verdicts=VERDICTS) for r in found_reviews]
        remarks = [
            remark_from(c, "position", "original_position")
            for r in found_reviews
            if int(r.get("comments_count") or 0) > 0
            for c in self.client.get(f"{pull}/reviews/{r['id']}/comments")
        ]
        params = {"since": iso_z(since)} if since is not None else None
        issue = self.client.get(f"{self.repo_path}/issues/{pr.number}/comments", params)
        remarks += [remark_from(c) for c in _unique(issue)]
        return build_feedback(state, reviews, remarks, since, head=head_sha(item))

    def checks(self, sha: str, *, details: bool = False) -> CIReport:
        """The commit statuses of `sha` (Gitea's combined status: the latest per context).
        Gitea publishes no annotations or logs for them, so `details` adds nothing."""
        del details
        data = self.client.get(f"{self.repo_path}/commits/{sha}/status", {"limit": 50})
        statuses = data.get("statuses") if isinstance(data, dict) else None
        found = [check_from_status(item, key="status") for item in statuses or []
                 if isinstance(item, dict)]  # fmt: skip
        return CIReport(sha=sha, state=overall(found), checks=tuple(found))

    def required_checks(self, base: str) -> RequiredChecks | None:
        """The status contexts the branch protection of `base` requires, from `GET
        /branches/{branch}`: Gitea resolves which protection rule applies (rule names
        may be globs) and shows it to anyone who may read the repository, while listing
        the rules themselves (`/branch_protections`) needs admin rights. The contexts
        are patterns (`ci/*`). None when the branch is unprotected or requires none."""
        path = f"{self.repo_path}/branches/{quote(base, safe='/')}"
        branch = unless_withheld(lambda: self.client.get(path))
        if not isinstance(branch, dict) or not branch.get("enable_status_check"):
            return None
        names = tuple(str(name) for name in branch.get("status_check_contexts") or [] if name)
        if not names:
            return None  # Gitea then wants every status green: what opus does anyway
        return RequiredChecks(names, f"branch protection of {base}", patterns=True)

    def mergeable(self, pr: PullRequest) -> bool | None:
        """Gitea's `mergeable`. Gitea also says false while its conflict check is still
        running, so opus confirms a false with `git merge-tree` before calling it a
        conflict (`opus.daemon.base_watch`)."""
        value = self.client.get(f"{self.repo_path}/pulls/{pr.number}").get("mergeable")
        return value if isinstance(value, bool) else None


def _unique(found: Any) -> list[Any]:
    """Comments by id, each once (a listing may repeat what a proxy served twice)."""
    if not isinstance(found, list):
        raise ForgeError("Gitea returned no list of issue comments; check `pr.api_url`")
    seen: dict[Any, Any] = {}
    for comment in found:
        seen.setdefault(comment.get("id", id(comment)), comment)
    return list(seen.values())


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
