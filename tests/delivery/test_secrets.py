"""The secret scan with the real detect-secrets plugins over real branch history."""

from __future__ import annotations

from pathlib import Path

import pytest

from opus.delivery.guards import check_secrets
from opus.delivery.secrets import PR_BODY, added_lines, scan_added
from opus.errors import DeliveryBlocked
from tests.conftest import run_git
from tests.delivery.conftest import opus_commit

# Built from parts so that this file itself is not a credential to scanners.
AWS_ID = "AKIA" + "Z3MHQ7XRLTN4VPQE"
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/" + "bPxRfiCYzq8vNa3kQe"
GH_TOKEN = "ghp_" + "wWPw5k4aXcaT4fNP0UcnZwJUVFk6LO0pINUx"
KEY_BLOCK = (
    "-----BEGIN RSA " + "PRIVATE KEY-----\nMIIEpAIBAAKCAQEA1c0mJw2cN0x\n"
    "-----END RSA PRIVATE KEY-----\n"
)

CLEAN_CODE = '''\
import hashlib

COMMIT = "3f786850e387550fdab836ed7e6dc881de23001b"
USER_ID = "550e8400-e29b-41d4-a716-446655440000"
password = "hunter2"  # a test fixture, not a credential
URL = "http://127.0.0.1:8080/api/v1"
ALPHABET = "abcdefghijklmnopqrstuvwxyz"


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
'''


def _blocked(work: Path, files: dict[str, str]) -> str:
    opus_commit(work, files)
    with pytest.raises(DeliveryBlocked) as info:
        check_secrets(work, "main")
    return str(info.value)


def test_aws_key_is_caught_without_printing_it(work: Path) -> None:
    message = _blocked(
        work, {"src/settings.py": f'KEY_ID = "{AWS_ID}"\naws_secret_access_key = "{AWS_SECRET}"\n'}
    )
    assert "src/settings.py:1: AWS Access Key" in message
    assert AWS_ID not in message and AWS_SECRET not in message


def test_private_key_block_is_caught(work: Path) -> None:
    message = _blocked(work, {"deploy/id_rsa": "# key\n" + KEY_BLOCK})
    assert "deploy/id_rsa:2: Private Key" in message


def test_github_token_is_caught(work: Path) -> None:
    message = _blocked(work, {"ci/config.yml": f"token: {GH_TOKEN}\n"})
    assert "ci/config.yml:1: GitHub Token" in message and GH_TOKEN not in message


def test_clean_code_passes(work: Path) -> None:
    opus_commit(work, {"src/clean.py": CLEAN_CODE, "package-lock.json": '{"integrity": '
                       '"sha512-Yb3gMxW1SGAl7iPZZFuVn4Y+RrcLa0nSbWVt1dXy8FQ4YpDMu9E6PZJyxN2d"}\n'})
    check_secrets(work, "main", pr_body="All tests pass. Plan: add greet().")


def test_a_secret_deleted_by_a_later_commit_still_blocks(work: Path) -> None:
    opus_commit(work, {"src/tmp.py": f'T = "{GH_TOKEN}"\n'})
    sha = run_git(work, "rev-parse", "--short", "HEAD")
    run_git(work, "rm", "-q", "src/tmp.py")
    run_git(work, "commit", "-q", "-m", "oops", "--trailer", "Opus-Job: 7")
    with pytest.raises(DeliveryBlocked) as info:
        check_secrets(work, "main")
    assert f"{sha}:src/tmp.py:1: GitHub Token" in str(info.value)


def test_allowlist_pragma_does_not_hide_a_secret(work: Path) -> None:
    message = _blocked(work, {"src/a.py": f'T = "{GH_TOKEN}"  # pragma: allowlist secret\n'})
    assert "GitHub Token" in message


def test_secret_in_the_pr_body_blocks(work: Path) -> None:
    with pytest.raises(DeliveryBlocked, match=f"{PR_BODY}:3: AWS Access Key"):
        check_secrets(work, "main", pr_body=f"Tests passed.\n\nenv: {AWS_ID}\n")


def test_added_lines_track_new_file_line_numbers() -> None:
    diff = (
        "diff --git a/x.py b/x.py\n--- a/x.py\n+++ b/x.py\n"
        "@@ -1,2 +1,3 @@\n keep\n+new one\n keep too\n@@ -10,0 +11,2 @@\n+eleven\n+twelve\n"
        "diff --git a/gone.py b/gone.py\n--- a/gone.py\n+++ /dev/null\n@@ -1 +0,0 @@\n-bye\n"
        'diff --git "a/sp ace\\303\\251.py" "b/sp ace\\303\\251.py"\n'
        '--- /dev/null\n+++ "b/sp ace\\303\\251.py"\n@@ -0,0 +1 @@\n+hi\n'
        "diff --git a/y.md b/y.md\n--- a/y.md\n+++ b/y.md\n@@ -1,2 +1,3 @@\n-old\n"
        "+++ not a header\n+@@ -1 +1 @@ not a hunk\n-gone\n+last\n"
    )
    assert added_lines(diff) == {
        "x.py": {2: "new one", 11: "eleven", 12: "twelve"},
        "sp ace\u00e9.py": {1: "hi"},
        "y.md": {1: "++ not a header", 2: "@@ -1 +1 @@ not a hunk", 3: "last"},
    }


def test_text_with_an_ignored_extension_is_still_scanned() -> None:
    found = scan_added({"assets/logo.png": {4: f'k = "{GH_TOKEN}"'}})
    assert "assets/logo.png:4: GitHub Token" in [str(f) for f in found]
