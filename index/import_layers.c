/* import_layers.c: gzip and lz4 streams decoded with zlib and liblz4
 * rather than by libarchive's filters, which read past gzip's CRC32 and
 * size trailer without checking it and leave lz4's checksums to chance.
 * zlib checks every gzip member's CRC32 and size (ISIZE); liblz4's frame
 * API checks every frame's header checksum, its content checksum and its
 * blocks' checksums where the frame says they are present. A mismatch
 * fails the decoding as any damaged stream does (import_decode.c).
 */
#include "codec_dl.h"
#include "import_internal.h"

#define ZLIB_CONST
#include <lz4frame.h>
#include <string.h>
#include <zlib.h>

#define LAYER_OUT_SIZE (256u << 10)

/* Makes sure l->in holds bytes from below unless below has ended. */
static int fill(struct decode_layer *l)
{
	if (l->in_len > 0 || l->below_ended)
		return 0;
	int r = import_layer_read(l->below, &l->in, &l->in_len);
	if (r < 0)
		return -1;
	if (r == 0) {
		l->below_ended = true;
		l->in_len = 0;
	}
	return 0;
}

static bool all_zero(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return false;
	return true;
}

/* ---- gzip ---- */

struct gzip_layer {
	z_stream z;
	uint8_t out[LAYER_OUT_SIZE];
	uint64_t member;
	int failed;   /* zlib's error, reported after the bytes it made */
	bool between; /* a member ended; another one, zeros or the end follow */
	bool padding; /* zeros after the last member, as a tape block leaves */
};

static const char *zlib_why(const char *msg)
{
	if (msg && strcmp(msg, "incorrect data check") == 0)
		return "CRC32 mismatch: the data is damaged";
	if (msg && strcmp(msg, "incorrect length check") == 0)
		return "size mismatch (ISIZE): the data is damaged";
	return msg ? msg : "invalid data";
}

/* Between members: another member starts, or zeros run to the end. */
static int gzip_between(struct decode_layer *l, struct gzip_layer *g)
{
	if (g->padding || l->in[0] == 0) {
		g->padding = true;
		if (!all_zero(l->in, l->in_len))
			return import_layer_fail(l,
						 "gzip: bytes that are not gzip follow member %llu",
						 (unsigned long long)g->member);
		l->in_len = 0;
		return 0;
	}
	if (inflateReset(&g->z) != Z_OK)
		return import_layer_fail(l, "gzip: cannot reset zlib");
	g->between = false;
	g->member++;
	return 0;
}

static int gzip_next(struct decode_layer *l, const uint8_t **ret, size_t *ret_size)
{
	struct gzip_layer *g = l->state;

	for (;;) {
		if (g->failed)
			return import_layer_fail(l, "gzip: member %llu: %s",
						 (unsigned long long)g->member, zlib_why(g->z.msg));
		if (fill(l) < 0)
			return -1;
		if (l->in_len == 0)
			return g->between ? 0
					  : import_layer_fail(l, "gzip: member %llu is truncated",
							      (unsigned long long)g->member);
		if (g->between) {
			if (gzip_between(l, g) < 0)
				return -1;
			continue;
		}
		g->z.next_in = l->in;
		g->z.avail_in = l->in_len > UINT32_MAX ? UINT32_MAX : (uInt)l->in_len;
		g->z.next_out = g->out;
		g->z.avail_out = sizeof(g->out);
		int zr = inflate(&g->z, Z_NO_FLUSH);
		size_t used = (size_t)(g->z.next_in - l->in);
		l->in += used;
		l->in_len -= used;
		if (zr == Z_STREAM_END)
			g->between = true;
		else if (zr != Z_OK && zr != Z_BUF_ERROR)
			g->failed = zr; /* a CRC32 or size found wrong after the last bytes */
		size_t made = sizeof(g->out) - g->z.avail_out;
		if (made > 0) {
			*ret = g->out;
			*ret_size = made;
			return 1;
		}
	}
}

static void gzip_release(struct decode_layer *l)
{
	struct gzip_layer *g = l->state;

	if (!g)
		return;
	inflateEnd(&g->z);
	free(g);
	l->state = NULL;
}

int import_gzip_layer_init(struct decode_layer *l)
{
	struct gzip_layer *g = calloc(1, sizeof(*g));

	if (!g)
		return import_layer_fail(l, "out of memory");
	char why[256];
	if (codec_dl_zlib(why, sizeof(why)) < 0) {
		free(g);
		return import_layer_fail(l, "%s", why);
	}
	/* 16 + 15: a gzip wrapper (CRC32 and ISIZE checked), 32 KiB window */
	if (inflateInit2(&g->z, 16 + 15) != Z_OK) {
		free(g);
		return import_layer_fail(l, "gzip: cannot start zlib");
	}
	g->member = 1;
	l->state = g;
	l->name = "gzip";
	l->next = gzip_next;
	l->release = gzip_release;
	return 0;
}

/* ---- lz4 ---- */

struct lz4_layer {
	LZ4F_dctx *dctx;
	uint8_t out[LAYER_OUT_SIZE];
	uint64_t frames; /* frames decoded to their end */
	size_t hint;     /* the input liblz4 wants next; 0: between frames */
};

static const char *lz4_why(size_t code)
{
	const char *name = LZ4F_getErrorName(code);

	if (strstr(name, "contentChecksum"))
		return "content checksum mismatch: the data is damaged";
	if (strstr(name, "blockChecksum"))
		return "block checksum mismatch: the data is damaged";
	if (strstr(name, "headerChecksum"))
		return "frame header checksum mismatch: the header is damaged";
	if (strstr(name, "frameType_unknown"))
		return "not an lz4 frame: damaged, or other bytes follow the stream";
	return strncmp(name, "ERROR_", 6) == 0 ? name + 6 : name;
}

static int lz4_next(struct decode_layer *l, const uint8_t **ret, size_t *ret_size)
{
	struct lz4_layer *z = l->state;

	for (;;) {
		if (fill(l) < 0)
			return -1;
		if (l->in_len == 0)
			return z->hint == 0 ? 0
					    : import_layer_fail(l, "lz4: frame %llu is truncated",
								(unsigned long long)z->frames + 1);
		/* At most what liblz4 asks for: one block (and the next one's
		 * header) a call, so that a damaged block or checksum fails a
		 * call that made nothing, after the blocks before it. */
		size_t want = z->hint ? z->hint : LZ4F_HEADER_SIZE_MIN;
		size_t made = sizeof(z->out), used = l->in_len < want ? l->in_len : want;
		size_t hint = LZ4F_decompress(z->dctx, z->out, &made, l->in, &used, NULL);
		l->in += used;
		l->in_len -= used;
		if (LZ4F_isError(hint))
			return import_layer_fail(l, "lz4: frame %llu: %s",
						 (unsigned long long)z->frames + 1, lz4_why(hint));
		if (hint == 0 && z->hint != 0)
			z->frames++;
		z->hint = hint;
		if (made > 0) {
			*ret = z->out;
			*ret_size = made;
			return 1;
		}
	}
}

static void lz4_release(struct decode_layer *l)
{
	struct lz4_layer *z = l->state;

	if (!z)
		return;
	LZ4F_freeDecompressionContext(z->dctx);
	free(z);
	l->state = NULL;
}

int import_lz4_layer_init(struct decode_layer *l)
{
	struct lz4_layer *z = calloc(1, sizeof(*z));

	if (!z)
		return import_layer_fail(l, "out of memory");
	char why[256];
	if (codec_dl_lz4(why, sizeof(why)) < 0) {
		free(z);
		return import_layer_fail(l, "%s", why);
	}
	if (LZ4F_isError(LZ4F_createDecompressionContext(&z->dctx, LZ4F_VERSION))) {
		free(z);
		return import_layer_fail(l, "lz4: cannot start liblz4");
	}
	z->hint = LZ4F_HEADER_SIZE_MIN; /* inside the first frame */
	l->state = z;
	l->name = "lz4";
	l->next = lz4_next;
	l->release = lz4_release;
	return 0;
}
