"""The daemon: the loop that wires intake, claims, supervision and PR polling to the clock,
the file watcher and systemd.

The pure cores live next to it and are testable without sleeping: `polling` (adaptive
poll delays and backoff), `breaker` (per repo / engine circuit breakers), `sdnotify`
(`WatchdogGate`, plus the thin socket shell `SystemdNotifier`) and `logs` (per-job log
files and journald-friendly stderr logging).
"""
