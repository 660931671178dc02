"""opus: feature requests in a notes vault become reviewed pull requests."""

__version__ = "0.1.0"
