#!/bin/bash
# test_idmap.sh: the owners and modes a mount shows (-o mapowners,
# uidmap=/gidmap=, dmask=/fmask=), in stat:
#  - by default, the ids as recorded;
#  - mapowners: a recorded name known to the local passwd/group (root,
#    daemon) gives its local id, an unknown name keeps the recorded id;
#  - uidmap=FROM:TO[:COUNT]/... and gidmap=: ranges, '/' between them, a
#    repeated option adds ranges; names win over ranges with mapowners;
#    uid= overrides everything;
#  - dmask= masks directories only, fmask= everything else, after umask;
#  - default_permissions checks the mapped owner (a 0600 file mapped to
#    uid 1000 reads as uid 1000, not as uid 1001);
#  - bad values (a range without TO, too many ranges) exit 2.
#
# usage: test_idmap.sh CAIRN MTOOL COMPARE LIB
. "$4" idmap "$@"

# Entries with chosen ids and names: python's tarfile sets them per entry.
python3 - "$WORK/owners.tar" <<'PY'
import io, sys, tarfile
with tarfile.open(sys.argv[1], "w", format=tarfile.PAX_FORMAT) as t:
    def add(name, uid, gid, uname, gname, mode, kind=tarfile.REGTYPE, data=b"x\n"):
        i = tarfile.TarInfo(name)
        i.uid, i.gid, i.uname, i.gname, i.mode, i.type = uid, gid, uname, gname, mode, kind
        if kind == tarfile.REGTYPE:
            i.size = len(data)
            t.addfile(i, io.BytesIO(data))
        else:
            t.addfile(i)
    add("dir", 4321, 4321, "root", "root", 0o777, tarfile.DIRTYPE)
    add("dir/rootfile", 4321, 4322, "root", "daemon", 0o666)
    add("stranger", 1500, 1501, "no-such-user-cairn", "no-such-group-cairn", 0o666)
    add("stranger2", 1502, 1503, "no-such-user-cairn", "no-such-group-cairn", 0o640)
    add("nameless", 1600, 1601, "", "", 0o644)
    add("private", 5000, 5000, "", "", 0o600, data=b"secret\n")
PY
add owners "$WORK/owners.tar" || fail "cairn add"
mnt=$WORK/mnt

# owner_is PATH UID:GID [MODE]
owner_is() {
	local got want=$2
	got=$(stat -c %u:%g "$mnt/$1")
	[ -n "${3:-}" ] && got=$got:$(stat -c %a "$mnt/$1") && want=$want:$3
	[ "$got" = "$want" ] && pass || fail "$CASE: $1 is $got, expected $want"
}

CASE=recorded
if mount_at "$mnt" owners; then
	owner_is dir 4321:4321
	owner_is dir/rootfile 4321:4322
	owner_is stranger 1500:1501
	unmount "$mnt" || fail "unmount"
else
	fail "mount"
fi

CASE=mapowners
if mount_at "$mnt" -o mapowners owners; then
	owner_is dir 0:0
	owner_is dir/rootfile "0:$(getent group daemon | cut -d: -f3)"
	owner_is stranger 1500:1501
	owner_is stranger2 1502:1503
	owner_is nameless 1600:1601
	unmount "$mnt" || fail "unmount"
else
	fail "mount"
fi

CASE=uidmap
if mount_at "$mnt" -o uidmap=1500:2000:10/4321:7,uidmap=1600:9,gidmap=1501:3001:2 owners; then
	owner_is dir 7:4321
	owner_is stranger 2000:3001
	owner_is stranger2 2002:1503
	owner_is nameless 9:1601
	unmount "$mnt" || fail "unmount"
else
	fail "mount"
fi

CASE=mapowners+uidmap
if mount_at "$mnt" -o mapowners,uidmap=1500:2000:10/4321:7 owners; then
	owner_is dir 0:0
	owner_is stranger 2000:1501
	unmount "$mnt" || fail "unmount"
else
	fail "mount"
fi

CASE=uid=
if mount_at "$mnt" -o mapowners,uidmap=1500:2000,uid=42 owners; then
	owner_is dir 42:0
	owner_is stranger 42:1501
	unmount "$mnt" || fail "unmount"
else
	fail "mount"
fi

CASE=masks
if mount_at "$mnt" -o dmask=027,fmask=0133 owners; then
	owner_is dir 4321:4321 750
	owner_is dir/rootfile 4321:4322 644
	owner_is stranger2 1502:1503 640
	unmount "$mnt" || fail "unmount"
else
	fail "mount"
fi
CASE=umask+masks
if mount_at "$mnt" -o umask=002,dmask=020,fmask=004 owners; then
	owner_is dir 4321:4321 755
	owner_is dir/rootfile 4321:4322 660
	unmount "$mnt" || fail "unmount"
else
	fail "mount"
fi

# The kernel's permission checks see the mapped owner.
as() {
	local id=$1
	shift
	setpriv --reuid="$id" --regid="$id" --clear-groups "$@"
}
if command -v setpriv >/dev/null; then
	chmod 755 "$WORK"
	CASE=default_permissions
	if mount_at "$mnt" -o allow_other,uidmap=5000:1000 owners; then
		owner_is private 1000:5000 600
		as 1000 cat "$mnt/private" >/dev/null && pass ||
			fail "uid 1000 cannot read its (mapped) 0600 file"
		as 1001 cat "$mnt/private" >/dev/null 2>&1 &&
			fail "uid 1001 reads a 0600 file mapped to uid 1000" || pass
		unmount "$mnt" || fail "unmount"
	else
		fail "mount"
	fi
fi

for bad in uidmap=1000 uidmap=a:b uidmap=1:2:0 gidmap= dmask=9 fmask=x \
	"uidmap=$(seq -s/ 1 17 | sed 's|\([0-9]*\)|\1:\1|g')"; do
	"$CAIRN" -s "$STORE" mount -o "$bad" owners "$mnt" 2>/dev/null
	r=$?
	[ $r = 2 ] && pass || fail "-o $bad: exit $r, expected 2"
	is_mounted "$mnt" && fail "-o $bad mounted" && unmount "$mnt"
done

finish
