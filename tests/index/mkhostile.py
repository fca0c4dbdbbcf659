#!/usr/bin/env python3
"""mkhostile.py: writes the hostile archives of test_hostile.sh with
python3's tarfile and zipfile, which (unlike bsdtar) write whatever names
and sizes they are given.

usage: mkhostile.py DIR
"""
import gzip
import io
import lzma
import os
import sys
import tarfile
import zipfile

MTIME = 1600000000


def add_file(tar, name, data=b"", mode=0o644, mtime=MTIME):
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), mode, mtime
    tar.addfile(info, io.BytesIO(data))


def add_special(tar, name, kind, target="", mode=0o755):
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mode, info.mtime = kind, target, mode, MTIME
    tar.addfile(info)


def traversal(path):
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        add_file(tar, "ok/./x//y", b"fine\n")
        add_file(tar, "../evil", b"escaped\n")
        add_file(tar, "a/../../escape", b"escaped\n")
        add_file(tar, "/abs/file", b"absolute\n")
        add_file(tar, "./dot/file", b"dot\n")
        add_special(tar, "sym", tarfile.SYMTYPE, "/tmp")
        add_file(tar, "sym/through-symlink", b"escaped\n")
        add_special(tar, "up", tarfile.SYMTYPE, "..")
        add_file(tar, "up/through-up", b"escaped\n")
        add_special(tar, "hard", tarfile.LNKTYPE, "../../etc/passwd")
        add_special(tar, "hard2", tarfile.LNKTYPE, "missing")


def duplicates(path):
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        add_file(tar, "f", b"first\n")
        add_special(tar, "f", tarfile.DIRTYPE)
        add_file(tar, "f/child", b"child\n")
        add_special(tar, "d", tarfile.DIRTYPE)
        add_file(tar, "d/kept", b"kept\n")
        add_file(tar, "d", b"cannot replace a non-empty directory\n")
        add_special(tar, "e", tarfile.DIRTYPE)
        add_file(tar, "e", b"an empty directory is replaced\n")
        add_file(tar, "x", b"file\n")
        add_special(tar, "x", tarfile.SYMTYPE, "f/child")
        add_file(tar, "h", b"old content\n")
        add_special(tar, "h2", tarfile.LNKTYPE, "h")
        add_file(tar, "h", b"new content\n", mode=0o600)
        add_file(tar, "p/q", b"implied parent\n")
        add_special(tar, "p", tarfile.DIRTYPE, mode=0o750)
        add_file(tar, "blocker", b"a file where a directory is implied\n")
        add_file(tar, "blocker/inside", b"inside\n")
        add_file(tar, "same", b"one\n", mtime=MTIME)
        add_file(tar, "same", b"two\n", mtime=MTIME + 5)


def size_lie(path):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        add_file(tar, "before", b"before\n")
        add_file(tar, "liar", b"x" * 100000)
    data = buf.getvalue()
    # Cut the archive inside liar's data: its header promises more.
    with open(path, "wb") as f:
        f.write(data[:512 * 3 + 20000])


def tiny_entries(path, count):
    with tarfile.open(path, "w", format=tarfile.USTAR_FORMAT) as tar:
        info = tarfile.TarInfo()
        info.mtime = MTIME
        for i in range(count):
            info.name = f"d{i % 100:02d}/f{i}"
            tar.addfile(info)


def zip_size_lie(path):
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        z.writestr("member", b"honest bytes\n" * 10)
    data = bytearray(open(path, "rb").read())
    # Both headers claim a larger uncompressed size than the data holds.
    local = data.find(b"PK\x03\x04")
    data[local + 22:local + 26] = (500000).to_bytes(4, "little")
    central = data.find(b"PK\x01\x02")
    data[central + 24:central + 28] = (500000).to_bytes(4, "little")
    open(path, "wb").write(bytes(data))


def main(out):
    traversal(os.path.join(out, "traversal.tar"))
    duplicates(os.path.join(out, "duplicates.tar"))
    size_lie(os.path.join(out, "size-lie.tar"))
    zip_size_lie(os.path.join(out, "size-lie.zip"))
    tiny_entries(os.path.join(out, "tiny.tar"), 100000)
    tar = open(os.path.join(out, "duplicates.tar"), "rb").read()
    gz = gzip.compress(tar)
    open(os.path.join(out, "truncated.tar.gz"), "wb").write(gz[:len(gz) // 2])
    corrupt = bytearray(gz)
    for i in range(len(corrupt) // 3, len(corrupt) // 3 + 16):
        corrupt[i] ^= 0x5A
    open(os.path.join(out, "corrupt.tar.gz"), "wb").write(bytes(corrupt))
    open(os.path.join(out, "not-an-archive.bin"), "wb").write(os.urandom(5000))
    # A .tar.xz cut in the middle of its third entry: decoded on its own
    # thread, its error must still name the entry being read and the cause.
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        for i in range(4):
            data = os.urandom(300000)
            info = tarfile.TarInfo("part%d" % i)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    xz = lzma.compress(buf.getvalue())
    open(os.path.join(out, "truncated.tar.xz"), "wb").write(xz[:len(xz) * 5 // 8])


if __name__ == "__main__":
    main(sys.argv[1])
