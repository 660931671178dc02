"""The branch-rule half of the forge stand-in: which checks a base branch requires, in the
published shapes, refused where the real services refuse.

GitHub keeps required checks in two places. Branch protection (`GET
/repos/{o}/{r}/branches/{branch}/protection/required_status_checks`, a status-check-policy)
answers 404 "Branch not protected" for an unprotected branch, 404 "Required status checks
not enabled" for a protected one that requires none, and 403 to a token without admin
rights on the repository. Rulesets (`GET /repos/{o}/{r}/rules/branches/{branch}`, a list of
rules of every type) answer anyone who may read the repository, `[]` when none applies.

Gitea shows the protection that applies to a branch in `GET /repos/{o}/{r}/branches/{branch}`
(`enable_status_check`, `status_check_contexts` — patterns), 404 for a branch that does
not exist.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Rule:
    """What a base branch requires."""

    contexts: list[str] = field(default_factory=list)
    """GitHub branch protection's `contexts` (or Gitea's `status_check_contexts`)."""
    checks: list[str] = field(default_factory=list)
    """GitHub branch protection's `checks` entries (a context each, any app)."""
    ruleset: list[str] = field(default_factory=list)
    """GitHub: the contexts of a ruleset's `required_status_checks` rule."""
    protected: bool = True
    """False: only a ruleset (GitHub), no branch protection."""
    admin: bool = True
    """GitHub: whether the token may read branch protection (403 otherwise)."""


class Rules:
    """Every base branch's rule, and the replies about it."""

    def __init__(self, flavor: str, api_url: Any, repo: Any) -> None:
        self.flavor = flavor
        self.by_branch: dict[str, Rule] = {}
        self._api_url = api_url
        self._repo = repo

    def protect(self, branch: str, rule: Rule) -> None:
        self.by_branch[branch] = rule

    # ------------------------------------------------------------------ GitHub

    def required_status_checks(self, branch: str) -> tuple[int, Any]:
        rule = self.by_branch.get(branch)
        if rule is None or not rule.protected:
            return 404, _error("Branch not protected")
        if not rule.admin:
            return 403, _error("Resource not accessible by personal access token")
        if not rule.contexts and not rule.checks:
            return 404, _error("Required status checks not enabled")
        url = f"{self._api_url()}/repos/{self._repo()}/branches/{branch}/protection/" \
              "required_status_checks"  # fmt: skip
        return 200, {
            "url": url, "strict": False, "contexts": list(rule.contexts),
            "contexts_url": f"{url}/contexts",
            "checks": [{"context": name, "app_id": None}
                       for name in [*rule.contexts, *rule.checks]],
        }  # fmt: skip

    def branch_rules(self, branch: str) -> list[dict[str, Any]]:
        rule = self.by_branch.get(branch)
        info = {"ruleset_source_type": "Repository", "ruleset_source": self._repo(),
                "ruleset_id": 42}  # fmt: skip
        found: list[dict[str, Any]] = [{"type": "deletion", **info}]
        if rule is not None and rule.ruleset:
            found.append({
                "type": "required_status_checks", **info,
                "parameters": {
                    "strict_required_status_checks_policy": False,
                    "required_status_checks": [{"context": name} for name in rule.ruleset],
                },
            })  # fmt: skip
        return found

    # ------------------------------------------------------------------ Gitea

    def gitea_branch(self, branch: str, sha: str) -> dict[str, Any]:
        rule = self.by_branch.get(branch)
        return {
            "name": branch,
            "commit": {"id": sha, "message": "", "url": ""},
            "protected": rule is not None,
            "required_approvals": 0,
            "enable_status_check": bool(rule and rule.contexts),
            "status_check_contexts": list(rule.contexts) if rule else [],
            "user_can_push": True, "user_can_merge": True,
            "effective_branch_protection_name": "",
        }  # fmt: skip


def _error(message: str) -> dict[str, str]:
    return {"message": message,
            "documentation_url": "https://docs.github.com/rest/branches/branch-protection"}
