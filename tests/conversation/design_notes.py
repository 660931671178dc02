"""FR bodies written the way the project's design notes are: realistic inputs."""

RATE_LIMITING = """\
# Summary

Clients hammer `/search`; we need per-key rate limiting before the launch.

# Proposed Solution

A token bucket per API key, checked in the request middleware. Limited requests get an
error response and are logged.

# Open Questions

### 1. Which store holds the counters?

- **Option A**: Redis, shared by every worker (we already run it for sessions)
- **Option B**: in-process memory (simple, but four workers means four buckets)

*Recommendation*: Option A, since production runs four workers.
**Decision:**

### 2. Per user or per API key?

- per user
- per API key

**Recommendation:** per API key; users can hold several keys.
**Decision:** per API key (agreed with ops, 2026-01-10)

### 3. Which status code for a limited request?

Recommendation: 429 with a Retry-After header
Decision: TBD

# Decisions

- Decided: token bucket, not a sliding window
- Pending: none

```yaml
Decision:
```
"""

ALL_DECIDED = """\
# Summary

Add a `--json` flag to `calc`.

## Open Questions

1. **Should errors be JSON too?**
   - yes
   - no
   Recommendation: yes
   Decision: yes, `{"error": ...}` on stderr
2. **Pretty-print by default?**
   Decision: no; `--pretty` turns it on

## Decisions

- Decided: the flag is called `--json`
- Pending: —
"""

PENDING_LIST = """\
# Summary

Export reports as CSV.

## Decisions — Pending: delimiter; whether to include totals

Decided: UTF-8 with BOM.

Pending:
- file name pattern
- time zone of the dates

Other notes follow.
"""
