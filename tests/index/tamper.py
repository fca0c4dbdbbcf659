#!/usr/bin/env python3
"""tamper.py: change a committed snapshot file the way a hostile writer
would, leaving every checksum as it was. Offsets come from parsing the
format (docs/FORMAT.md, "Snapshot index"): the section table, then inodes
found by walking the root directory's entries by name.

usage: tamper.py SNAPSHOT swap-chunks PATH PATH   swap the chunk-list fields
                                                  (inode.data) of two files
       tamper.py SNAPSHOT swap-meta PATH PATH     swap their mode and uid
       tamper.py SNAPSHOT swap-runs PATH PATH     swap the chunk ids of the
                                                  first runs of their chunk lists
       tamper.py SNAPSHOT fields PATH             print mode uid data
"""
import struct
import sys

HEADER = 128
SECTION = 32
INODE = 64
DIRENT = 12
INODES, DIRENTS, STRINGS, CHUNKS = 2, 3, 4, 5
LIST_HEADER = 32


def sections(data):
    assert data[:8] == b"CAIRNSN1", "not a snapshot"
    count = struct.unpack_from("<I", data, 16)[0]
    out = {}
    for i in range(count):
        kind, _, offset, size, _ = struct.unpack_from("<IIQQQ", data, HEADER + SECTION * i)
        out[kind] = (offset, size)
    return out


def inode_at(sec, ino):
    return sec[INODES][0] + (ino - 1) * INODE


def lookup(data, sec, path):
    ino = 1
    for name in path.encode().split(b"/"):
        at = inode_at(sec, ino)
        first = struct.unpack_from("<Q", data, at + 40)[0]
        count = struct.unpack_from("<I", data, at + 48)[0]
        for pos in range(first, first + count):
            child, off, length, _ = struct.unpack_from(
                "<IIHB", data, sec[DIRENTS][0] + pos * DIRENT)
            s = sec[STRINGS][0] + off
            if data[s:s + length] == name:
                ino = child
                break
        else:
            sys.exit(f"tamper.py: {path}: not found")
    return ino


def swap(data, a, b, field, size):
    x, y = a + field, b + field
    data[x:x + size], data[y:y + size] = data[y:y + size], data[x:x + size]


def main():
    path, op = sys.argv[1], sys.argv[2]
    with open(path, "rb") as f:
        data = bytearray(f.read())
    sec = sections(data)
    at = [inode_at(sec, lookup(data, sec, p)) for p in sys.argv[3:]]
    if op == "fields":
        mode, _, uid = struct.unpack_from("<III", data, at[0])
        print(oct(mode), uid, struct.unpack_from("<Q", data, at[0] + 40)[0])
        return
    if op == "swap-chunks":
        swap(data, at[0], at[1], 40, 8)
    elif op == "swap-runs":
        runs = [sec[CHUNKS][0] + struct.unpack_from("<Q", data, a + 40)[0] + LIST_HEADER
                for a in at]
        swap(data, runs[0], runs[1], 0, 16)
    elif op == "swap-meta":
        swap(data, at[0], at[1], 0, 4)
        swap(data, at[0], at[1], 8, 4)
    else:
        sys.exit(f"tamper.py: unknown operation {op}")
    with open(path, "r+b") as f:
        f.write(data)


main()
