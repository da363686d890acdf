"""Where things are in the repository, for tests that read its files or run its scripts."""

from __future__ import annotations

from pathlib import Path

#: the repository's root (the folder holding ``libs/``, ``services/``, ``deploy/``)
ROOT = Path(__file__).resolve().parents[2]
