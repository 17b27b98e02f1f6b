"""Compound scaling search: find α, β, γ on your data and expand them into a model family."""

__version__ = "0.1.0"
