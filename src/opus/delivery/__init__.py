"""Delivery: the guards (`guards`), the push and the PR, found or opened (`deliver`), the
review loop's decisions (`review_loop`) and the record of PR reactions (`reactions`).

Nothing is imported here, so a reader of a pure module (the boards read `reactions`)
loads no forge.
"""
