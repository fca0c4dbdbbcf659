#!/usr/bin/env python3
"""mkrar.py: writes a small RAR 4 archive with stored (uncompressed) members,
built byte by byte from the published RAR 4 block layout, since no RAR
writer is installed: a marker block, the archive header, file headers
(a directory, two files, Unix modes) with their data, and the end block.

usage: mkrar.py OUT.rar
"""
import struct
import sys
import zlib

HOST_UNIX = 3
METHOD_STORE = 0x30
FLAG_LONG_BLOCK = 0x8000
FLAG_DIRECTORY = 0x00E0


def block(head_type, flags, body, add=b""):
    """A block: CRC16 (low half of CRC32 of what follows it), type, flags,
    size, body; add is the data that follows the header."""
    size = 7 + len(body)
    rest = struct.pack("<BHH", head_type, flags, size) + body
    crc = zlib.crc32(rest) & 0xFFFF
    return struct.pack("<H", crc) + rest + add


def dos_time(year, month, day, hour, minute, second):
    return ((year - 1980) << 25 | month << 21 | day << 16 |
            hour << 11 | minute << 5 | second // 2)


def file_block(name, data, mode, directory=False):
    name = name.encode()
    body = struct.pack("<IIBIIBBHI", len(data), len(data), HOST_UNIX,
                       zlib.crc32(data), dos_time(2022, 6, 7, 8, 9, 10),
                       20, METHOD_STORE, len(name), mode) + name
    flags = FLAG_LONG_BLOCK | (FLAG_DIRECTORY if directory else 0)
    return block(0x74, flags, body, data)


def main(path):
    out = b"Rar!\x1a\x07\x00"
    out += block(0x73, 0, struct.pack("<HI", 0, 0))
    out += file_block("dir", b"", 0o40755, directory=True)
    out += file_block("dir/file.txt", b"stored in a rar\n" * 100, 0o100644)
    out += file_block("top.txt", b"top\n", 0o100600)
    out += block(0x7B, 0x4000, b"")
    with open(path, "wb") as f:
        f.write(out)


if __name__ == "__main__":
    main(sys.argv[1])
