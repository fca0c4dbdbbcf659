/* index_internal.h: what the files of index/ share: the snapshot file's
 * on-disk structs (pinned to docs/FORMAT.md, "Snapshot index", with
 * _Static_assert), the reader handle's innards, the in-memory tree that
 * `cairn add` builds, and small helpers. Nothing outside index/ includes
 * this, except its unit tests and the fuzz target, which define
 * CAIRN_BUILDING_INDEX as index/ itself is compiled with.
 */
#ifndef CAIRN_BUILDING_INDEX
#error "index_internal.h is internal to index/; use index.h"
#endif
#ifndef CAIRN_INDEX_INTERNAL_H
#define CAIRN_INDEX_INTERNAL_H

#include "index.h"
#include "path.h"
#include "util.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- where snapshots live ---- */

/* STORE/snapshots/NAME: one file per snapshot (docs/FORMAT.md). */
#define SNAPSHOTS_DIR "snapshots"
/* The prefix of the temp files a snapshot is written through; no snapshot
 * name may start with it. */
#define SNAPSHOT_TMP_PREFIX "tmp-"

/* Opens STORE/snapshots, never through a symbolic link (names.c). Returns
 * the directory fd or -errno (-ENOENT: none yet; -ELOOP, -ENOTDIR: not a
 * real directory, see cairn_path_strerror). */
int snapshots_dir_open(const struct cairn_store *store);

/* ---- on-disk format (little-endian; meson refuses big-endian hosts) ---- */

#define SNAP_MAGIC   "CAIRNSN1"
#define SNAP_VERSION 1u

enum snap_section_type {
	SECTION_SOURCE = 1,
	SECTION_INODES = 2,
	SECTION_DIRENTS = 3,
	SECTION_STRINGS = 4,
	SECTION_CHUNKS = 5,
	SECTION_XATTRS = 6,
	SECTION_PAGES = 7,
};
/* The sections every version has; version 3 adds PAGES after them. */
#define SNAP_SECTION_COUNT 6
#define SNAP_SECTIONS_MAX  7

struct snap_header {
	char magic[8];          /* "CAIRNSN1" */
	uint32_t version;       /* 1 */
	uint32_t header_size;   /* 128 */
	uint32_t section_count; /* 6; the section table follows the header */
	uint32_t flags;         /* SNAP_FLAG_* */
	uint64_t file_size;     /* of the whole file */
	uint64_t inode_count;   /* inode numbers are 1..inode_count; 1 is the root */
	uint64_t dirent_count;
	uint64_t entry_count; /* archive entries read */
	uint64_t file_count;  /* regular-file inodes */
	uint64_t file_bytes;  /* sum of their sizes */
	int64_t created_sec;  /* when the snapshot was written (Unix time) */
	uint64_t skipped;     /* archive entries skipped with a warning */
	/* version 2: the DIRENTS range of the links to NAME.versions
	 * directories (versions.c); version 1: zero */
	uint64_t versions_start;
	uint64_t versions_count;
	uint8_t reserved[16];
	uint64_t checksum; /* of bytes [0, 120) and then the section table */
};
_Static_assert(sizeof(struct snap_header) == 128, "snapshot header is 128 bytes");
_Static_assert(offsetof(struct snap_header, inode_count) == 32, "snapshot header layout");
_Static_assert(offsetof(struct snap_header, checksum) == 120, "snapshot header layout");
_Static_assert(offsetof(struct snap_header, versions_start) == 88, "snapshot header layout");
/* Written only when the snapshot keeps earlier versions of entries: version
 * 1 readers refuse it as unsupported. */
#define SNAP_VERSION_VERSIONS 2u
/* Version 3 (written from now on): the layout of version 2 (the versions
 * fields may be zero) and a PAGES section last, the SUM of each
 * SNAP_PAGE_SIZE bytes of the file from the end of the section table to
 * PAGES' offset, so readers check a page when they first touch it instead
 * of the whole file at open. Versions 1 and 2 are checked whole at open. */
#define SNAP_VERSION_PAGES 3u
#define SNAP_PAGE_SIZE     65536u
/* Only a snapshot of more than this many bytes after its section table is
 * written as version 3: a smaller one is checked whole at open in well
 * under a millisecond, and stays readable by cairns from before version 3. */
#define SNAP_PAGES_MIN (4 * (uint64_t)SNAP_PAGE_SIZE)
/* header flags: the archive was damaged (cairn add --partial); the snapshot
 * holds the entries read before the damage was found */
#define SNAP_FLAG_PARTIAL 1u

struct snap_section {
	uint32_t type;        /* enum snap_section_type */
	uint32_t record_size; /* of the section's records, 0 for byte pools */
	uint64_t offset;      /* from the start of the file, a multiple of 8 */
	uint64_t size;        /* bytes */
	uint64_t checksum;    /* of the section's bytes */
};
_Static_assert(sizeof(struct snap_section) == 32, "section table entry is 32 bytes");

#define SNAP_FORMAT_SIZE 56

/* SOURCE: this struct, then name_len bytes of the archive's name and a NUL. */
struct snap_source {
	uint8_t archive_id[CAIRN_ID_SIZE]; /* file id of the archive's raw bytes */
	uint64_t size;                     /* raw bytes read */
	int64_t mtime_sec;                 /* 0 when unknown (a pipe) */
	uint32_t mtime_nsec;
	uint32_t name_len;
	char format[SNAP_FORMAT_SIZE]; /* NUL-terminated, e.g. "tar+gzip" */
};
_Static_assert(sizeof(struct snap_source) == 96, "source record is 96 bytes");
_Static_assert(offsetof(struct snap_source, format) == 40, "source record layout");

struct snap_inode {
	uint32_t mode; /* st_mode: file type and permission bits */
	uint32_t nlink;
	uint32_t uid;
	uint32_t gid;
	int64_t mtime_sec;
	uint32_t mtime_nsec;
	uint32_t parent; /* directories: the containing directory (root: 1); else 0 */
	uint64_t size;   /* regular: bytes; symlink: target length; else 0 */
	uint64_t data;   /* regular: CHUNKS offset of its chunk list; directory:
			  * index of its first dirent; symlink: STRINGS offset
			  * of the target; devices: major << 32 | minor */
	uint32_t count;  /* directories: number of dirents; else 0 */
	uint32_t owner;  /* STRINGS offset of "user\0group\0", 0: none */
	uint32_t xattrs; /* XATTRS offset of its xattr list, 0: none */
	uint32_t flags;  /* SNAP_INODE_*; readers ignore bits they do not know */
};
_Static_assert(sizeof(struct snap_inode) == 64, "inode record is 64 bytes");
/* The root only: the archive had an entry for it ("./"), so its metadata
 * is the archive's, not the defaults of an implied directory. */
#define SNAP_INODE_LISTED 1u
_Static_assert(offsetof(struct snap_inode, size) == 32, "inode layout");
_Static_assert(offsetof(struct snap_inode, count) == 48, "inode layout");

struct snap_dirent {
	uint32_t inode;
	uint32_t name;     /* STRINGS offset; name[name_len] is NUL */
	uint16_t name_len; /* 1..255 */
	uint8_t type;      /* DT_* of the inode */
	uint8_t reserved;
};
_Static_assert(sizeof(struct snap_dirent) == 12, "dirent is 12 bytes");

#define CHUNK_LIST_SPARSE 1u /* some runs are holes */

struct snap_chunk_list {
	uint8_t file_id[CAIRN_ID_SIZE];
	uint64_t size; /* equals the inode's size */
	uint32_t run_count;
	uint32_t flags; /* CHUNK_LIST_* */
};
_Static_assert(sizeof(struct snap_chunk_list) == 32, "chunk list header is 32 bytes");

struct snap_run {
	uint8_t chunk_id[CAIRN_ID_SIZE]; /* all zero: a hole */
	uint64_t end;                    /* file offset where the run ends */
};
_Static_assert(sizeof(struct snap_run) == 24, "chunk run is 24 bytes");

struct snap_xattr_list {
	uint32_t count;
	uint32_t size; /* of the whole list, this header included */
};
_Static_assert(sizeof(struct snap_xattr_list) == 8, "xattr list header is 8 bytes");

struct snap_xattr {
	uint32_t name;  /* offset from the list's start; name[name_len] is NUL */
	uint32_t value; /* offset from the list's start */
	uint32_t value_len;
	uint16_t name_len;
	uint16_t reserved;
};
_Static_assert(sizeof(struct snap_xattr) == 16, "xattr record is 16 bytes");

/* Byte offset 0 of STRINGS and XATTRS means "none": both pools start with
 * this many zero bytes. */
#define POOL_RESERVED 8u

/* ---- checksums ---- */

/* The first 8 bytes of the store's file id of data, as a little-endian u64. */
uint64_t index_checksum(const struct cairn_store *store, const void *data, size_t size);

/* The name of a section type ("inodes"), for messages. */
const char *index_section_name(uint32_t type);
/* Whether section i (0-based, in table order) matches its checksum. The
 * one place a section is judged: a later MAC replaces this function. */
bool index_section_intact(const struct cairn_index *idx, uint32_t i);
/* Checks every section (authenticate.c). Returns 0, or the type of the
 * first damaged one. */
uint32_t index_authenticate(const struct cairn_index *idx);
/* Whether page k of a version 3 snapshot matches its sum in PAGES. */
bool index_page_intact(const struct cairn_index *idx, uint64_t k);
/* Whether len bytes at p (inside the checked pages of a version 3
 * snapshot) may be used: each page they touch is checked against its sum
 * the first time (authenticate.c). false after recording a message. Always
 * true for earlier versions (checked whole at open) and unchecked opens. */
bool index_touch(const struct cairn_index *idx, const void *p, uint64_t len);
/* Checks every section and page now, for readers that go on to use the
 * whole file (copy, rekey, live sets). 0, or -EBADMSG after recording a
 * message. */
int index_touch_all(struct cairn_index *idx);

/* ---- a snapshot for another store (rekey.c) ---- */

/* What chunk src (of size bytes, named by a run of inode ino) is called in
 * the other store: writes it to *ret and returns 0, or -errno, which ends
 * the rewrite. Called once per run naming a chunk, in inode order. */
typedef int (*index_id_map_fn)(void *userdata, uint64_t ino, const struct cairn_id *src,
			       uint64_t size, struct cairn_id *ret);
/* A copy of src's snapshot file (opened and checked) for store dst: each
 * run's chunk id as map says, each chunk list's file id made from its new
 * runs, every section's checksum and the header's under dst's key; all
 * else as in src. Same key and an unchanged map: the same bytes. Returns 0
 * with the malloc'd bytes in *ret_data and their size in *ret_size, or
 * -errno (map's, or -EBADMSG from src's accessors: message on src). */
int index_rekey(struct cairn_index *src, const struct cairn_store *dst, index_id_map_fn map,
		void *userdata, uint8_t **ret_data, size_t *ret_size);

/* ---- the reader handle ---- */

struct cairn_index {
	const struct cairn_store *store; /* borrowed; NULL only in tests and fuzzing */
	char *name;
	void *map; /* owned mapping, or NULL for borrowed memory */
	size_t map_size;
	const uint8_t *base;
	uint64_t size;
	const struct snap_header *header;
	const struct snap_section *sections; /* section_count, in type order */
	uint32_t section_count;              /* 6, or 7 with PAGES (version 3) */
	const struct snap_source *source;
	const char *source_name;
	const struct snap_inode *inodes;
	uint64_t inode_count;
	const struct snap_dirent *dirents;
	uint64_t dirent_count;
	const uint8_t *strings;
	uint64_t strings_size;
	const uint8_t *chunks;
	uint64_t chunks_size;
	const uint8_t *xattrs;
	uint64_t xattrs_size;

	uint64_t versions_start, versions_count; /* links to NAME.versions, in DIRENTS */
	bool show_versions;                      /* cairn_index_show_versions */

	/* Version 3, checked opens: the pages' sums (PAGES, checked at open)
	 * and whether each page has been checked; NULL when all was checked
	 * at open (or nothing is checked). Pages are SNAP_PAGE_SIZE bytes from
	 * pages_start; the last may be shorter, ending at pages_end. */
	const uint8_t *page_sums;
	_Atomic uint8_t *page_ok;
	uint64_t page_count, pages_start, pages_end;

	pthread_mutex_t error_lock; /* protects error while failed is false */
	atomic_bool failed;         /* set once error holds a corruption message */
	char error[512];
};

/* Flags for index_open_memory. */
#define INDEX_OPEN_NO_CHECKSUMS 1u /* tests and fuzzing: skip checksums */
/* 2 is CAIRN_INDEX_OPEN_UNCHECKED (index.h): the sections are not checked */

/* Binds idx to size bytes at data (borrowed: they must outlive idx), with
 * store for checksums (may be NULL with INDEX_OPEN_NO_CHECKSUMS). Runs the
 * same checks as cairn_index_open. */
int index_open_memory(struct cairn_index *idx, const struct cairn_store *store, const void *data,
		      size_t size, const char *label, unsigned flags);

/* Records a message (the first one sticks) and returns -EBADMSG. */
int index_corrupt(struct cairn_index *idx, const char *fmt, ...) _printf_(2, 3);
/* The inode record of ino, or NULL after recording a message. */
const struct snap_inode *index_inode(struct cairn_index *idx, uint64_t ino);
/* A NUL-terminated string of len bytes at STRINGS offset, or NULL. */
const char *index_string(const struct cairn_index *idx, uint64_t offset, uint64_t len);
/* The chunk list of a regular file inode after checking its header. */
int index_chunk_list(struct cairn_index *idx, uint64_t ino, const struct snap_inode *inode,
		     const struct snap_chunk_list **ret);
/* The xattr list of an inode, or NULL in *ret when it has none. */
int index_xattr_list(struct cairn_index *idx, uint64_t ino, const struct snap_inode *inode,
		     const struct snap_xattr_list **ret);
/* DT_* of a mode, or DT_UNKNOWN for an invalid one. */
unsigned index_mode_to_dtype(uint32_t mode);
/* Whether mode's file type is one a snapshot may hold. */
bool index_mode_valid(uint32_t mode);

/* ---- the tree that `cairn add` builds (tree.c) ---- */

struct tree_inode {
	uint32_t mode;
	uint32_t nlink; /* counted when the snapshot is written */
	uint32_t uid;
	uint32_t gid;
	int64_t mtime_sec;
	uint32_t mtime_nsec;
	uint32_t owner;    /* STRINGS offset or 0 */
	uint32_t xattrs;   /* XATTRS offset or 0 */
	uint32_t children; /* directories: child names ever added */
	uint64_t size;
	uint64_t data;   /* as in snap_inode; directories get theirs at write time */
	uint32_t number; /* the inode number, 0 until written */
	uint32_t parent; /* directories: parent inode number, at write time */
};

struct tree_node {
	uint32_t parent; /* node index; the root's is itself (0) */
	uint32_t inode;  /* tree_inode index */
	uint32_t name;   /* STRINGS offset */
	uint16_t name_len;
	uint16_t reserved;
};

/* A growable byte buffer. */
struct buf {
	uint8_t *data;
	size_t size, cap;
};
int buf_reserve(struct buf *b, size_t more);
int buf_append(struct buf *b, const void *data, size_t size);
/* Pads with zeros to a multiple of align. */
int buf_align(struct buf *b, size_t align);
void buf_release(struct buf *b);

/* Interns byte strings in a pool, so equal ones are stored once. Entries
 * are (hash, offset, len); equality is confirmed by comparing bytes. A slot
 * keeps the hash's low half and a 32-bit length: 16 bytes, not 24, for the
 * two indexes that live through a whole add (a longer entry is simply not
 * interned). */
struct intern {
	struct intern_slot {
		uint32_t hash;
		uint32_t len;
		uint64_t offset; /* UINT64_MAX: empty */
	} * slots;
	size_t cap, count;
};
void intern_release(struct intern *in);
/* Finds len bytes of data in pool via in. Returns 1 and *ret_offset, or 0. */
int intern_find(const struct intern *in, const struct buf *pool, uint64_t hash, const void *data,
		size_t len, uint64_t *ret_offset);
int intern_add(struct intern *in, uint64_t hash, uint64_t offset, uint64_t len);
uint64_t intern_hash(const void *data, size_t len);

struct tree {
	struct tree_node *nodes;
	size_t node_count, node_cap;
	struct tree_inode *inodes;
	size_t inode_count, inode_cap;
	uint32_t *map; /* (parent, name) -> node index + 1; 0: empty */
	size_t map_cap;
	struct buf strings;
	struct intern string_index;
	struct buf chunks;
	struct intern chunk_index;
	struct buf xattrs;
	struct intern xattr_index;
	/* what a later entry replaced, in archive order (versions.c) */
	struct tree_version {
		uint32_t node, inode;
		size_t seq; /* archive order */
	} * versions;
	size_t version_count, version_cap;
	/* at write time: the NAME.versions directory nodes, and what holds them */
	struct tree_vdir {
		uint32_t node, holder;
	} * vdirs;
	size_t vdir_count;
	uint64_t hidden_dirents; /* the versions' dirents and links */
	int64_t implied_mtime;   /* of directories only implied by paths */
	bool root_listed;        /* the archive had an entry for the root */
};

int tree_init(struct tree *tree, int64_t implied_mtime);
void tree_release(struct tree *tree);

/* Stores len bytes plus a NUL in STRINGS once. Returns 0 and the offset. */
int tree_intern_string(struct tree *tree, const void *data, size_t len, uint32_t *ret);
/* Adds a new inode (copied from proto). Returns its index or -errno. */
int64_t tree_add_inode(struct tree *tree, const struct tree_inode *proto);
/* Adds the name (parent, name) for inode; the name must not be there yet
 * (tree_lookup). Returns the new node's index or -errno. */
int64_t tree_add_node(struct tree *tree, uint32_t parent, const char *name, size_t len,
		      uint32_t inode);
/* The node named name in directory node parent, or -1. */
int64_t tree_lookup(const struct tree *tree, uint32_t parent, const char *name, size_t len);

/* A path cut into components by path_split. */
#define PATH_DEPTH_MAX 1024u
struct path_parts {
	char *copy; /* owned; components point into it */
	const char *name[PATH_DEPTH_MAX];
	uint16_t len[PATH_DEPTH_MAX];
	size_t count;
};
enum path_result {
	PATH_OK = 0,
	PATH_DOTDOT = 1,   /* a ".." component: the entry is skipped */
	PATH_TOO_DEEP = 2, /* more than PATH_DEPTH_MAX components */
	PATH_NAME_TOO_LONG = 3,
};
/* Normalises path (leading "/" and "./", "." and empty components dropped)
 * into parts. Returns enum path_result or -ENOMEM. No components: the root. */
int path_split(const char *path, struct path_parts *parts);
void path_parts_release(struct path_parts *parts);

/* Why tree_place refused an entry (for the warning). */
enum place_result {
	PLACE_OK = 0,
	PLACE_THROUGH_SYMLINK = 1, /* a parent component is a symlink */
	PLACE_NONEMPTY_DIR = 2,    /* it would replace a non-empty directory */
	PLACE_NOT_DIR = 3,         /* a parent component is not a directory */
};
/* Finds the directory node that will hold the last component of parts,
 * creating implied parent directories (0755) as tar -x does. Like bsdtar
 * -x, it refuses (and the entry is skipped) when a parent is a symlink or
 * another non-directory. Returns enum place_result and the node index in
 * *ret_parent (for PLACE_OK), or -errno. */
int tree_place_parent(struct tree *tree, const struct path_parts *parts, uint32_t *ret_parent);
/* Checks whether an entry of mode may replace what is at (parent, name).
 * Returns PLACE_OK or PLACE_NONEMPTY_DIR. */
int tree_check_replace(const struct tree *tree, uint32_t parent, const char *name, size_t len,
		       uint32_t mode);
/* Puts inode at (parent, name) as tar -x would: a directory over an existing
 * directory only updates its attributes (and returns the kept inode's
 * index); anything else replaces what was there. Returns the inode index in
 * use, or -errno. */
int64_t tree_put(struct tree *tree, uint32_t parent, const char *name, size_t len, uint32_t inode);
/* The node for parts without creating anything, or -1. */
int64_t tree_find(const struct tree *tree, const struct path_parts *parts);

/* ---- earlier versions of entries (versions.c) ---- */

/* The parent of the NAME.versions directory nodes before they are numbered:
 * above every node index, so they sort after every other node. */
#define TREE_VDIR_PARENT UINT32_MAX
/* Remembers that inode was at node before a later entry replaced it.
 * Returns 0 or -ENOMEM. */
int tree_version_add(struct tree *tree, uint32_t node, uint32_t inode);
/* Before the layout: a NAME.versions directory node per name with earlier
 * versions (parent TREE_VDIR_PARENT), holding them as "1".."N-1" in archive
 * order. Returns 0 or -errno. */
int versions_materialize(struct tree *tree);
/* Sorts tree->vdirs by (the holder's inode number, name): the order their
 * inode numbers and links follow. */
void versions_sort(struct tree *tree);
/* The dirent that links NAME.versions directory i into its holder. */
void versions_link(const struct tree *tree, size_t i, struct snap_dirent *ret);
/* Reader side, for read.c: the i-th NAME.versions link of directory dir
 * (1 and *ret), 0 past the last; and the lookup of NAME.versions in dir. */
int versions_readdir(struct cairn_index *idx, uint64_t dir, uint64_t i,
		     struct cairn_index_dirent *ret);
int versions_lookup(struct cairn_index *idx, uint64_t dir, const char *name, size_t len,
		    uint64_t *ret_ino);
/* The inode number of the first NAME.versions directory: every inode below
 * it is the tree's. UINT64_MAX without versions. */
uint64_t versions_first_inode(const struct cairn_index *idx);
/* For check.c: counts, in refs, the links that name each NAME.versions
 * directory. Returns 0 or -EBADMSG for a damaged link. */
int versions_check_links(struct cairn_index *idx, uint32_t *refs);

/* Writes the snapshot file for tree to fd (positioned at 0). Returns 0 or
 * -errno with a message in msg. */
struct write_totals {
	uint64_t entry_count;
	uint64_t skipped;
	bool partial;
	const struct snap_source *source;
	const char *source_name;
};
int tree_write(struct tree *tree, const struct cairn_store *store, int fd,
	       const struct write_totals *totals, char *msg, size_t msg_size);

#endif
