/* remote_url.c: naming a remote store and its objects (docs/FORMAT.md
 * "Remote stores"): s3://BUCKET[/PREFIX] parsed by the common rules for
 * bucket names (so that one url means one bucket on every engine) and a
 * prefix of plain names, and the key of each object a writer session makes,
 * every one holding the session's random id so that none is written twice.
 */
#include "remote.h"

#include "store_internal.h"

#include <errno.h>
#include <inttypes.h>
#include <string.h>

static bool bucket_ok(const char *b, size_t len)
{
	if (len < 3 || len > 63)
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = b[i];
		bool alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
		if (!alnum && c != '-' && c != '.')
			return false;
		if ((i == 0 || i == len - 1) && !alnum)
			return false;
		if (c == '.' && (b[i + 1] == '.' || b[i + 1] == '-' || b[i - 1] == '-'))
			return false;
	}
	return true;
}

/* A prefix: components of [A-Za-z0-9._-], none empty, "." or "..". */
static bool prefix_ok(const char *p)
{
	size_t comp = 0;

	if (strlen(p) > REMOTE_PREFIX_MAX)
		return false;
	for (const char *c = p;; c++) {
		if (*c == '/' || *c == '\0') {
			if (comp == 0 || (comp == 1 && c[-1] == '.') ||
			    (comp == 2 && c[-1] == '.' && c[-2] == '.'))
				return false;
			if (*c == '\0')
				return true;
			comp = 0;
			continue;
		}
		bool ok = (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
			  (*c >= '0' && *c <= '9') || *c == '.' || *c == '_' || *c == '-';
		if (!ok)
			return false;
		comp++;
	}
}

int remote_url_parse(const char *url, struct remote_url *ret, char *why, size_t why_size)
{
	struct remote_url u = {0};

	if (strncmp(url, REMOTE_SCHEME, strlen(REMOTE_SCHEME)) != 0) {
		cairn_format(why, why_size, "%s: not an s3:// url", url);
		return -EINVAL;
	}
	const char *b = url + strlen(REMOTE_SCHEME);
	const char *slash = strchr(b, '/');
	size_t blen = slash ? (size_t)(slash - b) : strlen(b);
	if (!bucket_ok(b, blen)) {
		cairn_format(why, why_size,
			     "%s: not a bucket name (3 to 63 of a-z, 0-9, '.' and '-', starting "
			     "and ending with a letter or digit)",
			     url);
		return -EINVAL;
	}
	memcpy(u.bucket, b, blen);
	if (slash && !prefix_ok(slash + 1)) {
		cairn_format(why, why_size,
			     "%s: not a store prefix (names of A-Z, a-z, 0-9, '.', '_' and '-' "
			     "between single '/', none '.' or '..', no '/' at either end)",
			     url);
		return -EINVAL;
	}
	if (slash)
		strcpy(u.prefix, slash + 1);
	*ret = u;
	return 0;
}

const char *remote_key(const struct remote_url *url, const char *rel, char *buf, size_t size)
{
	if (url->prefix[0])
		cairn_format(buf, size, "%s/%s", url->prefix, rel);
	else
		cairn_format(buf, size, "%s", rel);
	return buf;
}

void remote_meta_key(char buf[REMOTE_KEY_MAX], uint64_t generation, uint64_t session,
		     const char *ext)
{
	cairn_format(buf, REMOTE_KEY_MAX, "meta/%016" PRIx64 "-%016" PRIx64 ".%s", generation,
		     session, ext);
}

void remote_pack_key(char buf[REMOTE_KEY_MAX], uint32_t pack_num, uint64_t session)
{
	cairn_format(buf, REMOTE_KEY_MAX, "packs/%08" PRIx32 "-%016" PRIx64 ".pack", pack_num,
		     session);
}

void remote_snapshot_key(char buf[REMOTE_KEY_MAX], uint64_t session, uint32_t counter)
{
	cairn_format(buf, REMOTE_KEY_MAX, "snapshots/%016" PRIx64 "-%08" PRIx32, session, counter);
}
