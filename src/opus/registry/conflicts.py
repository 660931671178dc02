"""Running a registry transaction again when the database aborted it for a conflict.

PostgreSQL resolves a deadlock between two transactions (e.g. two daemons recording a
checkpoint and moving the same job) by rolling one of them back with "deadlock
detected"; its documentation says to retry. Each registry method that writes is one
transaction, so the whole method runs again, after a short random pause that keeps the
two from colliding the same way twice. After `CONFLICT_ATTEMPTS` the conflict reaches
the caller as `StoreConflict`, saying how often it was tried.
"""

from __future__ import annotations

import functools
import logging
import random
import time
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from opus.errors import StoreConflict

log = logging.getLogger(__name__)

CONFLICT_SQLSTATES = frozenset({"40P01", "40001"})
"""PostgreSQL's "deadlock detected" and "could not serialize access": the server rolled
the transaction back to let another finish; running it again is the documented answer.
(psycopg files the first under `OperationalError`, not `TransactionRollback`: tell them
by SQLSTATE.)"""
CONFLICT_ATTEMPTS = 5
PAUSE_S = 0.02
"""The pause before attempt n is up to n times this (random), so at most ~0.3 s in all."""

P = ParamSpec("P")
R = TypeVar("R")


def retry_conflicts(transaction: Callable[P, R]) -> Callable[P, R]:
    """Run `transaction` again (bounded) while the database aborts it for a conflict."""

    @functools.wraps(transaction)
    def retried(*args: P.args, **kwargs: P.kwargs) -> R:
        for attempt in range(1, CONFLICT_ATTEMPTS):
            try:
                return transaction(*args, **kwargs)
            except StoreConflict as err:
                log.info("%s: %s; running it again (attempt %d of %d)",
                         transaction.__name__, err, attempt + 1, CONFLICT_ATTEMPTS)
                time.sleep(random.uniform(0.5, 1.0) * PAUSE_S * attempt)
        try:
            return transaction(*args, **kwargs)
        except StoreConflict as err:
            raise StoreConflict(
                f"{err}; it collided {CONFLICT_ATTEMPTS} times in a row"
            ) from err

    return retried
