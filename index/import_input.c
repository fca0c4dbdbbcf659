/* import_input.c: how an import reads its input, apart from the entry loop:
 * the passphrases of encrypted entries (given, or asked for once through
 * the caller's callback), the charset of names the archive does not mark,
 * --strip-components, and a bare compressed file (foo.sql.gz: no archive
 * inside), which libarchive's raw format reads as one entry that is named
 * here after the file. The raw format is enabled only behind the decoder
 * (import_decode.c), so a plain file that is no archive stays an error, and
 * the decoder's checks of gzip's and lz4's checksums still apply. A split
 * archive (archive.tar.001, .002, ...) is read across its parts as one
 * file: the import's reads, seeks and preads come here.
 */
#include "import_internal.h"

#include <string.h>
#include <sys/stat.h>

void import_input_options(struct cairn_import *imp, const struct cairn_import_options *options)
{
	if (!options)
		return;
	imp->strip_components = options->strip_components;
	imp->charset = options->charset;
	imp->passphrases = options->passphrases;
	imp->passphrase_count = options->passphrase_count;
}

void cairn_import_set_passphrase(struct cairn_import *imp, cairn_import_passphrase_fn fn,
				 void *userdata)
{
	imp->passphrase_fn = fn;
	imp->passphrase_data = userdata;
}

bool cairn_import_encrypted_data_failed(const struct cairn_import *imp)
{
	return imp->encrypted_data_failed;
}

/* libarchive asks again each time the passphrases it has fail: the caller
 * is asked once, and then the answer is no, which fails the entry. */
static const char *on_passphrase(struct archive *a, void *userdata)
{
	struct cairn_import *imp = userdata;

	(void)a;
	if (!imp->passphrase_fn || imp->passphrase_asked)
		return NULL;
	imp->passphrase_asked = true;
	return imp->passphrase_fn(imp->passphrase_data, imp->label, imp->entry_path);
}

/* A charset's name goes into libarchive's option string: no ',' or '='. */
static bool charset_name_ok(const char *name)
{
	if (!*name || strlen(name) > 64)
		return false;
	for (const char *p = name; *p; p++)
		if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
		      (*p >= '0' && *p <= '9') || strchr("-_.:", *p)))
			return false;
	return true;
}

static int set_charset(struct cairn_import *imp, struct archive *a)
{
	char option[100];

	if (!charset_name_ok(imp->charset))
		return import_fail(imp, -EINVAL, "invalid charset name");
	cairn_format(option, sizeof(option), "hdrcharset=%s", imp->charset);
	if (archive_read_set_options(a, option) < ARCHIVE_WARN)
		return import_fail(imp, -EINVAL, "charset %s: %s", imp->charset,
				   import_la_error(a, "not known to iconv"));
	return 0;
}

int import_input_setup(struct cairn_import *imp, struct archive *a)
{
	for (size_t i = 0; i < imp->passphrase_count; i++)
		if (archive_read_add_passphrase(a, imp->passphrases[i]) != ARCHIVE_OK)
			return import_fail(imp, -ENOMEM, "out of memory");
	archive_read_set_passphrase_callback(a, imp, on_passphrase);
	if (imp->charset && set_charset(imp, a) < 0)
		return -EINVAL;
	/* Bids only when no other format does, and only on a stream the
	 * decoder takes apart (import_input_entry checks it took a layer off).
	 * Not inside an archive (add -r): a compressed file there is a file,
	 * not an archive to expand. */
	if (imp->pipe && !imp->outer)
		archive_read_support_format_raw(a);
	return 0;
}

/* ---- a bare compressed file ---- */

/* Compression suffixes and what they leave: "tgz" leaves "tar". */
static const struct {
	const char *suffix, *rest;
} compressed_suffixes[] = {
	{".gz", ""},      {".gzip", ""},     {".bz2", ""},     {".bz", ""},       {".xz", ""},
	{".lzma", ""},    {".zst", ""},      {".zstd", ""},    {".lz4", ""},      {".lz", ""},
	{".Z", ""},       {".z", ""},        {".tgz", ".tar"}, {".tbz2", ".tar"}, {".tbz", ".tar"},
	{".txz", ".tar"}, {".tzst", ".tar"}, {".tlz", ".tar"}, {".taz", ".tar"},
};

/* The file's name without its compression suffix, as gunzip names it (the
 * name and mtime gzip's header may hold are not used, as gunzip without
 * -N). */
static void raw_name(const char *source, char *out, size_t size)
{
	size_t len = strlen(source);

	for (size_t i = 0; i < ARRAY_SIZE(compressed_suffixes); i++) {
		size_t slen = strlen(compressed_suffixes[i].suffix);
		if (len > slen && strcmp(source + len - slen, compressed_suffixes[i].suffix) == 0) {
			cairn_format(out, size, "%.*s%s", (int)(len - slen), source,
				     compressed_suffixes[i].rest);
			return;
		}
	}
	cairn_format(out, size, "%s", *source ? source : "data");
}

static bool ends_with(const char *s, const char *suffix)
{
	size_t len = strlen(s), slen = strlen(suffix);

	return len >= slen && strcmp(s + len - slen, suffix) == 0;
}

/* Whether the decoder (or a's own filter) took a compression layer off. */
static bool stream_was_decoded(const struct cairn_import *imp, struct archive *a)
{
	char filters[SNAP_FORMAT_SIZE] = "";

	import_pipe_record_filters(imp, filters);
	return filters[0] || archive_filter_count(a) > 1;
}

static int raw_entry(struct cairn_import *imp, struct archive *a, struct archive_entry *entry)
{
	char name[256];

	imp->entry_path = NULL; /* its name, "data", is libarchive's */
	/* A file that only starts like a compressed stream ("BZh..."). */
	if (!stream_was_decoded(imp, a))
		return import_fail(imp, -EBADMSG, "not an archive (Unrecognized archive format)");
	raw_name(imp->source_name, name, sizeof(name));
	/* foo.tar.gz whose tar libarchive does not take is a damaged tar,
	 * not a file to keep. */
	if (ends_with(name, ".tar"))
		return import_fail(imp, -EBADMSG,
				   "not a tar archive inside its compression (damaged?)");
	archive_entry_copy_pathname(entry, name);
	archive_entry_set_filetype(entry, AE_IFREG);
	archive_entry_set_perm(entry, 0644);
	/* The compressed file's mtime (a stream's: the add's time). */
	archive_entry_unset_mtime(entry);
	imp->entry_path = archive_entry_pathname(entry);
	cairn_format(imp->last_entry, sizeof(imp->last_entry), "%s", name);
	return 0;
}

/* ---- --strip-components ---- */

/* tar's rule (bsdtar's strip_components): each '/' ends a component, "."
 * counts as one; slashes after the last one are dropped; NULL when nothing
 * is left. */
static const char *strip_path(const char *p, unsigned count)
{
	while (count > 0) {
		char c = *p++;
		if (c == '/')
			count--;
		else if (c == '\0')
			return NULL;
	}
	while (*p == '/')
		p++;
	return *p ? p : NULL;
}

static int strip_entry(struct cairn_import *imp, struct archive_entry *entry)
{
	const char *path = archive_entry_pathname(entry);
	if (!path)
		path = archive_entry_pathname_utf8(entry);
	if (!path)
		return 0; /* import_entry says it has no name */
	const char *stripped = strip_path(path, imp->strip_components);
	if (!stripped)
		return 1;
	_cleanup_free_ char *copy = strdup(stripped);
	if (!copy)
		return import_fail(imp, -ENOMEM, "out of memory");
	const char *link = archive_entry_hardlink(entry);
	_cleanup_free_ char *link_copy = NULL;
	if (link) {
		const char *link_stripped = strip_path(link, imp->strip_components);
		if (!link_stripped)
			return 1; /* tar skips a hard link whose target is stripped away */
		if (!(link_copy = strdup(link_stripped)))
			return import_fail(imp, -ENOMEM, "out of memory");
		archive_entry_copy_hardlink(entry, link_copy);
	}
	archive_entry_copy_pathname(entry, copy);
	imp->entry_path = archive_entry_pathname(entry);
	return 0;
}

int import_input_entry(struct cairn_import *imp, struct archive *a, struct archive_entry *entry)
{
	if (archive_format(a) == ARCHIVE_FORMAT_RAW)
		return raw_entry(imp, a, entry);
	if (imp->strip_components > 0)
		return strip_entry(imp, entry);
	return 0;
}

/* ---- a split archive's parts ---- */

struct import_part {
	int fd;
	uint64_t start, size; /* where it lies in the whole */
};

int cairn_import_set_parts(struct cairn_import *imp, const int *fds, size_t count)
{
	uint64_t start = 0;
	struct stat st;

	imp->split_parts = calloc(count, sizeof(*imp->split_parts));
	if (!imp->split_parts)
		return -ENOMEM;
	for (size_t i = 0; i < count; i++) {
		if (fstat(fds[i], &st) < 0 || !S_ISREG(st.st_mode))
			return import_fail(imp, -EINVAL, "part %zu is not a regular file", i + 1);
		imp->split_parts[i] = (struct import_part){fds[i], start, (uint64_t)st.st_size};
		start += (uint64_t)st.st_size;
	}
	imp->part_count = count;
	return 0;
}

uint64_t import_input_size(const struct cairn_import *imp)
{
	const struct import_part *last = &imp->split_parts[imp->part_count - 1];

	return last->start + last->size;
}

/* The part holding offset, or NULL past the end. */
static const struct import_part *part_at(const struct cairn_import *imp, uint64_t offset)
{
	for (size_t i = 0; i < imp->part_count; i++)
		if (offset < imp->split_parts[i].start + imp->split_parts[i].size)
			return &imp->split_parts[i];
	return NULL;
}

/* What one pread(2) of one part gives; 0 past the end. */
static ssize_t parts_pread_once(struct cairn_import *imp, void *buf, size_t size, uint64_t offset)
{
	const struct import_part *p = part_at(imp, offset);

	if (!p)
		return 0;
	uint64_t left = p->start + p->size - offset;
	ssize_t n =
		pread(p->fd, buf, size < left ? size : (size_t)left, (off_t)(offset - p->start));
	/* A part that shrank since it was measured: its end is not the next
	 * part's start. */
	if (n == 0) {
		errno = EIO;
		return -1;
	}
	return n;
}

ssize_t import_input_read(struct cairn_import *imp, void *buf, size_t size)
{
	if (!imp->split_parts)
		return read(imp->fd, buf, size);
	ssize_t n = parts_pread_once(imp, buf, size, imp->part_pos);
	if (n > 0)
		imp->part_pos += (uint64_t)n;
	return n;
}

off_t import_input_seek(struct cairn_import *imp, off_t offset, int whence)
{
	if (!imp->split_parts)
		return lseek(imp->fd, offset, whence);
	int64_t base = whence == SEEK_SET   ? 0
		       : whence == SEEK_CUR ? (int64_t)imp->part_pos
					    : (int64_t)import_input_size(imp);
	if (offset < -base) {
		errno = EINVAL;
		return -1;
	}
	imp->part_pos = (uint64_t)(base + offset);
	return (off_t)imp->part_pos;
}

ssize_t import_input_pread(struct cairn_import *imp, void *buf, size_t size, uint64_t offset)
{
	size_t done = 0;

	if (!imp->split_parts)
		return cairn_pread_full(imp->fd, buf, size, offset);
	while (done < size) {
		ssize_t n =
			parts_pread_once(imp, (uint8_t *)buf + done, size - done, offset + done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			break;
		done += (size_t)n;
	}
	return (ssize_t)done;
}

int cairn_archive_id_parts(const struct cairn_store *store, const int *fds, size_t count,
			   struct cairn_id *ret)
{
	struct cairn_file_hasher hasher;
	_cleanup_free_ uint8_t *buf = malloc(IMPORT_READ_SIZE);

	if (!buf)
		return -ENOMEM;
	cairn_file_hasher_init(&hasher, store);
	for (size_t i = 0; i < count; i++)
		for (uint64_t offset = 0;;) {
			ssize_t n = cairn_pread_full(fds[i], buf, IMPORT_READ_SIZE, offset);
			if (n < 0)
				return (int)n;
			if (n == 0)
				break;
			cairn_file_hasher_update(&hasher, buf, (size_t)n);
			offset += (uint64_t)n;
		}
	cairn_file_hasher_final(&hasher, ret);
	return 0;
}
