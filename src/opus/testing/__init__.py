"""Fakes for fast unit tests and for `opus demo`: fake clock, scripted engine, recording
notifier, and an in-memory registry. Integration tests still use the real parts."""
