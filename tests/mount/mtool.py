#!/usr/bin/env python3
"""mtool.py: the parts of the mount tests that are easier in Python than in
the shell. Each subcommand prints one line per problem and exits 1 if there
was any (0 otherwise).

  nlink A B                  link counts of everything but directories agree
  seek FILE ARCHIVE MEMBER   SEEK_DATA/SEEK_HOLE on FILE follow the sparse
                             map the tar ARCHIVE records for MEMBER
  same MNT REF PATH...       the files (same content, or hard links) open at
                             once and read interleaved give REF's bytes;
                             the content's blob is made once
  transition MNT REF PATH    a file whose blob is not ready opens direct_io,
                             an open while that lives is direct_io too even
                             after the blob is made, both read and map
                             right, and the open after they close passes
                             through
  mmap MNT REF PATH          a file whose blob is not ready opens direct_io
                             and maps MAP_SHARED with REF's bytes
  mapmix MNT REF PATH [READERS SECONDS]
                             READERS threads open a cold file (no blob yet),
                             half map it MAP_SHARED, all hold it across the
                             blob's making and open, map and read it again,
                             then mix read and mmap for SECONDS: no error,
                             REF's bytes; once all are closed, an open
                             passes through
  stress MNT REF SECONDS [READERS OPENERS]
                             readers of random ranges and openers/closers
                             at once; every byte checked against REF
  erofs MNT FILE DIR         every way of writing fails with EROFS
  damaged FILE REF           FILE is damaged: each 64 KiB block reads as
                             REF's bytes or fails with EIO, never other
                             bytes, and at least one fails
  random PATH SIZE SEED...   writes incompressible files, the same for a seed
  stats MNT KEY              prints one counter of user.cairn.stats
"""
import errno
import mmap
import os
import random
import stat
import sys
import tarfile
import threading
import time

problems = []


def problem(text):
    problems.append(text)
    print(text, flush=True)


def stats(path):
    """The counters of the mount that holds path (and its transport, a word)."""
    while not os.path.ismount(path):
        path = os.path.dirname(path)
    text = os.getxattr(path, "user.cairn.stats").decode()
    return {k: int(v) if v.isdigit() else v for k, v in (f.split("=") for f in text.split())}


def read_ref(ref, path):
    with open(os.path.join(ref, path), "rb") as f:
        return f.read()


def pread_all(fd, size, step=1 << 20):
    out = bytearray()
    while True:
        piece = os.pread(fd, step, len(out))
        if not piece:
            return bytes(out)
        out += piece
        if len(out) > size + step:
            return bytes(out)


# ---- nlink ----

def cmd_nlink(a_top, b_top):
    for root, dirs, files in os.walk(a_top):
        for name in files:
            pa = os.path.join(root, name)
            rel = os.path.relpath(pa, a_top)
            pb = os.path.join(b_top, rel)
            try:
                na, nb = os.lstat(pa).st_nlink, os.lstat(pb).st_nlink
            except OSError as e:
                problem(f"{rel}: {e}")
                continue
            if na != nb:
                problem(f"{rel}: nlink {na} vs {nb}")


# ---- SEEK_DATA / SEEK_HOLE ----

def sparse_map(archive, member):
    """The data regions the archive records: merged (start, end) pairs."""
    with tarfile.open(archive) as tar:
        info = tar.getmember(member)
        regions = info.sparse if info.sparse is not None else [(0, info.size)]
        size = info.size
    merged = []
    for start, length in sorted(regions):
        if length == 0:
            continue
        if merged and merged[-1][1] >= start:
            merged[-1] = (merged[-1][0], max(merged[-1][1], start + length))
        else:
            merged.append((start, start + length))
    return size, merged


def expected_seek(size, regions, offset, whence):
    if offset >= size:
        return -errno.ENXIO
    for start, end in regions:
        if whence == os.SEEK_DATA:
            if offset < end:
                return max(start, offset)
        elif start <= offset < end:
            return end
        elif offset < start:
            return offset
    return -errno.ENXIO if whence == os.SEEK_DATA else offset


def cmd_seek(path, archive, member):
    size, regions = sparse_map(archive, member)
    if os.stat(path).st_size != size:
        problem(f"{path}: size {os.stat(path).st_size}, the archive says {size}")
        return
    if len(regions) < 2 and "sparse" in member:
        problem(f"{archive}: {member} has no holes in its sparse map: {regions}")
    probes = {0, 1, size - 1, size, size + 4096}
    for start, end in regions:
        for b in (start, end):
            probes.update((b - 4097, b - 1, b, b + 1, b + 4096))
    rng = random.Random(3)
    probes.update(rng.randrange(size) for _ in range(50 if size else 0))
    fd = os.open(path, os.O_RDONLY)
    try:
        for offset in sorted(p for p in probes if p >= 0):
            for whence, name in ((os.SEEK_DATA, "SEEK_DATA"), (os.SEEK_HOLE, "SEEK_HOLE")):
                want = expected_seek(size, regions, offset, whence)
                try:
                    got = os.lseek(fd, offset, whence)
                except OSError as e:
                    got = -e.errno
                if got != want:
                    problem(f"{path}: lseek({offset}, {name}) = {got}, expected {want}"
                            f" (data regions {regions})")
    finally:
        os.close(fd)


# ---- identical content open at once ----

def cmd_same(mnt, ref, paths):
    want = [read_ref(ref, p) for p in paths]
    before = stats(mnt)
    fds = [os.open(os.path.join(mnt, p), os.O_RDONLY) for p in paths]
    after_open = stats(mnt)
    opened = after_open["opens_passthrough"] - before["opens_passthrough"]
    if opened != len(paths):
        problem(f"{len(paths)} opens, {opened} passed through: {before} -> {after_open}")
    contents = set(want)
    made = after_open["blobs_made"] - before["blobs_made"]
    if made > len(contents):
        problem(f"{made} blobs made for {len(contents)} contents")
    # Interleaved, in blocks, with all of them open.
    got = [bytearray() for _ in paths]
    step = 65536
    for offset in range(0, max(len(w) for w in want) + step, step):
        for i, fd in enumerate(fds):
            got[i] += os.pread(fd, step, offset)
    for p, g, w in zip(paths, got, want):
        if bytes(g) != w:
            problem(f"{p}: read interleaved with its twins, the bytes differ")
    # Close all but the last; the survivor keeps reading (the shared
    # backing id must live on), then a new open joins it.
    for fd in fds[:-1]:
        os.close(fd)
    if pread_all(fds[-1], len(want[-1])) != want[-1]:
        problem(f"{paths[-1]}: wrong bytes after its twins were closed")
    fd = os.open(os.path.join(mnt, paths[0]), os.O_RDONLY)
    if pread_all(fd, len(want[0])) != want[0]:
        problem(f"{paths[0]}: wrong bytes reopened while a twin is open")
    os.close(fd)
    os.close(fds[-1])
    end = stats(mnt)
    if end["read_errors"] or end["reads"] != before["reads"]:
        problem(f"reads reached the daemon, or failed: {before} -> {end}")


# ---- a blob that is not ready yet ----

def wait_for(mnt, key, above, seconds=60):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        now = stats(mnt)
        if now[key] > above:
            return now
        time.sleep(0.05)
    problem(f"{key} still {stats(mnt)[key]} after {seconds}s")
    return stats(mnt)


def map_equal(fd, want):
    with mmap.mmap(fd, 0, mmap.MAP_SHARED, mmap.PROT_READ) as m:
        return m[:] == want


def cmd_transition(mnt, ref, path):
    want = read_ref(ref, path)
    full = os.path.join(mnt, path)
    s0 = stats(mnt)
    fd1 = os.open(full, os.O_RDONLY)
    s1 = stats(mnt)
    if s1["opens_direct"] != s0["opens_direct"] + 1:
        problem(f"the first open was not served direct_io: {s0} -> {s1}")
    if os.pread(fd1, 4096, 12345) != want[12345:12345 + 4096]:
        problem("fd1: wrong bytes at 12345 before the blob is made")
    s2 = wait_for(mnt, "blobs_made", s0["blobs_made"])
    # fd1 was open when the blob was queued: its reads now read back what
    # the worker wrote, instead of decoding the chunks again.
    if pread_all(fd1, len(want)) != want:
        problem("fd1: wrong bytes once its blob was made")
    s2 = stats(mnt)
    if s2["reads_growing"] == 0 or s2["read_errors"]:
        problem(f"fd1's reads after its blob was made did not read the blob: {s2}")
    # fd1 may be mapped at any time (the daemon cannot tell), and then the
    # kernel refuses a passthrough open of the inode: fd2 is direct_io too.
    fd2 = os.open(full, os.O_RDONLY)
    s3 = stats(mnt)
    if s3["opens_direct"] != s2["opens_direct"] + 1:
        problem(f"an open while fd1 lives was not direct_io: {s2} -> {s3}")
    for name, fd in (("fd1", fd1), ("fd2", fd2)):
        if not map_equal(fd, want):
            problem(f"{name}: the MAP_SHARED map differs")
    # Both at once, interleaved, at odd offsets.
    rng = random.Random(5)
    for _ in range(200):
        offset = rng.randrange(len(want))
        length = rng.randrange(1, 200000)
        for name, fd in (("fd1", fd1), ("fd2", fd2)):
            if os.pread(fd, length, offset) != want[offset:offset + length]:
                problem(f"{name}: wrong bytes at {offset}+{length}")
    os.close(fd1)
    if pread_all(fd2, len(want)) != want:
        problem("fd2: wrong bytes after fd1 was closed")
    os.close(fd2)
    s4 = stats(mnt)
    fd3 = os.open(full, os.O_RDONLY)
    s5 = stats(mnt)
    if s5["opens_passthrough"] != s4["opens_passthrough"] + 1:
        problem(f"the open after the others closed did not pass through: {s4} -> {s5}")
    if pread_all(fd3, len(want)) != want or not map_equal(fd3, want):
        problem("fd3 (passthrough): wrong bytes")
    os.close(fd3)
    s6 = stats(mnt)
    if s6["reads"] != s5["reads"] or s6["read_errors"]:
        problem(f"reads of the passthrough fd reached the daemon, or failed: {s5} -> {s6}")


# ---- many readers and openers ----

def cmd_mmap(mnt, ref, path):
    want = read_ref(ref, path)
    s0 = stats(mnt)
    fd = os.open(os.path.join(mnt, path), os.O_RDONLY)
    try:
        if stats(mnt)["opens_direct"] != s0["opens_direct"] + 1:
            problem(f"the first open was not served direct_io: {s0} -> {stats(mnt)}")
        try:
            with mmap.mmap(fd, 0, mmap.MAP_SHARED, mmap.PROT_READ) as m:
                if m[:] != want:
                    problem("the MAP_SHARED map of the direct_io open: wrong bytes")
        except OSError as e:
            problem(f"mmap(MAP_SHARED) of the direct_io open: {e}")
    finally:
        os.close(fd)


def check_fd(fd, want, rng, use_map, label):
    """Random ranges of fd, read or mapped MAP_SHARED, against want."""
    view = None
    try:
        if use_map:
            view = mmap.mmap(fd, 0, mmap.MAP_SHARED, mmap.PROT_READ)
        for _ in range(rng.randrange(1, 24)):
            offset = rng.randrange(len(want))
            length = rng.randrange(1, 400000)
            got = view[offset:offset + length] if view else os.pread(fd, length, offset)
            if got != want[offset:offset + length]:
                problem(f"{label}: {'mmap' if view else 'read'} {offset}+{length} differs")
        return view
    except OSError as e:
        problem(f"{label}: {'mmap' if use_map else 'read'}: {e}")
        if view:
            view.close()
        return None


def cmd_mapmix(mnt, ref, path, readers=16, seconds=2.0):
    want = read_ref(ref, path)
    full = os.path.join(mnt, path)
    readers, seconds = int(readers), float(seconds)
    s0 = stats(mnt)
    held = threading.Barrier(readers + 1)
    ready = threading.Event()
    deadline = [0.0]
    counts = [0, 0]
    lock = threading.Lock()

    def opened(label):
        try:
            return os.open(full, os.O_RDONLY)
        except OSError as e:
            problem(f"{label}: open: {e}")
            return -1

    def reader(seed):
        rng = random.Random(seed)
        fds, views = [], []
        # Opens made before the blob is ready, held (half of them mapped)
        # while it is made and while the same file is opened again.
        fd = opened(f"reader {seed}: cold open")
        if fd >= 0:
            fds.append(fd)
            views.append(check_fd(fd, want, rng, seed % 2 == 0, f"reader {seed}: cold fd"))
        held.wait()
        ready.wait()
        fd = opened(f"reader {seed}: open after the blob")
        if fd >= 0:
            fds.append(fd)
            views.append(check_fd(fd, want, rng, seed % 2 == 1, f"reader {seed}: warm fd"))
        for fd in fds[:1]:
            check_fd(fd, want, rng, True, f"reader {seed}: cold fd, mapped again")
        for view in views:
            if view:
                view.close()
        for fd in fds:
            os.close(fd)
        n = [0, 0]
        while time.monotonic() < deadline[0] and len(problems) < 20:
            fd = opened(f"reader {seed}")
            if fd < 0:
                continue
            use_map = rng.random() < 0.5
            view = check_fd(fd, want, rng, use_map, f"reader {seed}")
            n[use_map] += 1
            if view:
                view.close()
            os.close(fd)
        with lock:
            counts[0] += n[0]
            counts[1] += n[1]

    threads = [threading.Thread(target=reader, args=(i,)) for i in range(readers)]
    for t in threads:
        t.start()
    held.wait()
    s1 = stats(mnt)
    if s1["opens_direct"] <= s0["opens_direct"]:
        problem(f"the file was not cold: no direct_io open: {s0} -> {s1}")
    wait_for(mnt, "blobs_made", s0["blobs_made"])
    deadline[0] = time.monotonic() + seconds
    ready.set()
    for t in threads:
        t.join()
    # The readers' RELEASEs reach cairn after their close() and munmap()
    # return, so an open right after them may still find the file in use
    # and go direct: opens are tried for up to 2 s until one passes through.
    for attempt in range(20):
        s2 = stats(mnt)
        with open(full, "rb") as f:
            if f.read() != want:
                problem("an open after the readers: wrong bytes")
            view = check_fd(f.fileno(), want, random.Random(1), True, "an open after the readers")
            if view:
                view.close()
        s3 = stats(mnt)
        if s3["opens_passthrough"] == s2["opens_passthrough"] + 1:
            break
        time.sleep(0.1)
    if s3["opens_passthrough"] != s2["opens_passthrough"] + 1:
        problem(f"the open after the readers closed did not pass through in 2 s: {s2} -> {s3}")
    if s3["read_errors"]:
        problem(f"read errors counted: {s3}")
    print(f"mapmix: {counts[0]} read and {counts[1]} mmap opens after the blob, "
          f"{s2['opens_direct'] - s0['opens_direct']} direct_io and "
          f"{s2['opens_passthrough'] - s0['opens_passthrough']} passthrough opens")


def regular_files(ref):
    found = []
    for root, dirs, files in os.walk(ref):
        for name in files:
            full = os.path.join(root, name)
            if stat.S_ISREG(os.lstat(full).st_mode):
                found.append(os.path.relpath(full, ref))
    return sorted(found)


def cmd_stress(mnt, ref, seconds, readers=8, openers=4):
    paths = regular_files(ref)
    data = {p: read_ref(ref, p) for p in paths}
    deadline = time.monotonic() + seconds
    counts = {"reads": 0, "opens": 0}
    lock = threading.Lock()

    def reader(seed):
        rng = random.Random(seed)
        reads = 0
        while time.monotonic() < deadline and len(problems) < 20:
            p = rng.choice(paths)
            want = data[p]
            try:
                fd = os.open(os.path.join(mnt, p), os.O_RDONLY)
            except OSError as e:
                problem(f"open {p}: {e}")
                continue
            try:
                if rng.random() < 0.1:
                    if pread_all(fd, len(want)) != want:
                        problem(f"{p}: a whole read differs")
                    reads += 1
                for _ in range(rng.randrange(1, 40)):
                    offset = rng.randrange(len(want) + 10) if want else rng.randrange(10)
                    length = rng.choice((1, 7, 4096, 65536, 131072 + 3, rng.randrange(1, 300000)))
                    got = os.pread(fd, length, offset)
                    if got != want[offset:offset + length]:
                        problem(f"{p}: {offset}+{length}: got {len(got)} bytes that differ")
                    reads += 1
            except OSError as e:
                problem(f"{p}: {e}")
            finally:
                os.close(fd)
        with lock:
            counts["reads"] += reads

    def opener(seed):
        rng = random.Random(seed)
        opens = 0
        while time.monotonic() < deadline and len(problems) < 20:
            held = []
            try:
                for _ in range(rng.randrange(1, 8)):
                    p = rng.choice(paths)
                    fd = os.open(os.path.join(mnt, p), os.O_RDONLY)
                    held.append((fd, p))
                    if os.fstat(fd).st_size != len(data[p]):
                        problem(f"{p}: fstat size differs")
                    if data[p] and rng.random() < 0.5:
                        offset = rng.randrange(len(data[p]))
                        if os.pread(fd, 1, offset) != data[p][offset:offset + 1]:
                            problem(f"{p}: byte {offset} differs")
                    opens += 1
                rng.shuffle(held)
            except OSError as e:
                problem(f"open/read: {e}")
            finally:
                for fd, _ in held:
                    os.close(fd)
            if rng.random() < 0.05:
                os.listdir(os.path.join(mnt, os.path.dirname(rng.choice(paths))))
        with lock:
            counts["opens"] += opens

    threads = [threading.Thread(target=reader, args=(i,)) for i in range(readers)]
    threads += [threading.Thread(target=opener, args=(100 + i,)) for i in range(openers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    s = stats(mnt)
    if s["read_errors"]:
        problem(f"the mount counted read errors: {s}")
    print(f"stress: {len(paths)} files, {counts['reads']} reads, {counts['opens']} opens; {s}")


# ---- writes ----

def cmd_erofs(mnt, file_path, dir_path):
    new = os.path.join(dir_path, "new-entry")
    attempts = [
        ("open O_WRONLY", lambda: os.open(file_path, os.O_WRONLY)),
        ("open O_RDWR", lambda: os.open(file_path, os.O_RDWR)),
        ("open O_RDONLY|O_TRUNC", lambda: os.open(file_path, os.O_RDONLY | os.O_TRUNC)),
        ("open O_APPEND", lambda: os.open(file_path, os.O_WRONLY | os.O_APPEND)),
        ("create", lambda: os.open(new, os.O_WRONLY | os.O_CREAT, 0o644)),
        ("mkdir", lambda: os.mkdir(new)),
        ("mknod", lambda: os.mknod(new, 0o600 | stat.S_IFIFO)),
        ("symlink", lambda: os.symlink("x", new)),
        ("link", lambda: os.link(file_path, new)),
        ("unlink", lambda: os.unlink(file_path)),
        ("rmdir", lambda: os.rmdir(dir_path)),
        ("rename", lambda: os.rename(file_path, new)),
        ("truncate", lambda: os.truncate(file_path, 0)),
        ("chmod", lambda: os.chmod(file_path, 0o777)),
        ("chown", lambda: os.chown(file_path, 1, 1)),
        ("utime", lambda: os.utime(file_path, (1, 1))),
        ("setxattr", lambda: os.setxattr(file_path, "user.x", b"y")),
        ("removexattr", lambda: os.removexattr(file_path, "user.x")),
    ]
    for what, attempt in attempts:
        try:
            result = attempt()
        except OSError as e:
            if e.errno != errno.EROFS:
                problem(f"{what}: {e}, expected EROFS")
            continue
        if isinstance(result, int):
            os.close(result)
        problem(f"{what}: succeeded on a read-only mount")


# ---- damage ----

def cmd_damaged(path, ref):
    want = read_ref(os.path.dirname(ref), os.path.basename(ref))
    failed = good = 0
    for offset in range(0, len(want), 65536):
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError as e:
            if e.errno != errno.EIO:
                problem(f"open {path}: {e}, expected EIO")
            failed += 1
            continue
        try:
            block = want[offset:offset + 65536]
            got = os.pread(fd, 65536, offset)
            # A short read stops before a failing page: then the rest fails.
            while got != block and block.startswith(got) and got:
                got += os.pread(fd, 65536 - len(got), offset + len(got))
            if got != block:
                problem(f"{path}: block at {offset}: {len(got)} wrong bytes, not an error")
            good += 1
        except OSError as e:
            if e.errno != errno.EIO:
                problem(f"{path}: block at {offset}: {e}, expected EIO")
            failed += 1
        finally:
            os.close(fd)
    if failed == 0:
        problem(f"{path}: every block read right; the damage went unnoticed")
    print(f"damaged: {good} blocks read right, {failed} failed with EIO")


def cmd_random(args):
    for path, size, seed in zip(args[0::3], args[1::3], args[2::3]):
        with open(path, "wb") as f:
            f.write(random.Random(int(seed)).randbytes(int(size)))


def main(argv):
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    cmd, args = argv[1], argv[2:]
    if cmd == "nlink":
        cmd_nlink(*args)
    elif cmd == "seek":
        cmd_seek(*args)
    elif cmd == "same":
        cmd_same(args[0], args[1], args[2:])
    elif cmd == "transition":
        cmd_transition(*args)
    elif cmd == "mmap":
        cmd_mmap(*args)
    elif cmd == "mapmix":
        cmd_mapmix(*args)
    elif cmd == "stress":
        cmd_stress(args[0], args[1], float(args[2]), *(int(a) for a in args[3:]))
    elif cmd == "erofs":
        cmd_erofs(*args)
    elif cmd == "damaged":
        cmd_damaged(*args)
    elif cmd == "random":
        cmd_random(args)
    elif cmd == "stats":
        print(stats(args[0])[args[1]])
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
