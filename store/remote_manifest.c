/* remote_manifest.c: the text objects of a remote store (docs/FORMAT.md
 * "Remote stores"): the pointer `cairn-head`, the manifest and the writer
 * lease. Anyone who may write the bucket may write
 * these, so the parsers are strict: one exact form per line, every number
 * and name bounded, lines in a fixed order, and anything else is "damaged".
 */
#include "remote.h"

#include "store_internal.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- fields ---- */

#define MAX_FIELDS 8

/* One line split at single spaces: no empty field, no other whitespace. */
struct line {
	const char *field[MAX_FIELDS];
	size_t len[MAX_FIELDS];
	unsigned count;
};

static int split_line(const char *text, size_t size, struct line *ret)
{
	struct line l = {0};
	size_t start = 0;

	if (size == 0 || size > REMOTE_LINE_MAX)
		return -EBADMSG;
	for (size_t i = 0; i <= size; i++) {
		if (i < size && (unsigned char)text[i] > ' ' && (unsigned char)text[i] < 0x7f)
			continue;
		if ((i < size && text[i] != ' ') || i == start || l.count == MAX_FIELDS)
			return -EBADMSG;
		l.field[l.count] = text + start;
		l.len[l.count++] = i - start;
		start = i + 1;
	}
	*ret = l;
	return 0;
}

static bool field_is(const struct line *l, unsigned i, const char *word)
{
	return i < l->count && l->len[i] == strlen(word) &&
	       memcmp(l->field[i], word, l->len[i]) == 0;
}

static int hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* Exactly digits lowercase hex digits (at most 16). */
static int parse_hex(const char *s, size_t len, size_t digits, uint64_t *ret)
{
	uint64_t v = 0;

	if (len != digits)
		return -EBADMSG;
	for (size_t i = 0; i < len; i++) {
		int d = hex_digit(s[i]);
		if (d < 0)
			return -EBADMSG;
		v = v << 4 | (uint64_t)d;
	}
	*ret = v;
	return 0;
}

/* Decimal without sign or leading zeros, at most max. */
static int parse_dec(const char *s, size_t len, uint64_t max, uint64_t *ret)
{
	uint64_t v = 0;

	if (len == 0 || len > 20 || (len > 1 && s[0] == '0'))
		return -EBADMSG;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9' || v > (max - (uint64_t)(s[i] - '0')) / 10)
			return -EBADMSG;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	*ret = v;
	return 0;
}

/* Hex bytes into out (len/2 bytes, at most max). */
static int parse_hex_bytes(const char *s, size_t len, size_t min, size_t max, uint8_t *out)
{
	if (len % 2 || len / 2 < min || len / 2 > max)
		return -EBADMSG;
	for (size_t i = 0; i < len; i += 2) {
		int hi = hex_digit(s[i]), lo = hex_digit(s[i + 1]);
		if (hi < 0 || lo < 0)
			return -EBADMSG;
		out[i / 2] = (uint8_t)(hi << 4 | lo);
	}
	return 0;
}

/* A key in dir: dir, then a name of [0-9a-z.-] without "..", bounded. */
static int parse_key(const char *s, size_t len, const char *dir, char out[REMOTE_KEY_MAX])
{
	size_t dlen = strlen(dir);

	if (len >= REMOTE_KEY_MAX || len <= dlen || memcmp(s, dir, dlen) != 0)
		return -EBADMSG;
	for (size_t i = dlen; i < len; i++) {
		bool ok = (s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'z') ||
			  s[i] == '-' || (s[i] == '.' && s[i - 1] != '.');
		if (!ok)
			return -EBADMSG;
	}
	memcpy(out, s, len);
	out[len] = '\0';
	return 0;
}

/* KEY SIZE XXH3 at fields i..i+2. */
static int parse_object(const struct line *l, unsigned i, const char *dir,
			struct remote_object *ret)
{
	if (l->count != i + 3 || parse_key(l->field[i], l->len[i], dir, ret->key) < 0 ||
	    parse_dec(l->field[i + 1], l->len[i + 1], UINT64_MAX, &ret->size) < 0 ||
	    parse_hex(l->field[i + 2], l->len[i + 2], 16, &ret->checksum) < 0)
		return -EBADMSG;
	return 0;
}

static int encode_hex_bytes(char *out, const uint8_t *bytes, size_t size)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < size; i++) {
		out[2 * i] = digits[bytes[i] >> 4];
		out[2 * i + 1] = digits[bytes[i] & 15];
	}
	out[2 * size] = '\0';
	return 0;
}

/* ---- the pointer ---- */

int remote_head_parse(const char *text, size_t size, struct remote_head *ret, char *why,
		      size_t why_size)
{
	struct remote_head head = {0};
	struct line l;

	if (size == 0 || text[size - 1] != '\n' || memchr(text, '\n', size) != text + size - 1 ||
	    split_line(text, size - 1, &l) < 0 || l.count != 6 || !field_is(&l, 0, "cairn-head") ||
	    !field_is(&l, 1, "1") || parse_hex(l.field[2], l.len[2], 16, &head.generation) < 0 ||
	    parse_object(&l, 3, "meta/", &head.manifest) < 0 ||
	    head.manifest.size > REMOTE_MANIFEST_MAX) {
		cairn_format(why, why_size, "is not a cairn-head version 1 line");
		return -EBADMSG;
	}
	*ret = head;
	return 0;
}

int remote_head_encode(const struct remote_head *head, char *buf, size_t size)
{
	int n = snprintf(buf, size, "cairn-head 1 %016" PRIx64 " %s %" PRIu64 " %016" PRIx64 "\n",
			 head->generation, head->manifest.key, head->manifest.size,
			 head->manifest.checksum);
	return n < 0 || (size_t)n >= size ? -ENOBUFS : n;
}

/* ---- the lease ---- */

int remote_lease_parse(const char *text, size_t size, struct remote_lease *ret, char *why,
		       size_t why_size)
{
	struct remote_lease lease = {0};
	uint64_t pid, start, expires;
	struct line l;

	if (size == 0 || text[size - 1] != '\n' || memchr(text, '\n', size) != text + size - 1 ||
	    split_line(text, size - 1, &l) < 0 || l.count != 7 || !field_is(&l, 0, "cairn-lock") ||
	    !field_is(&l, 1, "1") || parse_hex(l.field[2], l.len[2], 16, &lease.session) < 0 ||
	    parse_hex_bytes(l.field[3], l.len[3], 1, REMOTE_HOST_MAX, (uint8_t *)lease.host) < 0 ||
	    memchr(lease.host, '\0', l.len[3] / 2) ||
	    parse_dec(l.field[4], l.len[4], INT32_MAX, &pid) < 0 ||
	    parse_dec(l.field[5], l.len[5], INT64_MAX, &start) < 0 ||
	    parse_dec(l.field[6], l.len[6], INT64_MAX, &expires) < 0) {
		cairn_format(why, why_size, "is not a cairn-lock version 1 line");
		return -EBADMSG;
	}
	lease.pid = (int64_t)pid;
	lease.start = (int64_t)start;
	lease.expires = (int64_t)expires;
	*ret = lease;
	return 0;
}

int remote_lease_encode(const struct remote_lease *lease, char *buf, size_t size)
{
	char host[2 * REMOTE_HOST_MAX + 1];

	encode_hex_bytes(host, (const uint8_t *)lease->host, strnlen(lease->host, REMOTE_HOST_MAX));
	int n = snprintf(
		buf, size, "cairn-lock 1 %016" PRIx64 " %s %" PRId64 " %" PRId64 " %" PRId64 "\n",
		lease->session, host[0] ? host : "3f", lease->pid, lease->start, lease->expires);
	return n < 0 || (size_t)n >= size ? -ENOBUFS : n;
}

/* ---- the manifest ---- */

struct cursor {
	const char *text;
	size_t size, pos;
	size_t line_start;
	unsigned lineno;
	struct line l;
};

/* 1 with the next line split into c->l, 0 at the end, -EBADMSG. */
static int next_line(struct cursor *c)
{
	if (c->pos == c->size)
		return 0;
	const char *nl = memchr(c->text + c->pos, '\n', c->size - c->pos);
	if (!nl)
		return -EBADMSG;
	c->line_start = c->pos;
	c->lineno++;
	int r = split_line(c->text + c->pos, (size_t)(nl - (c->text + c->pos)), &c->l);
	c->pos = (size_t)(nl - c->text) + 1;
	return r < 0 ? r : 1;
}

static int grow(void **array, size_t count, size_t elem, size_t max)
{
	if (count >= max)
		return -EBADMSG;
	if ((count & (count - 1)) == 0) { /* 0, 1, 2, 4, ...: double */
		void *grown = realloc(*array, (count ? count * 2 : 1) * elem);
		if (!grown)
			return -ENOMEM;
		*array = grown;
	}
	return 0;
}

/* The rule of a local store's names (index/names.c), which store/ cannot
 * call: a hostile manifest must not name a snapshot a local one could not
 * have (a path, a hidden file, a writer's temp file, a control character). */
static bool snapshot_name_ok(const char *name, size_t len)
{
	if (len == 0 || len > 200 || name[0] == '.' || name[0] == '-' ||
	    (len >= 4 && memcmp(name, "tmp-", 4) == 0))
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)name[i];
		if (c <= ' ' || c == 0x7f || c == '/' || c == ':' || c == '\\')
			return false;
	}
	return true;
}

static int parse_pack(struct remote_manifest *m, const struct line *l)
{
	struct remote_pack p = {0};
	uint64_t num;
	char want[16];

	if (l->count != 4 || parse_hex(l->field[1], l->len[1], 8, &num) < 0 ||
	    parse_key(l->field[2], l->len[2], "packs/", p.key) < 0 ||
	    parse_dec(l->field[3], l->len[3], UINT64_MAX, &p.size) < 0)
		return -EBADMSG;
	p.pack_num = (uint32_t)num;
	cairn_format(want, sizeof(want), "packs/%08" PRIx32 "-", p.pack_num);
	if (strncmp(p.key, want, strlen(want)) != 0 ||
	    (m->pack_count && m->packs[m->pack_count - 1].pack_num >= p.pack_num))
		return -EBADMSG;
	int r = grow((void **)&m->packs, m->pack_count, sizeof(p), REMOTE_PACKS_MAX);
	if (r < 0)
		return r;
	m->packs[m->pack_count++] = p;
	return 0;
}

static int parse_snapshot(struct remote_manifest *m, const struct line *l)
{
	struct remote_snapshot s = {0};
	char name[REMOTE_HOST_MAX + 1] = {0};

	if (l->count != 5 || parse_hex_bytes(l->field[1], l->len[1], 1, 255, (uint8_t *)name) < 0 ||
	    !snapshot_name_ok(name, l->len[1] / 2) ||
	    parse_object(l, 2, "snapshots/", &s.object) < 0)
		return -EBADMSG;
	if (m->snapshot_count && strcmp(m->snapshots[m->snapshot_count - 1].name, name) >= 0)
		return -EBADMSG;
	int r = grow((void **)&m->snapshots, m->snapshot_count, sizeof(s), REMOTE_SNAPSHOTS_MAX);
	if (r < 0)
		return r;
	s.name = strdup(name);
	if (!s.name)
		return -ENOMEM;
	m->snapshots[m->snapshot_count++] = s;
	return 0;
}

static int parse_condemned(struct remote_manifest *m, const struct line *l)
{
	struct remote_condemned c = {0};
	uint64_t time;
	static const char *const dirs[] = {"meta/", "packs/", "snapshots/"};
	int r = -EBADMSG;

	for (size_t i = 0; l->count == 3 && r < 0 && i < ARRAY_SIZE(dirs); i++)
		r = parse_key(l->field[1], l->len[1], dirs[i], c.key);
	if (r < 0 || parse_dec(l->field[2], l->len[2], INT64_MAX, &time) < 0)
		return -EBADMSG;
	c.time = (int64_t)time;
	r = grow((void **)&m->condemned, m->condemned_count, sizeof(c), REMOTE_CONDEMNED_MAX);
	if (r < 0)
		return r;
	m->condemned[m->condemned_count++] = c;
	return 0;
}

/* The fixed head of a manifest: magic, generation, writer, config, chunks. */
static int parse_fixed(struct cursor *c, struct remote_manifest *m)
{
	const struct line *l = &c->l;
	uint64_t time;

	if (next_line(c) != 1 || l->count != 2 || !field_is(l, 0, "cairn-manifest") ||
	    !field_is(l, 1, "1"))
		return -EBADMSG;
	if (next_line(c) != 1 || l->count != 2 || !field_is(l, 0, "generation") ||
	    parse_hex(l->field[1], l->len[1], 16, &m->generation) < 0)
		return -EBADMSG;
	if (next_line(c) != 1 || l->count != 4 || !field_is(l, 0, "writer") ||
	    parse_hex(l->field[1], l->len[1], 16, &m->writer_session) < 0 ||
	    parse_hex_bytes(l->field[2], l->len[2], 1, REMOTE_HOST_MAX, (uint8_t *)m->writer_host) <
		    0 ||
	    memchr(m->writer_host, '\0', l->len[2] / 2) ||
	    parse_dec(l->field[3], l->len[3], INT64_MAX, &time) < 0)
		return -EBADMSG;
	m->writer_time = (int64_t)time;
	if (next_line(c) != 1 || l->count != 2 || !field_is(l, 0, "config") ||
	    parse_hex_bytes(l->field[1], l->len[1], REMOTE_CONFIG_SIZE, REMOTE_CONFIG_SIZE,
			    m->config) < 0)
		return -EBADMSG;
	if (next_line(c) != 1 || !field_is(l, 0, "chunks") ||
	    parse_object(l, 1, "meta/", &m->chunks) < 0)
		return -EBADMSG;
	return 0;
}

enum stage { STAGE_SKETCHES = 1, STAGE_PACK, STAGE_SNAPSHOT, STAGE_CONDEMNED, STAGE_END };

/* One line after the fixed head, at or after stage *at. */
static int parse_entry(struct cursor *c, struct remote_manifest *m, enum stage *at)
{
	static const char *const words[] = {NULL,       "sketches",  "pack",
					    "snapshot", "condemned", "end"};
	const struct line *l = &c->l;
	enum stage s = 0;
	uint64_t sum;

	for (unsigned i = STAGE_SKETCHES; i <= STAGE_END; i++)
		if (field_is(l, 0, words[i]))
			s = i;
	if (s == 0 || s < *at)
		return -EBADMSG;
	*at = s == STAGE_SKETCHES ? STAGE_PACK : s;
	switch (s) {
	case STAGE_SKETCHES:
		m->has_sketches = true;
		return parse_object(l, 1, "meta/", &m->sketches);
	case STAGE_PACK:
		return parse_pack(m, l);
	case STAGE_SNAPSHOT:
		return parse_snapshot(m, l);
	case STAGE_CONDEMNED:
		return parse_condemned(m, l);
	default:
		if (l->count != 2 || parse_hex(l->field[1], l->len[1], 16, &sum) < 0 ||
		    sum != store_checksum(c->text, c->line_start) || c->pos != c->size)
			return -EBADMSG;
		return 0;
	}
}

int remote_manifest_parse(const char *text, size_t size, struct remote_manifest *ret, char *why,
			  size_t why_size)
{
	struct remote_manifest m = {0};
	struct cursor c = {.text = text, .size = size};
	enum stage at = STAGE_SKETCHES;
	int r = size > REMOTE_MANIFEST_MAX || memchr(text, '\0', size) ? -EBADMSG : 0;

	if (r == 0)
		r = parse_fixed(&c, &m);
	while (r == 0 && at != STAGE_END) {
		r = next_line(&c);
		r = r == 1 ? parse_entry(&c, &m, &at) : -EBADMSG;
	}
	if (r < 0) {
		if (r == -ENOMEM)
			cairn_format(why, why_size, "out of memory");
		else if (c.lineno == 0 || c.pos > size)
			cairn_format(why, why_size, "is not a cairn manifest");
		else
			cairn_format(why, why_size, "is damaged at line %u", c.lineno);
		remote_manifest_release(&m);
		return r;
	}
	*ret = m;
	return 0;
}

void remote_manifest_release(struct remote_manifest *m)
{
	for (size_t i = 0; i < m->snapshot_count; i++)
		free(m->snapshots[i].name);
	free(m->snapshots);
	free(m->packs);
	free(m->condemned);
	*m = (struct remote_manifest){0};
}

struct text {
	char *data;
	size_t size, cap;
	bool failed;
};

static void _printf_(2, 3) text_add(struct text *t, const char *fmt, ...)
{
	va_list ap;

	for (int tries = 0; !t->failed && tries < 2; tries++) {
		va_start(ap, fmt);
		int n = vsnprintf(t->data ? t->data + t->size : NULL, t->cap - t->size, fmt, ap);
		va_end(ap);
		if (n < 0) {
			t->failed = true;
		} else if ((size_t)n < t->cap - t->size) {
			t->size += (size_t)n;
			return;
		} else {
			size_t cap = (t->cap + (size_t)n + 1) * 2;
			char *grown = realloc(t->data, cap);
			t->failed = !grown;
			t->data = grown ? grown : t->data;
			t->cap = grown ? cap : t->cap;
		}
	}
}

static void text_object(struct text *t, const char *word, const struct remote_object *o)
{
	text_add(t, "%s %s %" PRIu64 " %016" PRIx64 "\n", word, o->key, o->size, o->checksum);
}

int remote_manifest_encode(const struct remote_manifest *m, char **ret_text, size_t *ret_size)
{
	char hex[2 * 256 + 1];
	struct text t = {0};

	text_add(&t, "cairn-manifest 1\ngeneration %016" PRIx64 "\n", m->generation);
	encode_hex_bytes(hex, (const uint8_t *)m->writer_host,
			 strnlen(m->writer_host, REMOTE_HOST_MAX));
	text_add(&t, "writer %016" PRIx64 " %s %" PRId64 "\n", m->writer_session,
		 hex[0] ? hex : "3f", m->writer_time);
	encode_hex_bytes(hex, m->config, REMOTE_CONFIG_SIZE);
	text_add(&t, "config %s\n", hex);
	text_object(&t, "chunks", &m->chunks);
	if (m->has_sketches)
		text_object(&t, "sketches", &m->sketches);
	for (size_t i = 0; i < m->pack_count; i++)
		text_add(&t, "pack %08" PRIx32 " %s %" PRIu64 "\n", m->packs[i].pack_num,
			 m->packs[i].key, m->packs[i].size);
	for (size_t i = 0; i < m->snapshot_count; i++) {
		size_t len = strlen(m->snapshots[i].name);
		if (len > 255) {
			free(t.data);
			return -EINVAL;
		}
		encode_hex_bytes(hex, (const uint8_t *)m->snapshots[i].name, len);
		const struct remote_object *o = &m->snapshots[i].object;
		text_add(&t, "snapshot %s %s %" PRIu64 " %016" PRIx64 "\n", hex, o->key, o->size,
			 o->checksum);
	}
	for (size_t i = 0; i < m->condemned_count; i++)
		text_add(&t, "condemned %s %" PRId64 "\n", m->condemned[i].key,
			 m->condemned[i].time);
	if (!t.failed)
		text_add(&t, "end %016" PRIx64 "\n", store_checksum(t.data, t.size));
	if (t.failed) {
		free(t.data);
		return -ENOMEM;
	}
	*ret_text = t.data;
	*ret_size = t.size;
	return 0;
}

const struct remote_pack *remote_manifest_pack(const struct remote_manifest *m, uint32_t pack_num)
{
	size_t lo = 0, hi = m->pack_count;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (m->packs[mid].pack_num < pack_num)
			lo = mid + 1;
		else if (m->packs[mid].pack_num > pack_num)
			hi = mid;
		else
			return &m->packs[mid];
	}
	return NULL;
}

const struct remote_snapshot *remote_manifest_snapshot(const struct remote_manifest *m,
						       const char *name)
{
	size_t lo = 0, hi = m->snapshot_count;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(m->snapshots[mid].name, name);
		if (c < 0)
			lo = mid + 1;
		else if (c > 0)
			hi = mid;
		else
			return &m->snapshots[mid];
	}
	return NULL;
}
