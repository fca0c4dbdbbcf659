# bench/linux-data.sh: sourced by bench/add and bench/mount. Finds or makes
# their data set: Debian's linux source packages for bookworm (6.1) and trixie
# (6.12), their plain tars, a .tar.gz of each and their extracted trees, and
# installs the peer tools they compare against. Nothing is fetched or made
# twice: delete a file to have it made again.
#
# Environment: CAIRN_BENCH_LINUX, the data directory (default
# /var/tmp/cairn-bench if it exists, else bench/data/linux).
# shellcheck shell=bash

LINUX_SUITES=(bookworm trixie) # suite of each version, oldest first
LINUX_VERSIONS=(6.1 6.12)      # upstream series each suite ships

linux_data_dir() {
	if [ -n "${CAIRN_BENCH_LINUX:-}" ]; then
		printf '%s\n' "$CAIRN_BENCH_LINUX"
	elif [ -d /var/tmp/cairn-bench ]; then
		printf '%s\n' /var/tmp/cairn-bench
	else
		printf '%s\n' "$ROOT/bench/data/linux"
	fi
}

ld_say() { printf '%s\n' "$*" >&2; }
ld_die() {
	printf 'error: %s\n' "$*" >&2
	exit 1
}

as_root() {
	if [ "$(id -u)" -eq 0 ]; then
		"$@"
	else
		sudo "$@"
	fi
}

# need_tools PACKAGE:COMMAND...: installs each PACKAGE whose COMMAND is missing.
need_tools() {
	local spec missing=()
	for spec in "$@"; do
		command -v "${spec#*:}" >/dev/null 2>&1 || missing+=("${spec%%:*}")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	ld_say "installing ${missing[*]} ..."
	as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
		"${missing[@]}" >&2 ||
		{ as_root apt-get update >&2 && as_root env DEBIAN_FRONTEND=noninteractive \
			apt-get install -y --no-install-recommends "${missing[@]}" >&2; }
}

# The URI and keyring of the apt entry serving the system's own Debian suite,
# for a deb-src entry of another suite from the same mirror.
debian_mirror() {
	local codename
	codename=$(. /etc/os-release && printf '%s' "${VERSION_CODENAME:-}")
	apt-get indextargets --format '$(ORIGIN) $(CODENAME) $(SITE)' 2>/dev/null |
		awk -v c="$codename" '$1 == "Debian" && $2 == c { print $3; exit }'
}

has_deb_src() { # has_deb_src SUITE
	apt-get indextargets --format '$(CODENAME) $(TARGET_OF)' 2>/dev/null |
		grep -qx "$1 deb-src"
}

# add_deb_src SUITE: a deb-src entry (sources only: apt installs no binary
# from it) for SUITE, from the mirror the system already uses.
add_deb_src() {
	local suite=$1 uri keyring=/usr/share/keyrings/debian-archive-keyring.gpg
	local file=/etc/apt/sources.list.d/cairn-bench-$suite-src.sources
	uri=$(debian_mirror)
	[ -n "$uri" ] || ld_die "no apt entry serves this system's Debian suite; add a deb-src entry for $suite by hand"
	ld_say "adding $file (deb-src $suite from $uri)"
	{
		printf '# Added by cairn bench/ to fetch linux source packages.\n'
		printf 'Types: deb-src\nURIs: %s\nSuites: %s\nComponents: main\n' "$uri" "$suite"
		[ -f "$keyring" ] && printf 'Signed-By: %s\n' "$keyring"
	} | as_root tee "$file" >/dev/null
}

# madison_versions SUITE: the versions of the linux source package that
# SUITE's deb-src entry lists in `apt-cache madison linux` output (stdin),
# newest first.
madison_versions() {
	awk -F'|' -v s="$1" '$3 ~ (" " s "/[^ ]* Sources *$") { gsub(/ /, "", $2); print $2 }' |
		sort -rV
}

# source_versions SUITE: the versions of the linux source package SUITE's
# deb-src entry lists, newest first.
source_versions() {
	apt-cache madison linux 2>/dev/null | madison_versions "$1"
}

# apt_fetch_source DIR VERSION: downloads the linux=VERSION source package
# into DIR.
apt_fetch_source() {
	local sandbox=()
	[ "$(id -u)" -eq 0 ] && sandbox=(-o APT::Sandbox::User=root)
	(cd "$1" && apt-get "${sandbox[@]}" source --download-only "linux=$2" >&2)
}

# fetch_first DIR SERIES FETCH VERSION...: the version choice. Tries each
# VERSION of the upstream SERIES (6.12: 6.12.41-1, not 6.1.x) in the order
# given (newest first) with FETCH DIR VERSION until one succeeds, removing
# what a failed one left; prints the version fetched. Returns 1 when none
# could be: a mirror drops a superseded version's files before the index
# that lists it expires (404), so the newest listed may not be there yet or
# the next may be gone already.
fetch_first() {
	local dir=$1 series=$2 fetch=$3 v
	shift 3
	for v in "$@"; do
		case $v in "$series".*) ;; *) continue ;; esac
		ld_say "fetching linux $v source package into $dir ..."
		if "$fetch" "$dir" "$v"; then
			printf '%s\n' "$v"
			return 0
		fi
		ld_say "linux $v could not be fetched; trying the next version listed"
		rm -f "$dir/linux_${v%-*}.orig.tar.xz" "$dir/linux_$v".*
	done
	return 1
}

# fetch_linux DIR SUITE VERSION: DIR/linux_VERSION.*.orig.tar.xz, from the
# newest version the suite lists whose files are served (fetch_first).
fetch_linux() {
	local dir=$1 suite=$2 version=$3 added=0
	if ! has_deb_src "$suite"; then
		add_deb_src "$suite"
		added=1
	fi
	[ "$added" = 0 ] || as_root apt-get update >&2
	# shellcheck disable=SC2046 # one version a word
	fetch_first "$dir" "$version" apt_fetch_source $(source_versions "$suite") >/dev/null &&
		compgen -G "$dir/linux_$version.*.orig.tar.xz" >/dev/null ||
		ld_die "no version of linux/$suite gave a linux_$version.*.orig.tar.xz (apt-cache madison linux)"
}

# linux_prepare [gz] [tree]: sets LD_DIR, XZ[i], TAR[i], GZ[i], TREE[i] (the
# extracted tree's top directory) for each version i, making what is missing.
linux_prepare() {
	local want_gz=0 want_tree=0 a i
	for a in "$@"; do
		case $a in
		gz) want_gz=1 ;;
		tree) want_tree=1 ;;
		esac
	done
	LD_DIR=$(linux_data_dir)
	mkdir -p "$LD_DIR"
	need_tools xz-utils:xz gzip:gzip libarchive-tools:bsdtar
	for i in "${!LINUX_VERSIONS[@]}"; do
		local v=${LINUX_VERSIONS[$i]} xz
		xz=$(compgen -G "$LD_DIR/linux_$v.*.orig.tar.xz" | sort -V | tail -1 || true)
		if [ -z "$xz" ]; then
			fetch_linux "$LD_DIR" "${LINUX_SUITES[$i]}" "$v"
			xz=$(compgen -G "$LD_DIR/linux_$v.*.orig.tar.xz" | sort -V | tail -1)
		fi
		XZ[i]=$xz
		TAR[i]=$LD_DIR/linux-$v.tar
		if [ ! -s "${TAR[i]}" ]; then
			ld_say "making ${TAR[i]} (xz -dc)"
			xz -dc "$xz" >"${TAR[i]}.tmp" && mv "${TAR[i]}.tmp" "${TAR[i]}"
		fi
		GZ[i]=$LD_DIR/linux-$v.tar.gz
		if [ "$want_gz" = 1 ] && [ ! -s "${GZ[i]}" ]; then
			ld_say "making ${GZ[i]} (gzip -6)"
			gzip -6 -c "${TAR[i]}" >"${GZ[i]}.tmp" && mv "${GZ[i]}.tmp" "${GZ[i]}"
		fi
		local tree_dir=$LD_DIR/tree${v//./} top
		top=$(tar -tf "${TAR[i]}" | head -1 || true)
		top=${top%%/*}
		TREE[i]=$tree_dir/$top
		# (unpack.done: trees extracted before this script existed)
		if [ "$want_tree" = 1 ] && [ ! -e "$tree_dir/.done" ] &&
			! { [ -e "$LD_DIR/unpack.done" ] && [ -d "${TREE[i]}" ]; }; then
			ld_say "extracting ${TAR[i]} into $tree_dir"
			rm -rf "$tree_dir"
			mkdir -p "$tree_dir"
			bsdtar -xf "${TAR[i]}" -C "$tree_dir"
			: >"$tree_dir/.done"
		fi
	done
}
