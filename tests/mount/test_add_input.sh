#!/bin/bash
# test_add_input.sh: how `cairn add` reads its input, each case mounted for
# real and compared with what bsdtar -x (or the decompressor) makes:
#  - bare compressed files (.gz .xz .zst .bz2 .lz4, .lz where lzip exists)
#    become one regular file named without the suffix, with the compressed
#    file's mtime, deduplicated against each other; `cairn mount FILE.gz
#    MNT` works in one step. Hostile: a .gz of a tar is still a tar, a
#    truncated or damaged stream fails, a bomb trips the ratio bound, a
#    plain file that is no archive stays an error; nothing is committed.
#  - --strip-components N, compared with bsdtar -x --strip-components N
#    (hard links stripped too), also through `cairn mount`.
#  - encrypted zip entries: --password-file (several), wrong and missing
#    passwords fail naming the archive and the entry, commit nothing, and
#    never print the password.
#  - --encoding: a zip with CP437 and Shift-JIS names (no UTF-8 flag)
#    mounts with UTF-8 names, also via `cairn mount -o encoding=`.
#  - split archives: NAME.tar.001, .zip.001, .7z.001 (four parts each) are
#    read as one file, named NAME; hostile: a missing middle part, a FIFO
#    or /dev/zero among the parts (no hang), a damaged part.
#  - multi-volume RAR 4 (mkrar_volumes.py: a file across 3 volumes, one
#    across 2, small files between): NAME.part1.rar, .part01.rar,
#    .part001.rar and NAME.rar, NAME.r00, ... read as one archive named
#    NAME, mounted, cat and extracted equal to the generator's tree, also
#    through `cairn mount NAME.part1.rar`; hostile: a missing middle or last
#    volume, a FIFO or /dev/zero for a volume (no hang), a flipped byte in a
#    stored member (a split one and a whole one) fail naming the volume.
#
# usage: test_add_input.sh CAIRN MTOOL COMPARE LIB
. "$4" add_input "$@"

mkdir -p "$WORK/in" "$WORK/ref"

# same TREE REF WHAT: the mounted TREE equals REF (compare.py and diff -r).
same() {
	local out=$WORK/diff
	if ! python3 "$COMPARE" --no-dir-mtime "$1" "$2" >"$out" 2>&1; then
		fail "$3: compare.py finds differences:"
		head -20 "$out"
	elif ! diff -r --no-dereference "$1" "$2" >"$out" 2>&1; then
		fail "$3: diff -r finds differences:"
		head -20 "$out"
	else
		pass
	fi
}

# refused WHAT PATTERN ARGS...: cairn -s STORE ARGS fails with exit 1, one
# line on stderr matching PATTERN, within a minute; the snapshot list does
# not change.
refused() {
	local what=$1 pattern=$2 before
	shift 2
	before=$("$CAIRN" -s "$STORE" ls 2>/dev/null)
	# A bound on the time: nothing here may hang (a FIFO for a part).
	if timeout 60 "$CAIRN" -s "$STORE" "$@" >"$WORK/out" 2>"$WORK/err"; then
		fail "$what: accepted"
	elif [ "$(wc -l <"$WORK/err")" != 1 ] || ! grep -qE -- "$pattern" "$WORK/err"; then
		fail "$what: not one line matching '$pattern': $(cat "$WORK/err")"
	elif [ "$before" != "$("$CAIRN" -s "$STORE" ls 2>/dev/null)" ]; then
		fail "$what: the snapshot list changed"
	else
		pass
	fi
}

# ---- bare compressed files ----

seq 1 200000 >"$WORK/in/dump.sql"
random_file "$WORK/in/dump.sql.rnd" 300000 3
cat "$WORK/in/dump.sql.rnd" >>"$WORK/in/dump.sql"
touch -d '2021-03-04 05:06:07' "$WORK/in/dump.sql"
C=$WORK/c
mkdir -p "$C"
gzip -c "$WORK/in/dump.sql" >"$C/dump.sql.gz"
xz -c "$WORK/in/dump.sql" >"$C/dump.sql.xz"
zstd -q -c "$WORK/in/dump.sql" >"$C/dump.sql.zst"
bzip2 -c "$WORK/in/dump.sql" >"$C/dump.sql.bz2"
lz4 -q -c "$WORK/in/dump.sql" >"$C/dump.sql.lz4"
command -v lzip >/dev/null && lzip -c "$WORK/in/dump.sql" >"$C/dump.sql.lz"
touch -d '2022-01-02 03:04:05' "$C"/*
first=1
for f in "$C"/*; do
	suffix=${f##*.}
	if ! "$CAIRN" -s "$STORE" add --name "bare-$suffix" "$f" >"$WORK/add.out"; then
		fail "bare .$suffix: cairn add"
		continue
	fi
	# The same bytes under another compression: nothing new stored.
	[ $first = 1 ] || check "bare .$suffix: deduplicated" grep -q ' 0 B new stored' "$WORK/add.out"
	first=0
	mnt=$WORK/mnt-bare-$suffix
	if ! mount_at "$mnt" "bare-$suffix"; then
		fail "bare .$suffix: cairn mount"
		continue
	fi
	rm -rf "$WORK/ref/bare" && mkdir -p "$WORK/ref/bare"
	cp "$WORK/in/dump.sql" "$WORK/ref/bare/dump.sql"
	chmod 644 "$WORK/ref/bare/dump.sql"
	touch -r "$f" "$WORK/ref/bare/dump.sql"
	same "$mnt" "$WORK/ref/bare" "bare .$suffix"
	check "bare .$suffix: unmount" unmount "$mnt"
done

# One step: cairn mount FILE.gz MNT.
cp "$C/dump.sql.gz" "$WORK/in/log.gz"
mnt=$WORK/mnt-onestep
if mount_at "$mnt" "$WORK/in/log.gz"; then
	check "cairn mount log.gz: the file is named log" cmp "$mnt/log" "$WORK/in/dump.sql"
	check "cairn mount log.gz: unmount" unmount "$mnt"
else
	fail "cairn mount log.gz"
fi

# Hostile: a .gz of a tar stays a tar.
mkdir -p "$WORK/in/t" && printf 'inside\n' >"$WORK/in/t/file"
bsdtar -czf "$C/tree.gz" -C "$WORK/in/t" .
"$CAIRN" -s "$STORE" add -q --name gztar "$C/tree.gz" &&
	check "a .gz holding a tar is the tar" \
		sh -c '[ "$("$1" -s "$2" cat gztar:file)" = inside ]' sh "$CAIRN" "$STORE" ||
	fail "a .gz holding a tar: cairn add"
# A truncated stream, a damaged one (CRC32), a tar.gz whose tar is damaged.
size=$(stat -c %s "$C/dump.sql.gz")
head -c $((size / 2)) "$C/dump.sql.gz" >"$WORK/in/cut.sql.gz"
refused "a truncated .gz" 'cut.sql.gz.*truncated' add -q "$WORK/in/cut.sql.gz"
head -c $(($(stat -c %s "$C/dump.sql.xz") / 2)) "$C/dump.sql.xz" >"$WORK/in/cut.sql.xz"
refused "a truncated .xz" 'cut.sql.xz' add -q "$WORK/in/cut.sql.xz"
cp "$C/dump.sql.gz" "$WORK/in/crc.sql.gz"
printf '\xde\xad\xbe\xef' | dd of="$WORK/in/crc.sql.gz" bs=1 seek=$((size - 8)) conv=notrunc 2>/dev/null
refused "a .gz with a wrong CRC32" 'crc.sql.gz.*CRC32' add -q "$WORK/in/crc.sql.gz"
{ printf 'not a tar header'; head -c 2000 /dev/zero; } | gzip -c >"$WORK/in/bad.tar.gz"
refused "a .tar.gz whose tar is damaged" 'bad.tar.gz.*not a tar' add -q "$WORK/in/bad.tar.gz"
# A bomb: 200 MB of zeros in 200 KB trips --max-ratio 100.
head -c 200000000 /dev/zero | gzip -c >"$WORK/in/zeros.gz"
refused "a .gz bomb" 'zeros.gz.*decompression bomb' add -q --max-ratio 100 "$WORK/in/zeros.gz"
# A plain file that is no archive stays an error; so does one that only
# starts like bzip2.
printf 'just text\n' >"$WORK/in/notes.txt"
refused "a plain text file" 'notes.txt: not an archive' add -q "$WORK/in/notes.txt"
printf 'BZh9 but not bzip2 at all\n' >"$WORK/in/fake.bz2"
refused "a file that only starts like bzip2" 'fake.bz2' add -q "$WORK/in/fake.bz2"

# ---- --strip-components ----

S=$WORK/strip-src
mkdir -p "$S/top/a/b" "$S/top/c"
printf 'one\n' >"$S/top/a/one"
printf 'two\n' >"$S/top/a/b/two"
printf 'linked\n' >"$S/top/c/hl1"
ln "$S/top/c/hl1" "$S/top/a/hl2"
ln -s ../c/hl1 "$S/top/a/sym"
printf 'toplevel\n' >"$S/rootfile"
bsdtar --format pax -cf "$WORK/in/strip.tar" -C "$S" .
bsdtar --format pax -cf "$WORK/in/strip-nodot.tar" -C "$S" top rootfile
for n in 1 2 3; do
	for t in strip strip-nodot; do
		name=$t-$n
		if ! "$CAIRN" -s "$STORE" add -q --name "$name" --strip-components "$n" "$WORK/in/$t.tar"; then
			fail "--strip-components $n ($t): cairn add"
			continue
		fi
		mkdir -p "$WORK/ref/$name"
		bsdtar -xf "$WORK/in/$t.tar" --strip-components "$n" -C "$WORK/ref/$name"
		mnt=$WORK/mnt-$name
		if mount_at "$mnt" "$name"; then
			same "$mnt" "$WORK/ref/$name" "--strip-components $n ($t)"
			check "--strip-components $n ($t): unmount" unmount "$mnt"
		else
			fail "--strip-components $n ($t): cairn mount"
		fi
	done
done
# Through cairn mount ARCHIVE.
cp "$WORK/in/strip.tar" "$WORK/in/viamount.tar"
mnt=$WORK/mnt-viamount
if mount_at "$mnt" --strip-components 2 "$WORK/in/viamount.tar"; then
	same "$mnt" "$WORK/ref/strip-2" "cairn mount --strip-components 2"
	check "cairn mount --strip-components: unmount" unmount "$mnt"
else
	fail "cairn mount --strip-components 2"
fi
"$CAIRN" -s "$STORE" add --strip-components -1 "$WORK/in/strip.tar" 2>"$WORK/err"
check "--strip-components -1: a usage error" [ $? = 2 ]
check "--strip-components -1: says which option" grep -q 'invalid --strip-components' "$WORK/err"

# ---- encrypted entries ----

P=$WORK/pw
mkdir -p "$P/src/sub"
printf 'top secret\n' >"$P/src/secret.txt"
random_file "$P/src/sub/big.bin" 300000 5
printf 'hunter2\n' >"$WORK/pw.ok"
printf 'wrong\n' >"$WORK/pw.bad"
bsdtar --format zip --options zip:encryption=aes256 --passphrase hunter2 \
	-cf "$WORK/in/aes.zip" -C "$P/src" .
bsdtar --format zip --options zip:encryption=traditional --passphrase hunter2 \
	-cf "$WORK/in/zipcrypto.zip" -C "$P/src" .
for kind in aes zipcrypto; do
	z=$WORK/in/$kind.zip
	mkdir -p "$WORK/ref/$kind"
	bsdtar -xf "$z" --passphrase hunter2 -C "$WORK/ref/$kind"
	# No password: refused, naming the archive and an entry; stdin is
	# no terminal, so nothing is asked.
	refused "$kind: no password" "$kind.zip: .*(secret.txt|big.bin): Passphrase required" \
		add -q --name "$kind" "$z" </dev/null
	refused "$kind: a wrong password" "$kind.zip: .*(secret.txt|big.bin|CRC)" \
		add -q --name "$kind" --password-file "$WORK/pw.bad" "$z" </dev/null
	check "$kind: the wrong password is not in the message" \
		sh -c '! grep -q wrong "$1"' sh "$WORK/err"
	# Several files: the wrong one, then the right one.
	if ! "$CAIRN" -s "$STORE" add -q --name "$kind" --password-file "$WORK/pw.bad" \
		--password-file "$WORK/pw.ok" "$z" >"$WORK/out" 2>&1 </dev/null; then
		fail "$kind: cairn add --password-file: $(cat "$WORK/out")"
		continue
	fi
	check "$kind: the password is not printed" sh -c '! grep -q hunter2 "$1"' sh "$WORK/out"
	mnt=$WORK/mnt-$kind
	if mount_at "$mnt" "$kind"; then
		same "$mnt" "$WORK/ref/$kind" "$kind: mounted"
		check "$kind: unmount" unmount "$mnt"
	else
		fail "$kind: cairn mount"
	fi
done
check "the password is nowhere in the store" sh -c '! grep -rq hunter2 "$1"' sh "$STORE"
# A wrong passphrase that passes zip's one-byte check (made to, here; 1 in
# 256 do): the entry's data do not decode, and with several passphrases
# the archive is read again with them in another order.
python3 "$(dirname "$COMPARE")/zipcrypto.py" "$WORK/in/fooled.zip" hunter2 wrong
mkdir -p "$WORK/ref/fooled"
bsdtar -xf "$WORK/in/fooled.zip" --passphrase hunter2 -C "$WORK/ref/fooled"
check "fooled.zip: bsdtar with the wrong passphrase fails on a.txt's data" \
	sh -c 'bsdtar -xf "$1" --passphrase wrong -O 2>&1 >/dev/null | grep -q "a.txt: ZIP decompression failed"' \
	sh "$WORK/in/fooled.zip"
refused "fooled.zip: only the wrong passphrase" "fooled.zip: a.txt: ZIP decompression failed" \
	add -q --name fooled --password-file "$WORK/pw.bad" "$WORK/in/fooled.zip" </dev/null
for opts in "" "--partial"; do
	if "$CAIRN" -s "$STORE" add -q --name "fooled$opts" $opts --password-file "$WORK/pw.bad" \
		--password-file "$WORK/pw.ok" "$WORK/in/fooled.zip" >"$WORK/out" 2>"$WORK/err" </dev/null; then
		check "fooled.zip $opts: says it reads the archive again" \
			grep -q 'reading the archive again with the passphrases in another order' "$WORK/err"
		check "fooled.zip $opts: the snapshot is whole" \
			sh -c '"$1" -s "$2" info "$3" | grep -q "entries *2 "' sh "$CAIRN" "$STORE" "fooled$opts"
		check "fooled.zip $opts: a.txt" \
			sh -c '"$1" -s "$2" cat "$3:a.txt" | cmp -s - "$4"' sh "$CAIRN" "$STORE" \
			"fooled$opts" "$WORK/ref/fooled/a.txt"
	else
		fail "fooled.zip $opts: wrong then right passphrase: $(cat "$WORK/err")"
	fi
done
refused "fooled.zip on stdin: cannot be read again" "stdin: a.txt: .*read from a file, not stdin" \
	add -q --name fooled2 --password-file "$WORK/pw.bad" --password-file "$WORK/pw.ok" - \
	<"$WORK/in/fooled.zip"
refused "a missing --password-file" 'password-file .*nope' \
	add -q --name nope --password-file "$WORK/nope" "$WORK/in/aes.zip"
# One step, through cairn mount ARCHIVE.
cp "$WORK/in/aes.zip" "$WORK/in/viamount-aes.zip"
mnt=$WORK/mnt-viamount-aes
if mount_at "$mnt" --password-file "$WORK/pw.ok" "$WORK/in/viamount-aes.zip" </dev/null; then
	same "$mnt" "$WORK/ref/aes" "cairn mount --password-file"
	check "cairn mount --password-file: unmount" unmount "$mnt"
else
	fail "cairn mount --password-file"
fi
# The prompt: on a terminal (a pty), asked once, echo off.
# prompt_add NAME PASSWORD: cairn add --name NAME zipcrypto.zip on a pty,
# typing PASSWORD at the prompt; its exit status, the screen in pty.out.
prompt_add() {
	python3 - "$CAIRN" "$STORE" "$WORK/in/zipcrypto.zip" "$1" "$2" >"$WORK/pty.out" 2>&1 <<'PY'
import os, pty, select, signal, sys, time
cairn, store, z, name, password = sys.argv[1:6]
pid, fd = pty.fork()
if pid == 0:
    os.execv(cairn, [cairn, "-s", store, "add", "-q", "--name", name, z])
seen, sent = b"", False
deadline = time.time() + 30
while time.time() < deadline:
    if not sent and b"Password for" in seen:
        os.write(fd, password.encode() + b"\n")
        sent = True
    ready, _, _ = select.select([fd], [], [], 1)
    if not ready:
        continue
    try:
        chunk = os.read(fd, 1024)
    except OSError:
        break
    if not chunk:
        break
    seen += chunk
else:
    os.kill(pid, signal.SIGKILL)
    print("timed out")
_, status = os.waitpid(pid, 0)
sys.stdout.write(seen.decode(errors="replace"))
if password.encode() in seen:
    print("\nthe password was echoed")
    sys.exit(99)
if seen.count(b"Password for") != 1:
    print("\nnot asked exactly once")
    sys.exit(98)
sys.exit(os.WEXITSTATUS(status) if os.WIFEXITED(status) else 97)
PY
}
prompt_add prompted hunter2
r=$?
check "a password typed at the prompt, not echoed: $(cat "$WORK/pty.out")" [ $r = 0 ]
check "the prompt names the archive" grep -q 'Password for .*zipcrypto.zip' "$WORK/pty.out"
check "the prompted snapshot reads" \
	sh -c '[ "$("$1" -s "$2" cat prompted:secret.txt)" = "top secret" ]' sh "$CAIRN" "$STORE"
prompt_add prompted-wrong wrongpass
r=$?
check "a wrong password typed at the prompt fails (exit 1), asked once: $(cat "$WORK/pty.out")" [ $r = 1 ]
check "a wrong password at the prompt commits nothing" \
	sh -c '! "$1" -s "$2" ls | grep -q prompted-wrong' sh "$CAIRN" "$STORE"

# ---- --encoding ----

# mkzip OUT CHARSET NAME...: a zip whose names are in CHARSET without the
# UTF-8 flag (zipfile would set it): ASCII placeholders of the same byte
# length, patched in both headers.
mkzip() {
	python3 - "$@" <<'PY'
import sys, zipfile
out, charset, names = sys.argv[1], sys.argv[2], sys.argv[3:]
swaps = []
with zipfile.ZipFile(out, "w") as z:
    for i, name in enumerate(names):
        raw = name.encode(charset)
        holder = (b"%c" % (65 + i)) * len(raw)
        z.writestr(holder.decode(), ("contents of " + name + "\n").encode())
        swaps.append((holder, raw))
data = open(out, "rb").read()
for holder, raw in swaps:
    assert data.count(holder) == 2
    data = data.replace(holder, raw)
open(out, "wb").write(data)
PY
}
mkzip "$WORK/in/sjis.zip" cp932 名前.txt 日本語.txt
mkzip "$WORK/in/dos.zip" cp437 café.txt Ärger.txt
for e in CP932:sjis:名前.txt CP437:dos:café.txt; do
	charset=${e%%:*} rest=${e#*:}
	name=${rest%%:*} want=${rest#*:}
	mkdir -p "$WORK/ref/$name"
	bsdtar -xf "$WORK/in/$name.zip" --options "hdrcharset=$charset" -C "$WORK/ref/$name"
	# In the C locale too: the names still land in UTF-8.
	if ! LC_ALL=C "$CAIRN" -s "$STORE" add -q --encoding "$charset" "$WORK/in/$name.zip"; then
		fail "--encoding $charset: cairn add"
		continue
	fi
	mnt=$WORK/mnt-$name
	if mount_at "$mnt" "$name"; then
		check "--encoding $charset: $want is there" [ -f "$mnt/$want" ]
		same "$mnt" "$WORK/ref/$name" "--encoding $charset"
		check "--encoding $charset: unmount" unmount "$mnt"
	else
		fail "--encoding $charset: cairn mount"
	fi
done
cp "$WORK/in/sjis.zip" "$WORK/in/viamount-sjis.zip"
mnt=$WORK/mnt-viamount-sjis
if mount_at "$mnt" -o encoding=CP932,nopassthrough "$WORK/in/viamount-sjis.zip"; then
	check "mount -o encoding=CP932: 名前.txt is there" [ -f "$mnt/名前.txt" ]
	check "mount -o encoding=CP932: unmount" unmount "$mnt"
else
	fail "mount -o encoding=CP932"
fi
refused "an unknown charset" 'dos.zip: charset NOPE' add -q --name nope --encoding NOPE "$WORK/in/dos.zip"
refused "a charset name with a comma" 'dos.zip: invalid charset' add -q --name nope --encoding 'a,b' "$WORK/in/dos.zip"

# ---- split archives ----

SP=$WORK/split
mkdir -p "$SP/src/d"
random_file "$SP/src/big.bin" 2500000 9
printf 'small\n' >"$SP/src/d/small"
bsdtar --format pax -cf "$SP/parts.tar" -C "$SP/src" .
bsdtar --format zip -cf "$SP/parts.zip" -C "$SP/src" .
bsdtar --format 7zip -cf "$SP/parts.7z" -C "$SP/src" .
for f in parts.tar parts.zip parts.7z; do
	kind=${f#parts.}
	split -b 700000 -a 3 --numeric-suffixes=1 "$SP/$f" "$SP/$f."
	rm -rf "$WORK/ref/split-$kind" && mkdir -p "$WORK/ref/split-$kind"
	bsdtar -xf "$SP/$f" -C "$WORK/ref/split-$kind"
	mkdir -p "$SP/$kind" && mv "$SP/$f".0* "$SP/$kind/"
	if ! "$CAIRN" -s "$STORE" add -q --name "split-$kind" "$SP/$kind/$f.001"; then
		fail "split .$kind.001: cairn add"
		continue
	fi
	mnt=$WORK/mnt-split-$kind
	if mount_at "$mnt" "split-$kind"; then
		same "$mnt" "$WORK/ref/split-$kind" "split .$kind.001 (4 parts)"
		check "split .$kind: unmount" unmount "$mnt"
	else
		fail "split .$kind: cairn mount"
	fi
	check "split .$kind: the source is named after the whole" \
		sh -c '"$1" -s "$2" info "split-$3" | grep -q "parts.$3"' sh "$CAIRN" "$STORE" "$kind"
done
# The default name is the base name's; a second add is a no-op.
"$CAIRN" -s "$STORE" add -q "$SP/tar/parts.tar.001" && "$CAIRN" -s "$STORE" cat parts:d/small >"$WORK/out" &&
	check "split: named parts, read" grep -q small "$WORK/out" || fail "split: add without --name"
"$CAIRN" -s "$STORE" add "$SP/tar/parts.tar.001" >"$WORK/out" 2>&1
check "split: adding it again is a no-op" grep -q unchanged "$WORK/out"
# One step: cairn mount NAME.001, named NAME as add names it.
mkdir -p "$SP/one"
for part in "$SP"/zip/parts.zip.0*; do
	cp "$part" "$SP/one/solo.zip.${part##*.}"
done
mnt=$WORK/mnt-split-onestep
if mount_at "$mnt" "$SP/one/solo.zip.001"; then
	same "$mnt" "$WORK/ref/split-zip" "cairn mount solo.zip.001"
	check "cairn mount solo.zip.001: unmount" unmount "$mnt"
	check "cairn mount solo.zip.001: snapshot solo" "$CAIRN" -s "$STORE" info solo
else
	fail "cairn mount solo.zip.001"
fi
# Hostile: a missing middle part, a FIFO or /dev/zero for a part (no hang),
# a damaged part (the error names the archive).
mv "$SP/tar/parts.tar.002" "$SP/tar/away"
refused "split: a missing middle part" 'parts.tar.002: missing, though part 3 exists' \
	add -q --name split-missing "$SP/tar/parts.tar.001"
mv "$SP/tar/away" "$SP/tar/parts.tar.002"
mv "$SP/7z/parts.7z.003" "$SP/7z/away"
mkfifo "$SP/7z/parts.7z.003"
refused "split: a FIFO for a part" 'parts.7z.003: not a regular file' \
	add -q --name split-fifo "$SP/7z/parts.7z.001"
rm "$SP/7z/parts.7z.003"
ln -s /dev/zero "$SP/7z/parts.7z.003"
refused "split: /dev/zero for a part" 'parts.7z.003: not a regular file' \
	add -q --name split-zero "$SP/7z/parts.7z.001"
rm "$SP/7z/parts.7z.003"
cp "$SP/7z/away" "$SP/7z/parts.7z.003"
printf 'XXXXXXXX' | dd of="$SP/7z/parts.7z.003" bs=1 seek=1000 conv=notrunc 2>/dev/null
refused "split: a damaged part" "parts.7z: " add -q --name split-damaged "$SP/7z/parts.7z.001"

# ---- multi-volume RAR ----

RV=$WORK/rarvol
MKRARV=$(dirname "$COMPARE")/mkrar_volumes.py
mkdir -p "$WORK/ref/rarvol"
for naming in part1 part01 part001 old; do
	mkdir -p "$RV/$naming"
	python3 "$MKRARV" "$RV/$naming" "$naming" "$naming" "$WORK/ref/rarvol" >"$WORK/vols" ||
		fail "mkrar_volumes.py $naming"
	first=$(head -1 "$WORK/vols")
	if ! "$CAIRN" -s "$STORE" add -q --name "rar-$naming" "$RV/$naming/$first"; then
		fail "rar volumes $first: cairn add"
		continue
	fi
	rm -rf "$WORK/x-$naming"
	if "$CAIRN" -s "$STORE" extract "rar-$naming" "$WORK/x-$naming"; then
		same "$WORK/x-$naming" "$WORK/ref/rarvol" "rar volumes $first ($(wc -l <"$WORK/vols") volumes): extract"
	else
		fail "rar volumes $first: cairn extract"
	fi
	"$CAIRN" -s "$STORE" cat "rar-$naming:big.bin" >"$WORK/out" &&
		check "rar volumes $first: cat big.bin (3 volumes)" cmp -s "$WORK/out" "$WORK/ref/rarvol/big.bin" ||
		fail "rar volumes $first: cat"
done
mnt=$WORK/mnt-rarvol
if mount_at "$mnt" rar-part001; then
	same "$mnt" "$WORK/ref/rarvol" "rar volumes .part001.rar: mount"
	check "rar volumes: unmount" unmount "$mnt"
else
	fail "rar volumes: cairn mount rar-part001"
fi
# The default name is NAME's, for add and for the one-step mount.
"$CAIRN" -s "$STORE" add -q "$RV/old/old.rar" &&
	check "rar volumes: old.rar is added as old" "$CAIRN" -s "$STORE" info old >/dev/null ||
	fail "rar volumes: add old.rar without --name"
mnt=$WORK/mnt-rarvol-onestep
if mount_at "$mnt" "$RV/part1/part1.part1.rar"; then
	same "$mnt" "$WORK/ref/rarvol" "cairn mount part1.part1.rar"
	check "cairn mount part1.part1.rar: unmount" unmount "$mnt"
	check "cairn mount part1.part1.rar: the snapshot is part1" \
		"$CAIRN" -s "$STORE" info part1 >/dev/null
else
	fail "cairn mount part1.part1.rar"
fi
# Hostile: a missing middle or last volume, a FIFO or /dev/zero for a
# volume (no hang), a flipped byte in stored data (split or whole).
V=$RV/part1/part1
mv "$V.part2.rar" "$WORK/away"
refused "rar volumes: a missing middle volume" 'part1.part2.rar: missing, though part 3 exists' \
	add -q --name rar-missing "$V.part1.rar"
mv "$WORK/away" "$V.part2.rar"
mv "$V.part4.rar" "$WORK/away"
refused "rar volumes: a missing last volume" 'part1.part4.rar: missing \(tail.bin continues in it\)' \
	add -q --name rar-missing "$V.part1.rar"
mv "$WORK/away" "$V.part4.rar"
mv "$RV/old/old.r00" "$WORK/away"
refused "rar volumes: old naming, a missing middle volume" 'old.r00: missing, though part 3 exists' \
	add -q --name rar-missing "$RV/old/old.rar"
mv "$WORK/away" "$RV/old/old.r00"
mv "$V.part3.rar" "$WORK/away"
mkfifo "$V.part3.rar"
refused "rar volumes: a FIFO for a volume" 'part1.part3.rar: not a regular file' \
	add -q --name rar-fifo "$V.part1.rar"
rm "$V.part3.rar"
ln -s /dev/zero "$V.part3.rar"
refused "rar volumes: /dev/zero for a volume" 'part1.part3.rar: not a regular file' \
	add -q --name rar-zero "$V.part1.rar"
rm "$V.part3.rar"
mv "$WORK/away" "$V.part3.rar"
cp "$V.part2.rar" "$WORK/away"
printf 'X' | dd of="$V.part2.rar" bs=1 seek=5000 conv=notrunc 2>/dev/null
refused "rar volumes: a damaged middle volume" 'part1.part2.rar: big.bin: CRC error' \
	add -q --name rar-damaged "$V.part1.rar"
mv "$WORK/away" "$V.part2.rar"
cp "$V.part3.rar" "$WORK/away"
python3 -c 'import sys; p = sys.argv[1]; d = bytearray(open(p, "rb").read()); d[d.index(b"small\n")] ^= 1; open(p, "wb").write(d)' "$V.part3.rar"
refused "rar volumes: a damaged stored file in a volume" 'part1.part3.rar: d/small.txt: CRC error' \
	add -q --name rar-damaged "$V.part1.rar"
mv "$WORK/away" "$V.part3.rar"

finish
