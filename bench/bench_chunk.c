/* bench_chunk.c: the per-byte stages of putting data into a store, each on
 * one core and each against memcpy of the same buffer (the machine's memory
 * bandwidth) measured in the same run: content-defined chunking, chunk id
 * hashing (keyed, and plain XXH3 for reference), chunk + id together (the
 * target, docs/BENCHMARKS.md: >= 2 GB/s), chunk + sketch (the cutters'
 * other per-byte pass, delta chunks' resemblance), the writer's whole
 * main-thread path, and, on real data, zstd per chunk against zstd over
 * the stream and the confirmation a dedup hit costs. Data is in memory: no I/O is timed.
 *
 * Usage: bench_chunk [-r REPS] [-s RANDOM_MIB] [-m FILE_MAX_MIB] [FILE]
 * Each figure is the best of REPS runs (default 5).
 */
#define XXH_INLINE_ALL
#include <xxhash.h>

#include "bench_util.h"
#include "delta_internal.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#define ID_SLICE   (64u << 10) /* the chunk size hashed by the id-only runs */
#define READ_SIZE  (1u << 20)  /* the writer path is fed like bench_put feeds it */
#define ZSTD_LEVEL 3

struct options {
	unsigned reps;
	size_t random_size;
	size_t file_max;
	const char *file;
};

/* One data set and what the runs need around it. */
struct ctx {
	const char *label;
	const uint8_t *buf;
	size_t size;
	uint8_t *dst;       /* memcpy target, size bytes */
	uint8_t *chunk_buf; /* chunk_max bytes: the writer path copies into it */
	struct cairn_store *store;
	struct cairn_chunker chunker;
	uint32_t chunk_max;
	/* filled by the compress runs, used by the confirm run */
	uint8_t **frames;
	size_t *frame_sizes;
	uint32_t *chunk_sizes;
	size_t chunk_count;
	uint64_t compressed_chunks, compressed_stream;
};

typedef uint64_t (*run_fn)(struct ctx *ctx);

static volatile uint64_t sink;

/* Best (smallest) wall time of reps runs, in nanoseconds. */
static uint64_t best_of(struct ctx *ctx, run_fn run, unsigned reps)
{
	uint64_t best = UINT64_MAX;

	for (unsigned i = 0; i < reps; i++) {
		uint64_t t0 = bench_now_ns();
		sink += run(ctx);
		uint64_t t = bench_now_ns() - t0;
		if (t < best)
			best = t;
	}
	return best;
}

static double gbps(const struct ctx *ctx, uint64_t ns)
{
	return (double)ctx->size / ((double)ns / 1e9) / BENCH_GB;
}

/* ---- the runs ---- */

static uint64_t run_memcpy(struct ctx *ctx)
{
	memcpy(ctx->dst, ctx->buf, ctx->size);
	return ctx->dst[ctx->size / 2];
}

/* Calls at_cut(ctx, start, len) at each chunk the chunker cuts. */
static uint64_t chunk_all(struct ctx *ctx, uint64_t (*at_cut)(struct ctx *, size_t, size_t))
{
	uint64_t acc = 0;
	size_t pos = 0, start = 0;

	cairn_chunker_reset(&ctx->chunker);
	while (pos < ctx->size) {
		int cut;
		pos += cairn_chunker_scan(&ctx->chunker, ctx->buf + pos, ctx->size - pos, &cut);
		if (cut || pos == ctx->size) {
			acc += at_cut ? at_cut(ctx, start, pos - start) : 1;
			start = pos;
		}
	}
	return acc;
}

static uint64_t run_chunk(struct ctx *ctx)
{
	return chunk_all(ctx, NULL);
}

static uint64_t id_at_cut(struct ctx *ctx, size_t start, size_t len)
{
	struct cairn_id id;

	cairn_store_chunk_id(ctx->store, ctx->buf + start, len, &id);
	return id.bytes[0];
}

static uint64_t run_chunk_id(struct ctx *ctx)
{
	return chunk_all(ctx, id_at_cut);
}

static uint64_t run_id(struct ctx *ctx)
{
	uint64_t acc = 0;

	for (size_t off = 0; off < ctx->size; off += ID_SLICE) {
		size_t n = ctx->size - off < ID_SLICE ? ctx->size - off : ID_SLICE;
		acc += id_at_cut(ctx, off, n);
	}
	return acc;
}

static uint64_t sketch_at_cut(struct ctx *ctx, size_t start, size_t len)
{
	struct sketch sketch = {{0}};

	return sketch_compute(ctx->chunker.gear, ctx->buf + start, len, &sketch) ? sketch.sf[0] : 0;
}

static uint64_t run_sketch(struct ctx *ctx)
{
	return chunk_all(ctx, sketch_at_cut);
}

static uint64_t run_xxh3(struct ctx *ctx)
{
	uint64_t acc = 0;

	for (size_t off = 0; off < ctx->size; off += ID_SLICE) {
		size_t n = ctx->size - off < ID_SLICE ? ctx->size - off : ID_SLICE;
		acc += XXH3_128bits(ctx->buf + off, n).low64;
	}
	return acc;
}

/* What cairn_writer_file_write and _file_end do on the calling thread, minus
 * locking and the hand-off: chunking, copying into the chunk buffer, chunk
 * id, and the file id over the chunk list (one run of 24 bytes per chunk). */
static uint64_t run_writer_path(struct ctx *ctx)
{
	struct cairn_file_hasher hasher;
	struct cairn_id id;
	uint64_t acc = 0, end = 0;
	uint32_t chunk_len = 0;

	cairn_file_id_init(&hasher, ctx->store);
	cairn_chunker_reset(&ctx->chunker);
	for (size_t off = 0; off < ctx->size; off += READ_SIZE) {
		const uint8_t *p = ctx->buf + off;
		size_t left = ctx->size - off < READ_SIZE ? ctx->size - off : READ_SIZE;
		while (left > 0) {
			int cut;
			size_t n = cairn_chunker_scan(&ctx->chunker, p, left, &cut);
			memcpy(ctx->chunk_buf + chunk_len, p, n);
			chunk_len += (uint32_t)n;
			p += n;
			left -= n;
			if (cut) {
				cairn_store_chunk_id(ctx->store, ctx->chunk_buf, chunk_len, &id);
				end += chunk_len;
				cairn_file_id_add_run(&hasher, &id, end);
				acc += id.bytes[0];
				chunk_len = 0;
			}
		}
	}
	cairn_file_hasher_final(&hasher, &id);
	return acc + id.bytes[0];
}

/* ---- zstd: per chunk (as the writer's workers) and over the stream ---- */

static uint64_t record_chunk(struct ctx *ctx, size_t start, size_t len)
{
	(void)start;
	ctx->chunk_sizes[ctx->chunk_count++] = (uint32_t)len;
	return 1;
}

/* Cuts the buffer once, remembering chunk sizes for the zstd runs. */
static int prepare_chunks(struct ctx *ctx)
{
	size_t most = ctx->size / cairn_store_params(ctx->store)->chunk_min + 2;

	ctx->chunk_sizes = calloc(most, sizeof(*ctx->chunk_sizes));
	ctx->frames = calloc(most, sizeof(*ctx->frames));
	ctx->frame_sizes = calloc(most, sizeof(*ctx->frame_sizes));
	if (!ctx->chunk_sizes || !ctx->frames || !ctx->frame_sizes)
		return -ENOMEM;
	ctx->chunk_count = 0;
	chunk_all(ctx, record_chunk);
	for (size_t i = 0; i < ctx->chunk_count; i++) {
		ctx->frames[i] = malloc(ZSTD_compressBound(ctx->chunk_sizes[i]));
		if (!ctx->frames[i])
			return -ENOMEM;
	}
	return 0;
}

static uint64_t run_zstd_chunks(struct ctx *ctx)
{
	ZSTD_CCtx *cctx = ZSTD_createCCtx();
	size_t off = 0;
	uint64_t total = 0;

	for (size_t i = 0; i < ctx->chunk_count; i++) {
		size_t len = ctx->chunk_sizes[i];
		size_t n = ZSTD_compressCCtx(cctx, ctx->frames[i], ZSTD_compressBound(len),
					     ctx->buf + off, len, ZSTD_LEVEL);
		/* the writer stores chunks that do not shrink raw */
		ctx->frame_sizes[i] = ZSTD_isError(n) || n >= len ? 0 : n;
		total += ctx->frame_sizes[i] ? n : len;
		off += len;
	}
	ZSTD_freeCCtx(cctx);
	ctx->compressed_chunks = total;
	return total;
}

/* zstd -3 -T1 without its file I/O: one stream, 1 MiB in at a time. */
static uint64_t run_zstd_stream(struct ctx *ctx)
{
	ZSTD_CCtx *cctx = ZSTD_createCCtx();
	size_t out_cap = ZSTD_CStreamOutSize();
	uint8_t *out = malloc(out_cap);
	uint64_t total = 0;

	ZSTD_CCtx_setParameter(cctx, ZSTD_c_compressionLevel, ZSTD_LEVEL);
	for (size_t off = 0; out && off < ctx->size; off += READ_SIZE) {
		size_t n = ctx->size - off < READ_SIZE ? ctx->size - off : READ_SIZE;
		int last = off + n == ctx->size;
		ZSTD_inBuffer in = {ctx->buf + off, n, 0};
		size_t left;
		do {
			ZSTD_outBuffer o = {out, out_cap, 0};
			left = ZSTD_compressStream2(cctx, &o, &in,
						    last ? ZSTD_e_end : ZSTD_e_continue);
			if (ZSTD_isError(left))
				break;
			total += o.pos;
		} while (last ? left != 0 : in.pos < in.size);
	}
	free(out);
	ZSTD_freeCCtx(cctx);
	ctx->compressed_stream = total;
	return total;
}

/* What a dedup hit costs the writer once the record is read: decompress and
 * compare in place; the id is computed again only when the bytes differ
 * (store/pack_read.c frame_reader_confirm), which here they never do. */
static uint64_t run_confirm(struct ctx *ctx)
{
	ZSTD_DCtx *dctx = ZSTD_createDCtx();
	struct cairn_id id;
	size_t off = 0;
	uint64_t acc = 0;

	for (size_t i = 0; i < ctx->chunk_count; i++) {
		size_t len = ctx->chunk_sizes[i];
		if (ctx->frame_sizes[i])
			ZSTD_decompressDCtx(dctx, ctx->chunk_buf, len, ctx->frames[i],
					    ctx->frame_sizes[i]);
		else
			memcpy(ctx->chunk_buf, ctx->buf + off, len);
		bool same = memcmp(ctx->chunk_buf, ctx->buf + off, len) == 0;
		if (!same) {
			cairn_store_chunk_id(ctx->store, ctx->chunk_buf, len, &id);
			acc += id.bytes[0];
		}
		acc += same;
		off += len;
	}
	ZSTD_freeDCtx(dctx);
	return acc;
}

/* ---- reporting ---- */

static void report(const struct ctx *ctx, const char *what, uint64_t ns, double base_gbps)
{
	char name[160];

	snprintf(name, sizeof(name), "%s [%s]", what, ctx->label);
	bench_report_rate(name, gbps(ctx, ns), "memcpy", base_gbps, "GB/s");
}

static void bench_cpu_stages(struct ctx *ctx, unsigned reps, double *ret_memcpy)
{
	double base = gbps(ctx, best_of(ctx, run_memcpy, reps));
	uint64_t chunks = run_chunk(ctx);

	printf("data [%s]: %zu bytes, %llu chunks, mean chunk %.1f KiB\n", ctx->label, ctx->size,
	       (unsigned long long)chunks, (double)ctx->size / (double)chunks / 1024);
	printf("memcpy [%s]: %.2f GB/s (baseline)\n", ctx->label, base);
	report(ctx, "chunk", best_of(ctx, run_chunk, reps), base);
	report(ctx, "xxh3-128 64KiB", best_of(ctx, run_xxh3, reps), base);
	report(ctx, "id 64KiB", best_of(ctx, run_id, reps), base);
	report(ctx, "chunk+id", best_of(ctx, run_chunk_id, reps), base);
	report(ctx, "chunk+sketch", best_of(ctx, run_sketch, reps), base);
	report(ctx, "writer main path", best_of(ctx, run_writer_path, reps), base);
	*ret_memcpy = base;
}

static int bench_zstd_stages(struct ctx *ctx, unsigned reps, double base)
{
	char name[160];

	if (prepare_chunks(ctx) < 0)
		return -ENOMEM;
	double stream = gbps(ctx, best_of(ctx, run_zstd_stream, reps)) * 1000;
	double chunks = gbps(ctx, best_of(ctx, run_zstd_chunks, reps)) * 1000;
	snprintf(name, sizeof(name), "zstd -%d per chunk, 1 core [%s]", ZSTD_LEVEL, ctx->label);
	bench_report_rate(name, chunks, "zstd stream 1 core", stream, "MB/s");
	printf("zstd size [%s]: per chunk %llu bytes (%.3f of input) | baseline stream %llu bytes "
	       "(%.3f) | ratio %.3fx\n",
	       ctx->label, (unsigned long long)ctx->compressed_chunks,
	       (double)ctx->compressed_chunks / (double)ctx->size,
	       (unsigned long long)ctx->compressed_stream,
	       (double)ctx->compressed_stream / (double)ctx->size,
	       (double)ctx->compressed_chunks / (double)ctx->compressed_stream);
	report(ctx, "confirm (unzstd+memcmp)", best_of(ctx, run_confirm, reps), base);
	return 0;
}

static void ctx_release(struct ctx *ctx)
{
	for (size_t i = 0; ctx->frames && i < ctx->chunk_count; i++)
		free(ctx->frames[i]);
	free(ctx->frames);
	free(ctx->frame_sizes);
	free(ctx->chunk_sizes);
	free(ctx->dst);
	free(ctx->chunk_buf);
}

static int bench_data(const char *label, const uint8_t *buf, size_t size, struct cairn_store *store,
		      const struct options *opt, int with_zstd)
{
	struct ctx ctx = {.label = label, .buf = buf, .size = size, .store = store};
	double base;
	int r = 0;

	cairn_chunker_init(&ctx.chunker, cairn_store_params(store));
	ctx.chunk_max = cairn_store_params(store)->chunk_max;
	ctx.dst = malloc(size);
	ctx.chunk_buf = malloc(ctx.chunk_max);
	if (!ctx.dst || !ctx.chunk_buf) {
		ctx_release(&ctx);
		return -ENOMEM;
	}
	memset(ctx.dst, 1, size); /* fault the pages in before timing */
	bench_cpu_stages(&ctx, opt->reps, &base);
	if (with_zstd)
		r = bench_zstd_stages(&ctx, opt->reps, base);
	ctx_release(&ctx);
	return r;
}

/* ---- main ---- */

static int parse_options(int argc, char **argv, struct options *opt)
{
	int c;

	*opt = (struct options){.reps = 5, .random_size = 256u << 20};
	while ((c = getopt(argc, argv, "r:s:m:h")) != -1) {
		switch (c) {
		case 'r':
			opt->reps = (unsigned)strtoul(optarg, NULL, 10);
			break;
		case 's':
			opt->random_size = (size_t)strtoull(optarg, NULL, 10) << 20;
			break;
		case 'm':
			opt->file_max = (size_t)strtoull(optarg, NULL, 10) << 20;
			break;
		default:
			fprintf(stderr,
				"usage: %s [-r REPS] [-s RANDOM_MIB] [-m FILE_MAX_MIB] [FILE]\n",
				argv[0]);
			return -EINVAL;
		}
	}
	if (optind < argc)
		opt->file = argv[optind];
	if (opt->reps == 0 || opt->random_size == 0)
		return -EINVAL;
	return 0;
}

static int bench_random(struct cairn_store *store, const struct options *opt)
{
	char label[64];
	uint8_t *buf = malloc(opt->random_size);

	if (!buf)
		return -ENOMEM;
	bench_fill_random(buf, opt->random_size, 42);
	snprintf(label, sizeof(label), "random %zu MiB", opt->random_size >> 20);
	int r = bench_data(label, buf, opt->random_size, store, opt, 0);
	free(buf);
	return r;
}

static int bench_file(struct cairn_store *store, const struct options *opt)
{
	uint8_t *buf;
	size_t size;
	int r = bench_read_file(opt->file, opt->file_max, &buf, &size);

	if (r < 0) {
		fprintf(stderr, "bench_chunk: %s: %s\n", opt->file, strerror(-r));
		return r;
	}
	const char *base = strrchr(opt->file, '/');
	r = bench_data(base ? base + 1 : opt->file, buf, size, store, opt, 1);
	free(buf);
	return r;
}

int main(int argc, char **argv)
{
	struct options opt;
	struct bench_store bs = {0};

	if (parse_options(argc, argv, &opt) < 0)
		return 2;
	if (bench_store_create(&bs, NULL) < 0)
		return 1;
	printf("bench_chunk: one core, best of %u runs; chunk params %u/%u/%u\n", opt.reps,
	       cairn_store_params(bs.store)->chunk_min, cairn_store_params(bs.store)->chunk_avg,
	       cairn_store_params(bs.store)->chunk_max);
	int r = bench_random(bs.store, &opt);
	if (r == 0 && opt.file)
		r = bench_file(bs.store, &opt);
	if (r < 0)
		fprintf(stderr, "bench_chunk: %s\n", strerror(-r));
	bench_store_release(&bs, 0);
	return r < 0 ? 1 : 0;
}
