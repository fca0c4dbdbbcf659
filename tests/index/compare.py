#!/usr/bin/env python3
"""compare.py: compares two extracted trees the way invariant 5
(docs/ARCHITECTURE.md) asks: the same names, file types, contents, modes, sizes, mtimes (to the
nanosecond), symlink targets, device numbers, owners, xattrs and hard-link
groups. The top directories themselves are not compared (extracting into
an existing directory leaves its own metadata alone).

usage: compare.py [--no-dir-mtime] [--no-owner] A B
exit 0 when the trees agree, 1 with one line per difference.
"""
import os
import stat
import sys


def walk(top):
    """path -> lstat, for everything below top."""
    found = {}
    for root, dirs, files in os.walk(top):
        for name in dirs + files:
            full = os.path.join(root, name)
            found[os.path.relpath(full, top)] = os.lstat(full)
    return found


def xattrs(path):
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError:
        return {}
    return {n: os.getxattr(path, n, follow_symlinks=False) for n in sorted(names)}


def content(path):
    with open(path, "rb") as f:
        return f.read()


def link_groups(tree):
    """For hard-linked files: path -> the sorted tuple of all its names."""
    by_inode = {}
    for path, st in tree.items():
        if not stat.S_ISDIR(st.st_mode) and st.st_nlink > 1:
            by_inode.setdefault((st.st_dev, st.st_ino), []).append(path)
    groups = {}
    for names in by_inode.values():
        for name in names:
            groups[name] = tuple(sorted(names))
    return groups


def compare_entry(path, a_top, b_top, sa, sb, opts, out):
    pa, pb = os.path.join(a_top, path), os.path.join(b_top, path)
    if stat.S_IFMT(sa.st_mode) != stat.S_IFMT(sb.st_mode):
        out.append(f"{path}: type {stat.filemode(sa.st_mode)} vs {stat.filemode(sb.st_mode)}")
        return
    if stat.S_ISLNK(sa.st_mode):
        if os.readlink(pa) != os.readlink(pb):
            out.append(f"{path}: link target {os.readlink(pa)!r} vs {os.readlink(pb)!r}")
    else:
        if stat.S_IMODE(sa.st_mode) != stat.S_IMODE(sb.st_mode):
            out.append(f"{path}: mode {oct(sa.st_mode)} vs {oct(sb.st_mode)}")
    if stat.S_ISREG(sa.st_mode):
        if sa.st_size != sb.st_size:
            out.append(f"{path}: size {sa.st_size} vs {sb.st_size}")
        elif content(pa) != content(pb):
            out.append(f"{path}: contents differ")
    if stat.S_ISCHR(sa.st_mode) or stat.S_ISBLK(sa.st_mode):
        if sa.st_rdev != sb.st_rdev:
            out.append(f"{path}: device {sa.st_rdev} vs {sb.st_rdev}")
    check_mtime = not (stat.S_ISDIR(sa.st_mode) and opts["no_dir_mtime"])
    if check_mtime and sa.st_mtime_ns != sb.st_mtime_ns:
        out.append(f"{path}: mtime {sa.st_mtime_ns} vs {sb.st_mtime_ns}")
    if not opts["no_owner"] and (sa.st_uid, sa.st_gid) != (sb.st_uid, sb.st_gid):
        out.append(f"{path}: owner {sa.st_uid}:{sa.st_gid} vs {sb.st_uid}:{sb.st_gid}")
    if xattrs(pa) != xattrs(pb):
        out.append(f"{path}: xattrs {xattrs(pa)} vs {xattrs(pb)}")


def main(argv):
    opts = {"no_dir_mtime": False, "no_owner": False}
    args = []
    for arg in argv[1:]:
        if arg == "--no-dir-mtime":
            opts["no_dir_mtime"] = True
        elif arg == "--no-owner":
            opts["no_owner"] = True
        else:
            args.append(arg)
    if len(args) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    a_top, b_top = args
    a, b = walk(a_top), walk(b_top)
    out = []
    for path in sorted(set(a) | set(b)):
        if path not in a or path not in b:
            out.append(f"{path}: only in {a_top if path in a else b_top}")
            continue
        compare_entry(path, a_top, b_top, a[path], b[path], opts, out)
    ga, gb = link_groups(a), link_groups(b)
    for path in sorted(set(ga) | set(gb)):
        if ga.get(path) != gb.get(path):
            out.append(f"{path}: hard links {ga.get(path)} vs {gb.get(path)}")
    for line in out:
        print(line)
    return 1 if out else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
