#!/usr/bin/env python3
"""chunklists.py: a fixed synthetic tar, and a digest of a snapshot's chunk
lists that does not depend on the store's hash key.

  chunklists.py make OUT.tar     write the tar (the same bytes every time)
  chunklists.py digest SNAPSHOT  print the digest of the snapshot file
  chunklists.py chunks SNAPSHOT  the same over the CHUNKS section alone (a
                                 pipe's snapshot differs in its root's mtime)

The tar mixes what the writer's pipeline must cut exactly as one sequential
pass: hundreds of small and empty files (many to a batch), random and
text-like files of several batches (pieces that continue a file, where the
cutters' cuts must resynchronise with the real ones), a file of zeros longer
than a batch (cut only at chunk_max: never resynchronises) and a file that
repeats another's bytes at an offset (dedup within the archive).

The digest covers the INODES, DIRENTS and STRINGS sections as they are and
the CHUNKS section (docs/FORMAT.md) with every chunk id replaced by the
number of its first appearance and every file id dropped: the cut points,
the order of the lists and which chunks are equal, not the keyed ids.
"""
import hashlib
import io
import os
import random
import struct
import sys
import tarfile


def make(path):
    rnd = random.Random(1515)
    files = []
    for i in range(400):
        n = rnd.choice([0, 0, 1, 100, 3000, 9000, 17000, 40000, 70000, 150000])
        files.append((f'small/f{i:03d}', rnd.randbytes(n)))
    big = rnd.randbytes(9 << 20)
    files.append(('big/random', big))
    words = [rnd.randbytes(rnd.randint(2, 9)) for _ in range(3000)]
    files.append(('big/text', b' '.join(rnd.choice(words) for _ in range(1300000))))
    files.append(('big/zeros', bytes(9 << 20)))
    files.append(('big/shifted', b'head' + big[3 << 20:] + rnd.randbytes(5000)))
    with tarfile.open(path, 'w', format=tarfile.GNU_FORMAT) as tar:
        for name, data in files:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = 1700000000
            info.mode = 0o644
            info.uname = info.gname = 'root'
            tar.addfile(info, io.BytesIO(data))
    os.utime(path, (1700000000, 1700000000))  # the root directory's mtime


def digest(path, only_chunks=False):
    b = open(path, 'rb').read()
    count = struct.unpack_from('<I', b, 16)[0]
    sections = {}
    for i in range(count):
        kind, _, off, size, _ = struct.unpack_from('<IIQQQ', b, 128 + 32 * i)
        sections[kind] = b[off:off + size]
    h = hashlib.sha256()
    for kind in () if only_chunks else (2, 3, 4):  # INODES, DIRENTS, STRINGS
        h.update(sections.get(kind, b''))
    chunks, seen, pos, lists, runs = sections[5], {}, 0, 0, 0
    while pos < len(chunks):
        size, run_count, flags = struct.unpack_from('<QII', chunks, pos + 16)
        h.update(struct.pack('<QII', size, run_count, flags))
        pos += 32
        lists += 1
        for _ in range(run_count):
            cid = chunks[pos:pos + 16]
            end = struct.unpack_from('<Q', chunks, pos + 16)[0]
            num = 0 if cid == bytes(16) else seen.setdefault(cid, len(seen) + 1)
            h.update(struct.pack('<QQ', num, end))
            pos += 24
            runs += 1
    print(f'{h.hexdigest()} {lists} lists {runs} runs {len(seen)} chunks')


if __name__ == '__main__':
    if len(sys.argv) != 3 or sys.argv[1] not in ('make', 'digest', 'chunks'):
        sys.exit(__doc__)
    if sys.argv[1] == 'make':
        make(sys.argv[2])
    else:
        digest(sys.argv[2], sys.argv[1] == 'chunks')
