#!/usr/bin/env python3
"""mkdamaged.py: good and damaged compressed tars for test_damaged.sh.

The damage is the kind libarchive's own filters let through: a byte flipped
where deflate still decodes (a stored block of incompressible data), a gzip
trailer's CRC32 or ISIZE changed (also inside xz), damage in a second gzip
member, an lz4 block or content checksum that no longer matches, and a tar
header whose checksum fails (libarchive skips to the next good header).
Deterministic: the same files every run.

usage: mkdamaged.py OUTDIR
"""
import gzip
import io
import lzma
import os
import random
import struct
import subprocess
import sys
import tarfile
import zlib


def make_tar():
    rng = random.Random(7)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as t:
        d = tarfile.TarInfo("dir")
        d.type = tarfile.DIRTYPE
        d.mode = 0o755
        d.mtime = 1600000000
        t.addfile(d)
        for name, size in (("dir/a.bin", 200000), ("dir/b.bin", 150000),
                           ("dir/c.bin", 300000), ("z.txt", 0)):
            data = rng.randbytes(size) if size else b"the last entry\n"
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            info.mtime = 1600000000
            t.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def silent_flip(member, start):
    """A copy of gzip member with one byte flipped at or after start that
    raw deflate still decodes to the end, to other bytes."""
    body = member[10:-8]
    good = zlib.decompress(body, -15)
    for pos in range(start - 10, len(body)):
        bad = bytearray(body)
        bad[pos] ^= 0x01
        d = zlib.decompressobj(-15)
        try:
            out = d.decompress(bytes(bad)) + d.flush()
        except zlib.error:
            continue
        if d.eof and out != good:
            return member[:10] + bytes(bad) + member[-8:]
    raise SystemExit("mkdamaged: no silent flip found")


def lz4(data, *flags):
    return subprocess.run(["lz4", "-q", "-c", *flags], input=data, stdout=subprocess.PIPE,
                          check=True).stdout


def lz4_block(frame, index):
    """Offset and size of block index's data in an lz4 frame."""
    flg = frame[4]
    pos = 4 + 2 + (8 if flg & 0x08 else 0) + (4 if flg & 0x01 else 0) + 1
    for _ in range(index):
        size = struct.unpack("<I", frame[pos:pos + 4])[0] & 0x7FFFFFFF
        pos += 4 + size + (4 if flg & 0x10 else 0)
    size = struct.unpack("<I", frame[pos:pos + 4])[0] & 0x7FFFFFFF
    return pos + 4, size


def flip(data, pos):
    out = bytearray(data)
    out[pos] ^= 0x01
    return bytes(out)


def main(out):
    tar = make_tar()
    put = lambda name, data: open(os.path.join(out, name), "wb").write(data)
    put("good.tar", tar)

    # gzip (mtime 0: the same bytes every run)
    half = len(tar) // 2
    one = gzip.compress(tar, mtime=0)
    m1, m2 = gzip.compress(tar[:half], mtime=0), gzip.compress(tar[half:], mtime=0)
    put("good.tgz", one)
    put("good-multi.tgz", m1 + m2)
    put("flip-mid.tgz", silent_flip(one, len(one) // 2))
    put("crc.tgz", flip(one, len(one) - 8))
    put("isize.tgz", one[:-4] + struct.pack("<I", (len(tar) + 512) & 0xFFFFFFFF))
    put("multi-damaged.tgz", m1 + silent_flip(m2, len(m2) // 2))

    # a gzip inside xz: the decoder takes both layers off, and checks gzip
    put("good.tgz.xz", lzma.compress(one))
    put("crc.tgz.xz", lzma.compress(flip(one, len(one) - 8)))

    # lz4: block checksums (-BX) and the content checksum (lz4's default);
    # 64 KiB blocks (-B4), so that the damage is in a later one
    plain, bx = lz4(tar, "-B4"), lz4(tar, "-B4", "-BX")
    put("good.tar.lz4", plain)
    put("good-bx.tar.lz4", bx)
    put("good-multi.tar.lz4", lz4(tar[:half]) + lz4(tar[half:], "-BX"))
    start, size = lz4_block(bx, 3)
    put("lz4-block.tar.lz4", flip(bx, start + size // 2))
    put("lz4-content.tar.lz4", flip(plain, len(plain) - 1))
    start, size = lz4_block(plain, 3)
    put("lz4-flip.tar.lz4", flip(plain, start + size // 2))

    # a tar header whose checksum fails: libarchive skips to the next one
    members = tarfile.open(fileobj=io.BytesIO(tar)).getmembers()
    damaged = bytearray(tar)
    damaged[members[2].offset + 5] ^= 0x20  # a byte of "dir/b.bin"
    put("damaged-header.tar", bytes(damaged))


if __name__ == "__main__":
    main(sys.argv[1])
