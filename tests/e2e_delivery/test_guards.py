"""Guards before the push, end to end: a blocked delivery fails the job with the guard's
message, pushes nothing and opens no PR."""

from __future__ import annotations

from pathlib import Path

from opus.config import GitConfig
from opus.domain import JobState
from opus.pipeline.executor import Outcome
from opus.testing.engine import Write
from tests.e2e_delivery.conftest import forge_config
from tests.e2e_delivery.harness import GREET_V1, Bench, code, make_bench
from tests.standins.forge import ForgeStandin

AWS_ID = "AKIA" + "Z3MHQ7XRLTN4VPQE"
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/" + "bPxRfiCYzEXAMPLEKEY"
PRIVATE_KEY = (
    "-----BEGIN RSA " + "PRIVATE KEY-----\nMIIEpAIBAAKCAQEA1c0mJw2cN0xq3\n"
    "-----END RSA PRIVATE KEY-----\n"
)


def _blocked(bench: Bench, forge: ForgeStandin | None = None, *, extra: str = "") -> str:
    """Run the FR; assert it failed with nothing pushed and no PR; the failure reason."""
    bench.write_fr(extra=extra)
    job = bench.enqueue()
    outcome = bench.work()
    assert isinstance(outcome, Outcome) and outcome.kind == "failed", outcome
    failed = bench.store.get(job.id)
    assert failed.state is JobState.FAILED and failed.pr_url is None
    assert bench.remote_branches() == ["main"]
    if forge is not None:
        assert forge.posts("/pulls") == [] and forge.unexpected == []
    review = bench.vault / "10_features" / "05_review"
    assert not list(review.glob("PR-*.md"))
    bench.intake.tick()
    _path, meta = bench.note()
    assert meta["status"] == "failed" and meta["error"]
    return failed.error or ""


def test_a_protected_branch_is_never_pushed(tmp_path: Path, forge: ForgeStandin) -> None:
    # The job's branch is in `git.protected`: delivery refuses before any push.
    protected = GitConfig(protected=["main", "opus/fr-1-add-greeting"])
    bench = make_bench(tmp_path, pr=forge_config(forge), git=protected)

    error = _blocked(bench, forge)

    assert "refusing to push 'opus/fr-1-add-greeting'" in error and "git.protected" in error


def test_a_change_outside_allowed_paths_is_blocked(tmp_path: Path, forge: ForgeStandin) -> None:
    stray = [Write("other/x.py", "x = 1\n"), *GREET_V1]
    bench = make_bench(tmp_path, pr=forge_config(forge), rounds=(stray,))

    error = _blocked(bench, forge, extra='allowed_paths: ["src/**"]\n')

    assert "outside allowed_paths (src/**)" in error
    assert "  other/x.py" in error.splitlines()
    assert "src/app.py" not in error


def test_a_planted_key_is_blocked_without_printing_it(tmp_path: Path) -> None:
    leaky = code(
        f"def greet() -> str:\n    return 'hi'\n\n\nAWS_KEY = {AWS_ID!r}\n"
        f"AWS_SECRET = {AWS_SECRET!r}\n"
    )
    key_file = Write("src/deploy_key.pem", PRIVATE_KEY)
    bench = make_bench(tmp_path, rounds=([key_file, *leaky],))

    error = _blocked(bench)

    assert "likely secrets" in error
    assert ":src/app.py:5: AWS Access Key" in error
    assert ":src/deploy_key.pem:1: Private Key" in error
    for secret in (AWS_ID, AWS_SECRET, "MIIEpAIBAAKCAQEA1c0mJw2cN0xq3"):
        assert secret not in error
