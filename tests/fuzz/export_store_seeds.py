#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""export_store_seeds.py - writes the seed corpus of fuzz_export_store into corpus/export_store/.

The seeds are handle stores (format: src/export_store.c) without their checksum, which the
target appends, written for the target's fixed two-layer mount (fuzz_export_store.c). Run it
again after a change of the format: python3 tests/fuzz/export_store_seeds.py
"""
import os
import struct

S_IFREG, S_IFDIR, S_IFLNK, S_IFIFO = 0o100000, 0o040000, 0o120000, 0o010000
# Layer 0: uuid 00..0f, inode 0; layer 1: no uuid, st_dev 0x802 and 8 zero bytes, inode 0.
FINGERPRINT = bytes(range(16)) + struct.pack("=Q", 0) + struct.pack("=QQQ", 0x802, 0, 0)


def store(entries, next_id=None, magic=b"PLYFSHD1", version=1, n_layers=2,
          fingerprint=FINGERPRINT, count=None, trailing=b""):
    if next_id is None:
        next_id = max([e[0] for e in entries] + [1]) + 1
    out = magic + struct.pack("=IIQQ", version, n_layers, next_id,
                              len(entries) if count is None else count)
    out += fingerprint
    for nodeid, parent, fsid, ino, check, gen, typ, name in entries:
        out += struct.pack("=QQIQIIIH", nodeid, parent, fsid, ino, check, gen, typ, len(name))
        out += name
    return out + trailing


def tree(n):
    """n entries: directories d0.. under the root, a file in each."""
    out = []
    for i in range(n):
        if i % 2 == 0:
            out.append((2 + i, 1, 0, 100 + i, 0, 7, S_IFDIR, b"d%d" % i))
        else:
            out.append((2 + i, 1 + i, 1, 100 + i, 0xdeadbeef, 7, S_IFREG, b"f%d" % i))
    return out


SEEDS = {
    "empty": store([]),
    "three": store([(2, 1, 0, 10, 0, 5, S_IFDIR, b"d"), (3, 2, 0, 11, 0, 5, S_IFREG, b"f"),
                    (4, 1, 1, 12, 0x1234, 5, S_IFLNK, b"g")]),
    "evicting": store(tree(40)),
    "gaps": store([(10, 1, 0, 1, 0, 1, S_IFIFO, b"p"), (1000, 10, 1, 2, 0, 2, S_IFREG, b"x" * 255)],
                  next_id=5000),
    "duplicate_id": store([(2, 1, 0, 10, 0, 5, S_IFREG, b"a"), (2, 1, 0, 11, 0, 5, S_IFREG, b"b")]),
    "duplicate_key": store([(2, 1, 0, 10, 0, 5, S_IFREG, b"a"), (3, 1, 0, 10, 0, 5, S_IFREG, b"b")]),
    "dotdot": store([(2, 1, 0, 10, 0, 5, S_IFDIR, b"..")]),
    "slash": store([(2, 1, 0, 10, 0, 5, S_IFDIR, b"a/b")]),
    "bad_type": store([(2, 1, 0, 10, 0, 5, 0o170000, b"a")]),
    "bad_fsid": store([(2, 1, 7, 10, 0, 5, S_IFREG, b"a")]),
    "id_past_next": store([(9, 1, 0, 10, 0, 5, S_IFREG, b"a")], next_id=5),
    "root_id": store([(1, 1, 0, 10, 0, 5, S_IFREG, b"a")]),
    "count_high": store([(2, 1, 0, 10, 0, 5, S_IFREG, b"a")], count=3),
    "trailing": store([(2, 1, 0, 10, 0, 5, S_IFREG, b"a")], trailing=b"\0"),
    "next_id_1": store([], next_id=1),
    "next_id_max": store([(2, 1, 0, 10, 0, 5, S_IFREG, b"a")], next_id=2**64 - 1),
    "version_2": store([], version=2),
    "other_layers": store([], n_layers=1, fingerprint=FINGERPRINT[:24]),
    "bad_magic": store([], magic=b"PLYFSHD0"),
    "short_header": b"PLYFSHD1" + struct.pack("=II", 1, 2),
}

if __name__ == "__main__":
    out_dir = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "export_store")
    os.makedirs(out_dir, exist_ok=True)
    for name, data in SEEDS.items():
        with open(os.path.join(out_dir, name), "wb") as f:
            f.write(data)
    print(f"{len(SEEDS)} seeds in {out_dir}")
