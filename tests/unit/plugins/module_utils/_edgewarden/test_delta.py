# Copyright (c) edgewarden.hardening contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import hashlib
import random

import pytest

from ansible_collections.edgewarden.hardening.plugins.module_utils._edgewarden import delta

BS = 4096
L = delta.LITERAL


def data(size, seed=1):
    rng = random.Random(seed)
    return bytes(rng.getrandbits(8) for _index in range(size))


@pytest.mark.parametrize("sources, runs", [
    ([], []),
    ([0, 1, 2], [[0, 3, 0]]),
    ([L, L, 2], [[0, 2, L], [2, 1, 2]]),
    ([0, L, 2, 3], [[0, 1, 0], [1, 1, L], [2, 2, 2]]),
    ([5, 6, 0, 1], [[0, 2, 5], [2, 2, 0]]),
    ([1, 1, 1], [[0, 1, 1], [1, 1, 1], [2, 1, 1]]),
])
def test_runs_from_sources(sources, runs):
    assert delta.runs_from_sources(sources) == runs


@pytest.mark.parametrize("new, basis, expected", [
    (["a", "b", "c"], ["a", "b", "c"], [0, 1, 2]),
    (["a", "x", "c"], ["a", "b", "c"], [0, L, 2]),
    (["a", "b", "c", "d"], ["a", "b"], [0, 1, L, L]),
    (["c", "a"], ["a", "b", "c"], [2, 0]),       # moved by whole blocks
    (["a", "a"], ["b", "a", "a"], [1, 2]),       # same position first, then first match
    (["a"], None, [L]),
])
def test_plan_sources(new, basis, expected):
    assert delta.plan_sources(new, basis) == expected


@pytest.mark.parametrize("size", [0, 1, BS - 1, BS, BS + 1, 5 * BS + 17])
def test_scan_matches_hashlib(tmp_path, size):
    blob = data(size)
    path = tmp_path / "f"
    path.write_bytes(blob)
    scan = delta.scan_file(str(path), BS)
    assert scan["size"] == size
    assert scan["sha256"] == hashlib.sha256(blob).hexdigest()
    assert scan["blocks"] == [delta.block_hash(blob[i:i + BS]) for i in range(0, size, BS)]
    assert len(scan["blocks"][0]) == 2 * delta.HASH_BYTES if size else scan["blocks"] == []


@pytest.mark.parametrize("runs, size, literal", [
    ([[0, 2, L], [2, 1, 0]], 3 * BS, 2 * BS),
    ([[0, 1, 0], [1, 1, L]], BS + 100, 100),        # the short last block is literal
    ([[0, 4, 0]], 4 * BS, 0),
])
def test_literal_size(runs, size, literal):
    assert delta.literal_size(runs, size, BS) == literal


def test_split_runs_respects_the_chunk_and_keeps_order():
    runs = [[0, 3, L], [3, 2, 0], [5, 4, L]]
    calls = delta.split_runs(runs, 9 * BS, BS, 2 * BS)
    flat = [run for call in calls for run in call]
    # every block once, in order
    covered = [i for start, count, _b in flat for i in range(start, start + count)]
    assert covered == list(range(9))
    for call in calls:
        assert delta.literal_size(call, 9 * BS, BS) <= 2 * BS
    assert len(calls) == 4


def test_split_runs_without_literals_is_one_call():
    assert delta.split_runs([[0, 5, 0]], 5 * BS, BS, BS) == [[[0, 5, 0]]]
    assert delta.split_runs([], 0, BS, BS) == [[]]


@pytest.mark.parametrize("runs, first, literal_len, message", [
    ([[1, 1, L]], 0, BS, "does not start at block 0"),
    ([[0, 9, L]], 0, 9 * BS, "goes past the last block"),
    ([[0, 1, 7]], 0, 0, "copies past the end of the basis"),
    ([[0, 1, L]], 0, 5, "need 4096 literal bytes, 5 were sent"),
    ([["0", 1, L]], 0, BS, "is not [start, count, basis] integers"),
])
def test_validate_runs_names_the_problem(runs, first, literal_len, message):
    errors = delta.validate_runs(runs, first, 4 * BS, BS, 2 * BS, literal_len)
    assert any(message in e for e in errors), errors


@pytest.mark.parametrize("change", [
    lambda b: b,                                              # identical
    lambda b: b[:100] + b"X" + b[101:],                       # one byte in the first block
    lambda b: b[:-10] + b"0123456789",                        # the short last block
    lambda b: b + data(BS + 5, seed=9),                       # grown
    lambda b: b[:2 * BS],                                     # shrunk
    lambda b: b[3 * BS:4 * BS] + b[:3 * BS] + b[4 * BS:],     # blocks moved
    lambda b: data(len(b), seed=7),                           # nothing in common
])
def test_rebuild_round_trip(tmp_path, change):
    basis_bytes = data(5 * BS + 123)
    new_bytes = change(basis_bytes)
    basis = tmp_path / "basis"
    basis.write_bytes(basis_bytes)
    new = tmp_path / "new"
    new.write_bytes(new_bytes)
    new_scan = delta.scan_file(str(new), BS)
    runs = delta.plan_runs(new_scan["blocks"], delta.scan_file(str(basis), BS)["blocks"])

    def read_block(index):
        return new_bytes[index * BS:(index + 1) * BS]

    out_path = tmp_path / "out"
    with open(str(out_path), "wb") as out:
        for batch in delta.split_runs(runs, len(new_bytes), BS, 2 * BS):
            literal = delta.literal_bytes_for(batch, read_block)
            first = batch[0][0] if batch else 0
            assert delta.validate_runs(batch, first, len(new_bytes), BS, len(basis_bytes), len(literal)) == []
            delta.rebuild(out, batch, len(new_bytes), BS, str(basis), literal)
    assert out_path.read_bytes() == new_bytes
    sent = delta.literal_size(runs, len(new_bytes), BS)
    if change(basis_bytes) == basis_bytes:
        assert sent == 0


def test_one_changed_byte_sends_one_block():
    basis = [delta.block_hash(bytes([i]) * BS) for i in range(10)]
    new = list(basis)
    new[4] = delta.block_hash(b"changed")
    runs = delta.plan_runs(new, basis)
    assert runs == [[0, 4, 0], [4, 1, L], [5, 5, 5]]
    assert delta.literal_blocks(runs) == 1


def test_rebuild_refuses_a_basis_that_shrank(tmp_path):
    basis = tmp_path / "basis"
    basis.write_bytes(b"a" * BS)
    with open(str(tmp_path / "out"), "wb") as out:
        with pytest.raises(ValueError, match="shorter than when it was scanned"):
            delta.rebuild(out, [[0, 2, 0]], 2 * BS, BS, str(basis), b"")


def test_partial_path_is_beside_dest():
    assert delta.partial_path("/data/fw.img") == "/data/.fw.img.ew-partial"
