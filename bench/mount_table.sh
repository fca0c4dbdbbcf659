# bench/mount_table.sh: sourced by bench/mount, its "table" section: issue
# 9's table of the linux 6.1 tree (or, with --quick, one subdirectory of it),
# one column per file system, all in one run:
#   walk       find -type f
#   stat walk  find -printf '%s %m %T@'
#   rand2000   cat of 2,000 random files over 4 KiB (one list for all)
#   readall    tar -c of the tree, piped to cat (GNU tar skips reading the
#              files when its archive is /dev/null)
#   mount      the mount command to the first stat of the tree's top
# each cold (unmounted, page cache dropped, mounted again) and then warm
# (the same command again), the best of RUNS pairs, with the ratio to
# native ext4. Columns: native ext4, cairn once per --cairn-opts set (none
# given: "noio_uring" and "io_uring" where this cairn's libfuse and the
# kernel have FUSE over io_uring, else the defaults), fuse-archive (built from a source tree
# DATA/fuse-archive* by its Makefile, into the work directory, when one is
# there; else the column says why not), squashfuse_ll. Below it, each
# daemon's peak RSS (VmHWM) over every mount of the table, read before each
# unmount.
# shellcheck shell=bash

TABLE_OPTS=()   # --cairn-opts, in order; none given: one per transport
TABLE_SUB=""    # --quick: the subdirectory of the tree the rows use
TABLE_LINES=()  # the table, markdown
FA_BIN=""       # fuse-archive, when built
FA_WHY=""       # why there is no fuse-archive column

# fa_prepare: builds fuse-archive from DATA/fuse-archive* (never from this
# repository) into W/fuse-archive, or says in FA_WHY why there is none.
fa_prepare() {
	local src
	src=$(compgen -G "$LD_DIR/fuse-archive*" | while read -r d; do
		[ -f "$d/Makefile" ] && { echo "$d"; break; }
	done || true)
	if [ -z "$src" ]; then
		FA_WHY="no fuse-archive source tree (a directory $LD_DIR/fuse-archive* with a Makefile) on this machine"
		return 0
	fi
	FA_BIN=$W/fuse-archive/fuse-archive
	if [ ! -x "$FA_BIN" ] || [ "$src" -nt "$FA_BIN" ]; then
		rm -rf "$W/fuse-archive" && mkdir -p "$W/fuse-archive"
		cp -a "$src/." "$W/fuse-archive/src"
		if ! make -C "$W/fuse-archive/src" >"$W/fuse-archive/build.log" 2>&1; then
			FA_WHY="fuse-archive from $src did not build (see $W/fuse-archive/build.log)"
			FA_BIN=""
			return 0
		fi
		local b
		b=$(find "$W/fuse-archive/src" -type f -name fuse-archive -perm -u+x | head -1)
		if [ -n "$b" ]; then
			cp "$b" "$FA_BIN"
		else
			FA_WHY="the build of $src made no fuse-archive binary"
			FA_BIN=""
		fi
	fi
}

# table_cols: the columns, in order (native first)
table_cols() {
	local i
	echo native
	for i in "${!TABLE_OPTS[@]}"; do echo "cairn_c$i"; done
	[ -z "$FA_BIN" ] || echo fusearchive
	echo squashfuse
}

table_label() {
	case $1 in
	native) echo "native ext4" ;;
	cairn_c*) local o=${TABLE_OPTS[${1#cairn_c}]}; echo "cairn${o:+ -o $o}" ;;
	fusearchive) echo fuse-archive ;;
	*) echo "$1" ;;
	esac
}

daemon_pid() { # the daemon serving MNT, whichever it is
	local p
	for p in $(pgrep -f -- "$MNT\$" || true); do
		[ "$p" != $$ ] && [ -r "/proc/$p/status" ] && { echo "$p"; return; }
	done
}

# table_hwm FS: records the VmHWM (kB) of the daemon serving MNT
table_hwm() {
	local p h
	[ "$1" != native ] && mountpoint -q "$MNT" || return 0
	p=$(daemon_pid)
	[ -n "$p" ] || return 0
	h=$(awk '/^VmHWM:/ { print $2 }' "/proc/$p/status" 2>/dev/null || true)
	[ -z "$h" ] || record "table_hwm_$1" "$h"
}

table_unmount() {
	table_hwm "$1"
	fs_umount "$1"
}

# table_cold FS: a fresh mount of FS over an empty page cache
table_cold() {
	table_unmount "$1"
	drop_caches
	fs_mount "$1" "$(opts_of "$1")"
}

# table_time KEY FS CMD: runs the shell command CMD in FSROOT, records KEY_FS
table_time() {
	local key=$1 fs=$2 cmd=$3 t0 t1
	t0=${EPOCHREALTIME/./}
	(cd "$FSROOT" && bash -c "$cmd") >/dev/null 2>>"$SAMPLES.log" ||
		die "$key on $fs failed: $cmd (see the errors above in $SAMPLES.log)"
	t1=${EPOCHREALTIME/./}
	record "${key}_$fs" "$(calc "($t1 - $t0) / 1e6" 6)"
	say "  $key $fs: $(last "${key}_$fs") s"
}

# table_mount FS: mount to first stat, cold and warm, RUNS times each
table_mount() {
	local fs=$1 i k t0 t1
	[ "$fs" != native ] || return 0
	for i in $(seq "$RUNS"); do
		for k in cold warm; do
			table_unmount "$fs"
			[ "$k" = warm ] || drop_caches
			t0=${EPOCHREALTIME/./}
			fs_mount "$fs" "$(opts_of "$fs")"
			stat "$FSROOT/$TOP" >/dev/null
			t1=${EPOCHREALTIME/./}
			record "tmount_${k}_$fs" "$(calc "($t1 - $t0) / 1e6" 6)"
			say "  tmount_$k $fs: $(last "tmount_${k}_$fs") s"
		done
	done
}

# table_cell KEY FS: "cold / warm" seconds, with the ratios to native
table_cell() {
	local key=$1 fs=$2 c w
	has "${key}_cold_$fs" || { echo "-"; return; }
	c=$(best "${key}_cold_$fs")
	w=$(best "${key}_warm_$fs")
	if [ "$fs" = native ] || ! has "${key}_cold_native"; then
		printf '%s / %s' "$(calc "$c" 3)" "$(calc "$w" 3)"
	else
		printf '%s / %s (%sx / %sx)' "$(calc "$c" 3)" "$(calc "$w" 3)" \
			"$(calc "$c / $(best "${key}_cold_native")" 2)" \
			"$(calc "$w / $(best "${key}_warm_native")" 2)"
	fi
}

section_table() {
	local root=$TOP${TABLE_SUB:+/$TABLE_SUB}
	[ -d "$TREE_PARENT/$root" ] || die "--quick: no directory $root in the tree"
	if [ ${#TABLE_OPTS[@]} = 0 ]; then
		# each transport a column of its own (-o io_uring turns the
		# kernel's machine-wide switch on, as root)
		if "$CAIRN" --version | grep -q 'with FUSE over io_uring' &&
			[ -e /sys/module/fuse/parameters/enable_uring ]; then
			TABLE_OPTS=("noio_uring" "io_uring")
		else
			TABLE_OPTS=("")
			note "cairn: one column: $("$CAIRN" --version) (no FUSE over io_uring here)"
		fi
	fi
	fa_prepare
	[ -z "$FA_WHY" ] || note "fuse-archive: skipped: $FA_WHY"
	# the random files: over 4 KiB, one list for every column
	local list=$W/table-rand${TABLE_SUB:+-${TABLE_SUB//\//_}}.list
	if [ ! -s "$list" ]; then
		(cd "$TREE_PARENT" && find "$root" -type f -size +4k) | LC_ALL=C sort |
			awk 'BEGIN { srand(42) } { printf "%.9f\t%s\n", rand(), $0 }' |
			LC_ALL=C sort -k1,1 | awk 'NR <= 2000' | cut -f2- >"$list"
	fi
	local nrand
	nrand=$(wc -l <"$list")
	say "== table: $root; $nrand random files; columns: $(table_cols | tr '\n' ' ')=="
	local -A cmds=(
		[walk]="find '$root' -type f"
		[stat]="find '$root' -printf '%s %m %T@\n'"
		[rand]="xargs -d '\n' cat -- <'$list'"
		[readall]="tar -cf - '$root' | cat"
	)
	local fs row i
	for fs in $(table_cols); do
		for row in walk stat rand readall; do
			for i in $(seq "$RUNS"); do
				table_cold "$fs"
				table_time "t${row}_cold" "$fs" "${cmds[$row]}"
				table_time "t${row}_warm" "$fs" "${cmds[$row]}"
			done
		done
		table_mount "$fs"
		table_unmount "$fs"
	done
	local cols=() head="|" sep="|"
	mapfile -t cols < <(table_cols)
	head+=" seconds, cold / warm (ratio to native) |"
	sep+=" --- |"
	for fs in "${cols[@]}"; do
		head+=" $(table_label "$fs") |"
		sep+=" --- |"
	done
	[ -n "$FA_BIN" ] || { head+=" fuse-archive |"; sep+=" --- |"; }
	TABLE_LINES=("$head" "$sep")
	local names=([0]=walk [1]=stat [2]=rand [3]=readall [4]=mount)
	local label line
	for row in "${names[@]}"; do
		case $row in
		walk) label="walk (find -type f)" ;;
		stat) label="stat walk (find -printf)" ;;
		rand) label="rand$nrand (cat, files > 4 KiB)" ;;
		readall) label="readall (tar -c)" ;;
		mount) label="mount to first stat" ;;
		esac
		line="| $label |"
		for fs in "${cols[@]}"; do
			if [ "$row" = mount ]; then
				line+=" $(table_cell tmount "$fs") |"
			else
				line+=" $(table_cell "t$row" "$fs") |"
			fi
		done
		[ -n "$FA_BIN" ] || line+=" skipped |"
		TABLE_LINES+=("$line")
	done
	line="| daemon peak RSS (VmHWM, MiB, the most of any mount above) |"
	for fs in "${cols[@]}"; do
		if has "table_hwm_$fs"; then
			line+=" $(calc "$(top "table_hwm_$fs") / 1024" 1) |"
		else
			line+=" - |"
		fi
	done
	[ -n "$FA_BIN" ] || line+=" - |"
	TABLE_LINES+=("$line")
}
