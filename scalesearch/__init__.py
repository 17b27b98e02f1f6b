"""Compound scaling search."""
