#!/usr/bin/env python3
"""mkrar_volumes.py: writes a multi-volume RAR 4 archive with stored members,
byte by byte after the RAR 4 technote (mkrar.py's blocks), since no RAR
writer is installed, and the same tree to a directory to compare with
(bsdtar reads only one volume). Every volume starts with the marker and an
archive header with MHD_VOLUME (MHD_NEWNUMBERING for the .partN.rar names,
MHD_FIRSTVOLUME on the first) and ends with an end block whose
EARC_NEXT_VOLUME flag says whether another follows. A file cut across
volumes has a header in each with LHD_SPLIT_BEFORE / LHD_SPLIT_AFTER;
PACK_SIZE is the part's size, UNP_SIZE the whole file's, and FILE_CRC is
the CRC32 of the part's data, except in the last part, where it is the
whole file's. big.bin spans volumes 1 to 3, tail.bin volumes 3 and 4,
small files lie between.

usage: mkrar_volumes.py OUTDIR STEM NAMING REFDIR
NAMING: part1 (STEM.part1.rar, ...), part01, part001, or old (STEM.rar,
STEM.r00, STEM.r01, ...). Prints the volumes' names, one a line.
"""
import os
import random
import struct
import sys
import time
import zlib

from mkrar import HOST_UNIX, METHOD_STORE, FLAG_LONG_BLOCK, FLAG_DIRECTORY, block, dos_time

MHD_VOLUME = 0x0001
MHD_NEWNUMBERING = 0x0010
MHD_FIRSTVOLUME = 0x0100
LHD_SPLIT_BEFORE = 0x01
LHD_SPLIT_AFTER = 0x02
EARC_NEXT_VOLUME = 0x0001
EARC_VOLNUMBER = 0x0008
MTIME = (2022, 6, 7, 8, 9, 10)


def file_part(name, part, whole, mode, flags, crc):
    name = name.encode()
    body = struct.pack("<IIBIIBBHI", len(part), len(whole), HOST_UNIX, crc,
                       dos_time(*MTIME), 20, METHOD_STORE, len(name),
                       mode) + name
    return block(0x74, FLAG_LONG_BLOCK | flags, body, part)


def whole_file(name, data, mode, directory=False):
    flags = FLAG_DIRECTORY if directory else 0
    return file_part(name, data, data, mode, flags, zlib.crc32(data))


def split_file(name, data, mode, cuts):
    """The headers and data of data cut at cuts: one piece per volume."""
    bounds = [0] + cuts + [len(data)]
    pieces = []
    for i in range(len(bounds) - 1):
        part = data[bounds[i]:bounds[i + 1]]
        last = i == len(bounds) - 2
        flags = (LHD_SPLIT_BEFORE if i > 0 else 0) | (0 if last else LHD_SPLIT_AFTER)
        crc = zlib.crc32(data if last else part)
        pieces.append(file_part(name, part, data, mode, flags, crc))
    return pieces


def volume_name(stem, naming, i):
    if naming == "old":
        return stem + (".rar" if i == 0 else ".r%02d" % (i - 1))
    width = {"part1": 1, "part01": 2, "part001": 3}[naming]
    return "%s.part%0*d.rar" % (stem, width, i + 1)


def write_ref(refdir, files):
    stamp = time.mktime(MTIME + (0, 0, -1))  # DOS times are local times
    for name, data, mode in files:
        path = os.path.join(refdir, name)
        if mode & 0o40000:
            os.makedirs(path, exist_ok=True)
            os.chmod(path, mode & 0o7777)
            continue
        with open(path, "wb") as f:
            f.write(data)
        os.chmod(path, mode & 0o7777)
        os.utime(path, (stamp, stamp))


def main(outdir, stem, naming, refdir):
    rng = random.Random(7)
    big = bytes(rng.getrandbits(8) for _ in range(300000))
    tail = b"tail of the archive\n" * 3000
    files = [("a.txt", b"first\n", 0o100644), ("d", b"", 0o40755),
             ("big.bin", big, 0o100644), ("d/small.txt", b"small\n" * 10, 0o100600),
             ("tail.bin", tail, 0o100640)]
    big_parts = split_file("big.bin", big, 0o100644, [90000, 200000])
    tail_parts = split_file("tail.bin", tail, 0o100640, [25000])
    volumes = [
        [whole_file("a.txt", files[0][1], 0o100644),
         whole_file("d", b"", 0o40755, directory=True), big_parts[0]],
        [big_parts[1]],
        [big_parts[2], whole_file("d/small.txt", files[3][1], 0o100600), tail_parts[0]],
        [tail_parts[1]],
    ]
    for i, blocks in enumerate(volumes):
        flags = MHD_VOLUME | (0 if naming == "old" else MHD_NEWNUMBERING)
        flags |= MHD_FIRSTVOLUME if i == 0 else 0
        out = b"Rar!\x1a\x07\x00" + block(0x73, flags, struct.pack("<HI", 0, 0))
        out += b"".join(blocks)
        last = i == len(volumes) - 1
        out += block(0x7B, 0x4000 | EARC_VOLNUMBER | (0 if last else EARC_NEXT_VOLUME),
                     struct.pack("<H", i))
        name = volume_name(stem, naming, i)
        with open(os.path.join(outdir, name), "wb") as f:
            f.write(out)
        print(name)
    write_ref(refdir, files)


if __name__ == "__main__":
    main(*sys.argv[1:5])
