"""Delivery: the guards, the push, the PR (find-or-open) and the review loop's decisions."""

from opus.delivery.deliver import DeliveryReport, deliver, push_branch, render_pr_body
from opus.delivery.review_loop import decide, render_round_comment

__all__ = [
    "DeliveryReport",
    "decide",
    "deliver",
    "push_branch",
    "render_pr_body",
    "render_round_comment",
]
