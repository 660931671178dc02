"""The pipeline: a job's worktree, its stages (plan, code, test, review, deliver), the executor."""
