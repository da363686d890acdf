"""Experiment registry on Redis (adapter): specs, lifecycle, split history, audit."""
