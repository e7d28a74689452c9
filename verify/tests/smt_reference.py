#!/usr/bin/env python3
"""An independent implementation of the index's sparse Merkle tree, from its definition
(verify/src/index/smt.rs, the module doc) with Python's hashlib only: prints the root of
the pairs (SHA-256("crate-<i>@1.0.0"), SHA-256("value-<i>")) for i < N, in hex."""
import hashlib
import sys


def h(b: bytes) -> bytes:
    return hashlib.sha256(b).digest()


EMPTY = bytes(32)


def bit(key: bytes, depth: int) -> int:
    return (key[depth // 8] >> (7 - depth % 8)) & 1


def tree(depth: int, pairs: list) -> bytes:
    if not pairs:
        return EMPTY
    if len(pairs) == 1:
        k, v = pairs[0]
        return h(b"\x00" + k + v)
    zeros = [p for p in pairs if bit(p[0], depth) == 0]
    ones = [p for p in pairs if bit(p[0], depth) == 1]
    return h(b"\x01" + tree(depth + 1, zeros) + tree(depth + 1, ones))


n = int(sys.argv[1])
pairs = [(h(f"crate-{i}@1.0.0".encode()), h(f"value-{i}".encode())) for i in range(n)]
print(tree(0, pairs).hex())
