# Copyright (c) edgewarden.hardening contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
# PRIVATE to edgewarden.hardening (see __init__.py).
"""File helpers for devices: reads that tolerate absence, read-only detection, and
one atomic write (temp file in the same directory, validate, fsync, rename)."""

from __future__ import annotations

import os
import tempfile


def read_text(path, default=None):
    """The file's text, or ``default`` when it does not exist or cannot be read."""
    try:
        # device files are not always UTF-8 (cmdlines, odd locales): never fail a read on it
        with open(path, "r", errors="replace") as handle:
            return handle.read()
    except (IOError, OSError):
        return default


def read_first_line(path, default=None):
    text = read_text(path)
    if text is None:
        return default
    return text.split("\n", 1)[0].strip()


def is_readonly_fs(path):
    """True when the filesystem holding ``path`` (or its nearest existing parent) is read-only."""
    probe = os.path.abspath(path)
    while not os.path.exists(probe):
        parent = os.path.dirname(probe)
        if parent == probe:
            break
        probe = parent
    try:
        return bool(os.statvfs(probe).f_flag & os.ST_RDONLY)
    except OSError:
        return False


class ValidationError(Exception):
    """The candidate content was refused by its validator; nothing was replaced."""


def fsync_directory(directory):
    """Make the rename itself durable: a power cut right after it must not bring back the
    old file (or no file). Best effort: some filesystems refuse fsync on a directory."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path, content, mode=0o644, validate=None):
    """Write ``content`` to ``path`` so readers see the old or the new file, never half.

    ``validate`` is an optional callable taking the temp file's path and returning
    ``(ok, message)``; when it refuses, the temp file is removed and ValidationError
    is raised with its message, leaving ``path`` untouched.
    """
    directory = os.path.dirname(os.path.abspath(path)) or "."
    fd, tmp = tempfile.mkstemp(prefix=".edgewarden-", dir=directory)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        if validate is not None:
            ok, message = validate(tmp)
            if not ok:
                raise ValidationError(message)
        os.rename(tmp, path)
        tmp = None
        fsync_directory(directory)
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)
