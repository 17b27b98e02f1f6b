"""The package's version, written here once (pyproject.toml reads it; best.json and reports record it)."""

__version__ = "0.1.0"
