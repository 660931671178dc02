"""GitHub (REST v3) as a `Forge`: find, open, read and comment on pull requests, and
read the checks of their head commit (check runs, commit statuses, Actions job logs).

opus never merges; it only opens PRs and reads what reviewers and CI said.
"""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from opus.config import PRConfig
from opus.errors import ForgeError
from opus.forges.checks import (
    actions_job_id,
    annotation_line,
    check_from_run,
    check_from_status,
    log_tail,
    overall,
)
from opus.forges.feedback import build_feedback, head_sha, remark_from, review_from
from opus.forges.http import (
    MAX_PAGES,
    ApiClient,
    ForgeRefused,
    RateLimited,
    iso_z,
    require_token,
    unless_withheld,
)
from opus.forges.remote import repository_for
from opus.forges.rest import RestForge
from opus.seams import Check, CIReport, PRFeedback, PullRequest, RequiredChecks

PUBLIC_API = "https://api.github.com"

CHANGES = "CHANGES_REQUESTED"
VERDICTS = frozenset({"APPROVED", "CHANGES_REQUESTED", "DISMISSED"})
"""Review states that replace a reviewer's earlier verdict."""
LOG_BYTES = 64 * 1024
"""How much of a failed job's log is read (its end); the coder sees its last lines."""
MERGEABLE_WAITS_S = (1.0, 2.0, 4.0)
"""Pauses before asking again while GitHub computes `mergeable` (it answers null)."""


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

    def checks(self, sha: str, *, details: bool = False) -> CIReport:
        """The check runs and commit statuses of `sha`; with `details`, each failing check
        run carries its annotations and, for GitHub Actions, its job's log tail."""
        runs = self._check_runs(sha)
        combined = self.client.get(f"{self.repo_path}/commits/{sha}/status", {"per_page": 100})
        statuses = combined.get("statuses") if isinstance(combined, dict) else None
        found = [self._detailed(run) if details else check_from_run(run) for run in runs]
        found += [check_from_status(item) for item in statuses or []]
        return CIReport(sha=sha, state=overall(found), checks=tuple(found))

    def _check_runs(self, sha: str) -> list[dict[str, Any]]:
        runs: list[dict[str, Any]] = []
        for page in range(1, MAX_PAGES + 1):
            data = self.client.get(f"{self.repo_path}/commits/{sha}/check-runs",
                                   {"per_page": 100, "page": page})  # fmt: skip
            batch = data.get("check_runs") if isinstance(data, dict) else None
            if not isinstance(batch, list):
                raise ForgeError("GitHub returned no check runs list; check `pr.api_url`")
            runs += [run for run in batch if isinstance(run, dict)]
            if not batch or len(runs) >= int(data.get("total_count") or 0):
                break
        return runs

    def _detailed(self, run: dict[str, Any]) -> Check:
        check = check_from_run(run)
        if check.state != "failure":
            return check
        output = run.get("output")
        notes: list[str] = []
        if isinstance(output, dict) and int(output.get("annotations_count") or 0) > 0:
            found = self.client.get_all(f"{self.repo_path}/check-runs/{run['id']}/annotations")
            notes = [annotation_line(item) for item in found if isinstance(item, dict)]
        return replace(check, annotations=tuple(notes), log_tail=self._log_tail(run))

    def _log_tail(self, run: dict[str, Any]) -> str:
        job = actions_job_id(run)
        if job is None:
            return ""
        try:
            raw = self.client.get_tail(f"{self.repo_path}/actions/jobs/{job}/logs", LOG_BYTES)
        except RateLimited:
            raise
        except ForgeError as exc:  # expired or withheld logs must not stop the round
            return f"(the job's log could not be read: {exc})"
        return log_tail(raw)

    def required_checks(self, base: str) -> RequiredChecks | None:
        """The checks required for PRs into `base`: the `required_status_checks` rules
        of the rulesets that apply to it (readable with the repository's metadata) and
        the branch protection's required status checks (readable only with admin rights:
        403 or 404 without them, 404 when the branch is unprotected or requires none).
        None when neither names a check."""
        branch = quote(base, safe="/")
        names: list[str] = []
        sources: list[str] = []
        rules = unless_withheld(lambda: self.client.get(
            f"{self.repo_path}/rules/branches/{branch}", {"per_page": 100}))  # fmt: skip
        for rule in rules if isinstance(rules, list) else []:
            if isinstance(rule, dict) and rule.get("type") == "required_status_checks":
                params = rule.get("parameters") or {}
                names += [str(c["context"]) for c in params.get("required_status_checks") or []
                          if isinstance(c, dict) and c.get("context")]  # fmt: skip
                sources.append("rulesets")
        protection = unless_withheld(lambda: self.client.get(
            f"{self.repo_path}/branches/{branch}/protection/required_status_checks"))
        if isinstance(protection, dict):
            contexts = [str(name) for name in protection.get("contexts") or []]
            contexts += [str(c["context"]) for c in protection.get("checks") or []
                         if isinstance(c, dict) and c.get("context")]  # fmt: skip
            names += contexts
            sources += ["branch protection"] if contexts else []
        if not names:
            return None
        where = " and ".join(dict.fromkeys(sources))
        return RequiredChecks(tuple(dict.fromkeys(names)), f"{where} of {base}")

    def mergeable(self, pr: PullRequest) -> bool | None:
        """GitHub's `mergeable`: false when the PR conflicts with its base. GitHub
        computes it in the background after a push to either side and answers null
        meanwhile; asked again after each of `MERGEABLE_WAITS_S`, then None (unknown)."""
        for wait_s in (0.0, *MERGEABLE_WAITS_S):
            time.sleep(wait_s)
            value = self.client.get(f"{self.repo_path}/pulls/{pr.number}").get("mergeable")
            if isinstance(value, bool):
                return value
        return None

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
