"""Swap a freshly written folder into place so that a kill at any instant leaves the old or the new one.

Linux's ``renameat2(RENAME_EXCHANGE)`` exchanges two paths in one step. Where it is not available (other
systems, some file systems) the fallback renames the old folder aside first; a kill between the two renames
then leaves it under ``.<name>.old-*``, and :func:`recover` puts it back on the next run.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import uuid
from pathlib import Path

_AT_FDCWD = -100
_RENAME_EXCHANGE = 2


def _exchange(a: Path, b: Path) -> bool:
    """Atomically exchange ``a`` and ``b`` (both exist); False when the system cannot."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (getattr(os, "ENOSYS", 38), 22, 95):  # ENOSYS, EINVAL (file system), EOPNOTSUPP: fall back
        return False
    raise OSError(err, os.strerror(err), str(b))


def recover(target: Path) -> None:
    """Undo an interrupted fallback swap: put ``.<name>.old-*`` back when ``target`` is missing, else drop it."""
    leftovers = sorted(target.parent.glob(f".{target.name}.old-*"), key=lambda p: p.stat().st_mtime)
    if leftovers and not target.exists():
        leftovers.pop().rename(target)
    for old in leftovers:
        shutil.rmtree(old, ignore_errors=True)


def swap_in(new: Path, target: Path) -> None:
    """Make ``new`` the folder at ``target`` (same file system); the previous ``target`` is deleted."""
    target.parent.mkdir(parents=True, exist_ok=True)
    recover(target)
    if not target.exists():
        new.rename(target)
        return
    if _exchange(new, target):
        shutil.rmtree(new, ignore_errors=True)  # ``new`` now holds the previous folder
        return
    old = _aside(target)
    target.rename(old)
    new.rename(target)
    shutil.rmtree(old, ignore_errors=True)


def discard(target: Path) -> None:
    """Delete the folder at ``target`` in one step for readers: it is renamed aside first, so a kill during the
    delete leaves ``target`` absent, never half-deleted (the next swap or discard drops the leftover)."""
    recover(target)
    old = _aside(target)
    target.rename(old)
    shutil.rmtree(old, ignore_errors=True)


def _aside(target: Path) -> Path:
    return target.parent / f".{target.name}.old-{uuid.uuid4().hex[:8]}"
