/* import_messages.c: what an import tells its caller: the failure message
 * kept on the handle (import_fail), warnings about single entries
 * (import_warn) and progress (import_progress). Every line names the
 * archive and, inside an entry, the entry's path, cut when it is very long.
 * libarchive's own messages are read here too (import_reason): never NULL,
 * and told apart when they say the archive's bytes are wrong.
 */
#include "import_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* libarchive's messages may end in a newline. */
static void trim(char *msg)
{
	size_t len = strlen(msg);

	while (len > 0 && (msg[len - 1] == '\n' || msg[len - 1] == ' '))
		msg[--len] = '\0';
}

/* "LABEL: PATH: msg", "LABEL: msg" between entries. A path too long to
 * read (the limits tests use 64 KiB names) is cut, so the message after it
 * still fits in the line. */
#define MSG_PATH_MAX 240

static void format_line(const struct cairn_import *imp, char *out, size_t size, const char *msg)
{
	size_t len = imp->entry_path ? strlen(imp->entry_path) : 0;

	if (!imp->entry_path)
		cairn_format(out, size, "%s: %s", imp->label, msg);
	else if (len <= MSG_PATH_MAX)
		cairn_format(out, size, "%s: %s: %s", imp->label, imp->entry_path, msg);
	else
		cairn_format(out, size, "%s: %.*s... (a path of %zu bytes): %s", imp->label,
			     MSG_PATH_MAX, imp->entry_path, len, msg);
}

int import_fail(struct cairn_import *imp, int r, const char *fmt, ...)
{
	char msg[700];
	va_list ap;

	if (imp->stopped)
		return r; /* the read callback's message says why libarchive failed */
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	trim(msg);
	format_line(imp, imp->error, sizeof(imp->error), msg);
	return r;
}

int import_fail_between(struct cairn_import *imp, int r, const char *what)
{
	const char *path = imp->entry_path;

	imp->entry_path = NULL;
	if (imp->last_entry[0])
		import_fail(imp, r, "after %llu entries (the last: %s): %s",
			    (unsigned long long)imp->entries, imp->last_entry,
			    what ? what : "damaged");
	else
		import_fail(imp, r, "after %llu entries: %s", (unsigned long long)imp->entries,
			    what ? what : "damaged");
	imp->entry_path = path;
	return r;
}

void import_warn(struct cairn_import *imp, const char *fmt, ...)
{
	char msg[700], line[1024];
	va_list ap;

	if (!imp->warn_fn)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	trim(msg);
	format_line(imp, line, sizeof(line), msg);
	imp->warn_fn(imp->warn_data, line);
}

void import_progress(struct cairn_import *imp)
{
	struct cairn_writer_stats stats;

	if (!imp->progress_fn)
		return;
	cairn_writer_stats(imp->writer, &stats);
	struct cairn_import_progress p = {
		.archive_bytes = imp->raw_read,
		.archive_size = imp->input_size,
		.entries = imp->entries,
		.content_bytes = stats.bytes_in - imp->base_stats.bytes_in,
		.new_bytes = stats.bytes_new - imp->base_stats.bytes_new,
		.stored_bytes = stats.bytes_stored - imp->base_stats.bytes_stored,
	};
	imp->progress_fn(imp->progress_data, &p);
}

const char *import_la_error(struct archive *a, const char *fallback)
{
	const char *msg = archive_error_string(a);
	int e = archive_errno(a);

	if (msg && *msg)
		return msg;
	/* libarchive's "bad format" errno is EILSEQ here (its private
	 * ARCHIVE_ERRNO_FILE_FORMAT): that text would mislead. */
	if (e > 0 && e != EILSEQ)
		return strerror(e);
	return fallback;
}

/* A reader that runs out of input (cpio's, 7z's) may fail with no message
 * at all: where the last read found the input's end, that is the cause. */
const char *import_reason(const struct cairn_import *imp, struct archive *a)
{
	return import_la_error(a, imp->at_end ? "truncated archive"
					      : "truncated or damaged archive (libarchive gives no "
						"reason)");
}

/* libarchive warns, rather than fails, on a zip entry whose central
 * directory and local header disagree (CRC, sizes), on a zip header cut
 * short or missing, and on an lha header's checksum. Its other header
 * warnings are about metadata (a name it cannot convert, a pax attribute
 * it ignores) and stay warnings. */
bool import_warning_is_damage(const char *msg)
{
	static const char *const damage[] = {
		"crc",        "checksum",  "sum error", "inconsistent",
		"wrong size", "truncated", "damaged",
	};

	for (size_t i = 0; msg && i < ARRAY_SIZE(damage); i++)
		if (strcasestr(msg, damage[i]))
			return true;
	return false;
}
