"""Forges: where pull requests live (`local` vault notes, `github`, `gitea`).

Each implements `opus.seams.Forge`; `forge_for` picks one by `pr.provider` and imports
it only when chosen.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from opus.config import PRConfig
from opus.errors import ConfigError
from opus.seams import Forge

FORGES: dict[str, str] = {
    "local": "opus.forges.local",
    "github": "opus.forges.github",
    "gitea": "opus.forges.gitea",
}
"""Provider name → module whose `make(pr, *, repo, remote, vault_root, token)` builds it."""


def forge_for(
    pr: PRConfig,
    *,
    repo: Path,
    remote: str,
    vault_root: Path,
    token: str | None,
    features_dir: Path | str = "10_features",
) -> Forge:
    """The forge named by `pr.provider` for the target `repo`.

    `token` is the value of `$<pr.token_env>`, read by the caller at the edge.
    Raises `ConfigError` for an unknown provider or a missing token, API URL or repository.
    """
    module_name = FORGES.get(pr.provider)
    if module_name is None:
        raise ConfigError(
            f"config key `pr.provider`: unknown forge {pr.provider!r}; "
            f"use one of {', '.join(sorted(FORGES))}"
        )
    module = importlib.import_module(module_name)
    # Only the local forge lives in the vault, under `vault.features_dir`.
    extra = {"features_dir": features_dir} if pr.provider == "local" else {}
    forge: Forge = module.make(
        pr, repo=repo, remote=remote, vault_root=vault_root, token=token, **extra
    )
    return forge
