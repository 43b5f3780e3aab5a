# Copyright (c) edgewarden.hardening contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
# PRIVATE to edgewarden.hardening (see __init__.py).
"""Block-level delta transfer for update artifacts (used on the device and the controller).

Devices have no rsync, so the delta is computed by blocks:

1. the device hashes its current file (the *basis*) per fixed-size block (``scan_file``);
2. the controller hashes the new artifact the same way and plans, per new block, whether
   some basis block already holds those bytes (``plan_runs``): same position first, else
   any position (a block that moved by a multiple of the block size);
3. only the other blocks travel; the device rebuilds the new file aside from basis
   blocks and the literal bytes (``rebuild``), then checks the full SHA-256 and the
   signature before renaming it into place.

Block hashes are truncated SHA-256 (16 bytes): a match only decides which bytes to copy;
a wrong copy would fail the full SHA-256 and the signature, never install.
A change that shifts data by a non-multiple of the block size (an insertion in the middle
of an archive) defeats block matching after that point; filesystem images change in place.
"""

from __future__ import annotations

import hashlib
import os

DEFAULT_BLOCK_SIZE = 65536
MIN_BLOCK_SIZE = 4096
MAX_BLOCK_SIZE = 16 * 1024 * 1024
HASH_BYTES = 16
LITERAL = -1
READ_CHUNK = 1024 * 1024


def block_hash(data):
    return hashlib.sha256(data).hexdigest()[:2 * HASH_BYTES]


def scan_chunks(chunks, block_size, want_blocks=True):
    """``{size, sha256, blocks}`` of a byte stream in one pass: blocks are per-block hashes."""
    total = hashlib.sha256()
    blocks = []
    pending = b""
    size = 0
    for chunk in chunks:
        size += len(chunk)
        total.update(chunk)
        if not want_blocks:
            continue
        pending += chunk
        while len(pending) >= block_size:
            blocks.append(block_hash(pending[:block_size]))
            pending = pending[block_size:]
    if want_blocks and pending:
        blocks.append(block_hash(pending))
    return {"size": size, "sha256": total.hexdigest(), "blocks": blocks if want_blocks else None}


def _read_chunks(path, size=READ_CHUNK):
    with open(path, "rb") as handle:
        while True:
            chunk = handle.read(size)
            if not chunk:
                return
            yield chunk


def scan_file(path, block_size=DEFAULT_BLOCK_SIZE, want_blocks=True):
    # read in multiples of the block size so no block straddles reads needlessly
    step = max(READ_CHUNK - READ_CHUNK % block_size, block_size)
    return scan_chunks(_read_chunks(path, step), block_size, want_blocks)


def sha256_file(path):
    return scan_file(path, want_blocks=False)["sha256"]


def block_count(size, block_size):
    return (size + block_size - 1) // block_size


def block_length(index, size, block_size):
    """Length of block ``index`` of a file of ``size`` bytes (the last one may be short)."""
    return max(0, min(block_size, size - index * block_size))


def plan_sources(new_blocks, basis_blocks):
    """Per new block: the index of a basis block with the same hash, or LITERAL. Pure.

    Preferred, to keep copy runs long: the block after the previous copy, then the same
    position, then the first basis block with that hash.
    """
    basis_blocks = basis_blocks or []
    first = {}
    for index, digest in enumerate(basis_blocks):
        first.setdefault(digest, index)
    sources = []
    for index, digest in enumerate(new_blocks):
        follow = sources[-1] + 1 if sources and sources[-1] != LITERAL else None
        if follow is not None and follow < len(basis_blocks) and basis_blocks[follow] == digest:
            sources.append(follow)
        elif index < len(basis_blocks) and basis_blocks[index] == digest:
            sources.append(index)
        else:
            sources.append(first.get(digest, LITERAL))
    return sources


def runs_from_sources(sources):
    """Compress per-block sources to runs ``[new_start, count, basis_start or -1]``. Pure."""
    runs = []
    for index, src in enumerate(sources):
        if runs:
            start, count, basis = runs[-1]
            if basis == LITERAL and src == LITERAL:
                runs[-1][1] += 1
                continue
            if basis != LITERAL and src == basis + count:
                runs[-1][1] += 1
                continue
        runs.append([index, 1, src])
    return runs


def plan_runs(new_blocks, basis_blocks):
    return runs_from_sources(plan_sources(new_blocks, basis_blocks))


def literal_blocks(runs):
    return sum(count for _start, count, basis in runs if basis == LITERAL)


def literal_size(runs, size, block_size):
    """Bytes of the new file that must travel (literal blocks, the last may be short)."""
    total = 0
    for start, count, basis in runs:
        if basis == LITERAL:
            for index in range(start, start + count):
                total += block_length(index, size, block_size)
    return total


def split_runs(runs, size, block_size, max_literal):
    """Group runs into transfer calls carrying at most ``max_literal`` literal bytes each
    (a single block is never split). Returns a list of run lists, in file order. Pure."""
    calls = [[]]
    carried = 0
    for start, count, basis in runs:
        if basis != LITERAL:
            calls[-1].append([start, count, basis])
            continue
        index = start
        end = start + count
        while index < end:
            length = block_length(index, size, block_size)
            if carried and carried + length > max_literal:
                calls.append([])
                carried = 0
            calls_run = calls[-1]
            if calls_run and calls_run[-1][2] == LITERAL and calls_run[-1][0] + calls_run[-1][1] == index:
                calls_run[-1][1] += 1
            else:
                calls_run.append([index, 1, LITERAL])
            carried += length
            index += 1
    return [call for call in calls if call] or [[]]


def literal_bytes_for(runs, read_block):
    """The literal bytes of ``runs``, concatenated in order; ``read_block(index)`` reads
    one block of the new file (controller side)."""
    parts = []
    for start, count, basis in runs:
        if basis == LITERAL:
            for index in range(start, start + count):
                parts.append(read_block(index))
    return b"".join(parts)


def validate_runs(runs, first_block, size, block_size, basis_size, literal_len):
    """Every problem with a batch of runs before anything is written, as a list. Pure."""
    errors = []
    total_blocks = block_count(size, block_size)
    expected = first_block
    needed = 0
    for run in runs:
        if not isinstance(run, (list, tuple)) or len(run) != 3 or not all(
                isinstance(v, int) and not isinstance(v, bool) for v in run):
            errors.append("run %r is not [start, count, basis] integers" % (run,))
            continue
        start, count, basis = run
        if start != expected:
            errors.append("run %r does not start at block %d" % (run, expected))
        if count < 1 or start + count > total_blocks:
            errors.append("run %r goes past the last block (%d)" % (run, total_blocks - 1))
        if basis != LITERAL:
            if basis < 0 or basis + count > block_count(basis_size or 0, block_size):
                errors.append("run %r copies past the end of the basis" % (run,))
        else:
            for index in range(start, start + count):
                needed += block_length(index, size, block_size)
        expected = start + count
    if needed != literal_len:
        errors.append("runs need %d literal bytes, %d were sent" % (needed, literal_len))
    return errors


def rebuild(out, runs, size, block_size, basis_path, literal):
    """Append the blocks of ``runs`` to the open binary file ``out`` (device side).

    Copies come from ``basis_path``; literal blocks from ``literal`` in order. Raises
    ValueError when the basis does not have the bytes the plan expects (changed since
    it was scanned); the caller discards the partial file.
    """
    offset = 0
    basis = None
    try:
        for start, count, src in runs:
            if src == LITERAL:
                length = sum(block_length(i, size, block_size) for i in range(start, start + count))
                out.write(literal[offset:offset + length])
                offset += length
                continue
            if basis is None:
                basis = open(basis_path, "rb")
            for step in range(count):
                want = block_length(start + step, size, block_size)
                basis.seek((src + step) * block_size)
                data = basis.read(want)
                if len(data) != want:
                    raise ValueError("basis %s is shorter than when it was scanned" % basis_path)
                out.write(data)
    finally:
        if basis is not None:
            basis.close()


def partial_path(dest):
    """Where the new file is built: beside ``dest`` (same filesystem, so rename is atomic)."""
    directory, name = os.path.split(dest)
    return os.path.join(directory, ".%s.ew-partial" % name)
