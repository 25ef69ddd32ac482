"""Acoustic models: one file per part, as in icefall."""
