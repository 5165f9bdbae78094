"""Conformance checks of a software integrating Pro Santé Connect (filled in below)."""
