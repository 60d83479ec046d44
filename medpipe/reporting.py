"""Rich rendering of stage results for the CLI (one function per result type; no logic)."""

from __future__ import annotations
