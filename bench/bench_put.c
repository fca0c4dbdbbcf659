/* bench_put.c: putting files into a fresh store through the public writer
 * API, as `cairn add` does: a writer with N compression threads, 1 MiB reads
 * fed to cairn_writer_file_write, one commit per file. Each FILE given is put
 * in turn into the same store, so naming a file twice measures a second put
 * of the same data (only confirmation of dedup hits should cost), and naming
 * a changed copy measures a second version.
 *
 * Usage: bench_put [-t THREADS] [-m] [-2] [-d DIR | -s STORE] [-k] FILE...
 *   -t  compression threads (default 2)
 *   -m  treat each FILE as a tar and put each regular member as its own file
 *       (the store-side work of `cairn add`, without libarchive); default is
 *       the whole FILE as one stream
 *   -2  then put all the FILEs again (the same as naming each twice)
 *   -d  where to make the temp store (default $TMPDIR or /tmp)
 *   -s  put into the existing store STORE instead (it is kept), e.g. to
 *       profile a second put alone after a first one with -k
 *   -k  keep the store
 *
 * Prints one line per put, "put N NAME: key=value ...", with wall time (from
 * writer open to the end of commit), the commit's share, CPU time of the
 * calling thread and of the process, and the writer's dedup counters for
 * that put. bench/run turns these into ratios against zstd.
 */
#include "bench_util.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define READ_SIZE (1u << 20)
#define TAR_BLOCK 512u

struct options {
	unsigned threads;
	bool members;
	bool keep;
	bool twice;
	const char *dir;
	const char *store;
	char **files;
	int file_count;
};

struct put_result {
	uint64_t wall_ns, commit_ns, main_cpu_ns, process_cpu_ns;
	uint64_t files;
	struct cairn_writer_stats stats;
};

/* ---- reading ---- */

/* Reads up to size bytes, short only at end of file, so every block but the
 * last is READ_SIZE and tar headers never straddle two blocks. */
static ssize_t read_block(int fd, uint8_t *buf, size_t size)
{
	size_t done = 0;

	while (done < size) {
		ssize_t n = read(fd, buf + done, size - done);
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

static int put_whole(struct cairn_writer *w, int fd, uint8_t *buf, uint64_t *ret_files)
{
	const struct cairn_chunk_ref *chunks;
	size_t chunk_count;
	uint64_t size;
	ssize_t n;

	int r = cairn_writer_file_begin(w);
	while (r == 0 && (n = read_block(fd, buf, READ_SIZE)) > 0)
		r = cairn_writer_file_write(w, buf, (size_t)n);
	if (r == 0 && n < 0)
		r = (int)n;
	if (r == 0)
		r = cairn_writer_file_end(w, &size, &chunks, &chunk_count);
	if (r == 0)
		*ret_files = 1;
	return r;
}

/* ---- a minimal tar walker: just enough to find regular members' data ---- */

struct tar_walk {
	uint64_t remaining; /* data bytes of the current member still to come */
	uint64_t pad;       /* padding after them */
	bool in_file;       /* the current member's data goes to the writer */
	uint64_t files;
};

static uint64_t tar_size(const uint8_t *field)
{
	uint64_t size = 0;

	if (field[0] & 0x80) { /* GNU base-256 */
		for (int i = 1; i < 12; i++)
			size = size << 8 | field[i];
		return size;
	}
	for (int i = 0; i < 12 && field[i]; i++)
		if (field[i] >= '0' && field[i] <= '7')
			size = size << 3 | (uint64_t)(field[i] - '0');
	return size;
}

static bool all_zero(const uint8_t *p, size_t size)
{
	for (size_t i = 0; i < size; i++)
		if (p[i])
			return false;
	return true;
}

static int tar_end_file(struct cairn_writer *w, struct tar_walk *tw)
{
	const struct cairn_chunk_ref *chunks;
	size_t chunk_count;
	uint64_t size;

	tw->in_file = false;
	tw->files++;
	return cairn_writer_file_end(w, &size, &chunks, &chunk_count);
}

static int tar_header(struct cairn_writer *w, struct tar_walk *tw, const uint8_t *header)
{
	if (all_zero(header, TAR_BLOCK))
		return 0;
	char type = (char)header[156];
	tw->remaining = tar_size(header + 124);
	tw->pad = (TAR_BLOCK - tw->remaining % TAR_BLOCK) % TAR_BLOCK;
	if (type != '0' && type != '\0' && type != '7')
		return 0; /* links, directories, pax and GNU long names: skipped */
	int r = cairn_writer_file_begin(w);
	tw->in_file = true;
	if (r == 0 && tw->remaining == 0)
		r = tar_end_file(w, tw);
	return r;
}

static int tar_feed(struct cairn_writer *w, struct tar_walk *tw, const uint8_t *buf, size_t size)
{
	size_t pos = 0;
	int r = 0;

	while (r == 0 && pos < size) {
		if (tw->remaining > 0) {
			size_t take =
				tw->remaining < size - pos ? (size_t)tw->remaining : size - pos;
			if (tw->in_file)
				r = cairn_writer_file_write(w, buf + pos, take);
			pos += take;
			tw->remaining -= take;
			if (r == 0 && tw->remaining == 0 && tw->in_file)
				r = tar_end_file(w, tw);
		} else if (tw->pad > 0) {
			size_t skip = tw->pad < size - pos ? (size_t)tw->pad : size - pos;
			pos += skip;
			tw->pad -= skip;
		} else if (size - pos < TAR_BLOCK) {
			r = -EBADMSG; /* a truncated tar */
		} else {
			r = tar_header(w, tw, buf + pos);
			pos += TAR_BLOCK;
		}
	}
	return r;
}

static int put_members(struct cairn_writer *w, int fd, uint8_t *buf, uint64_t *ret_files)
{
	struct tar_walk tw = {0};
	ssize_t n;
	int r = 0;

	while (r == 0 && (n = read_block(fd, buf, READ_SIZE)) > 0)
		r = tar_feed(w, &tw, buf, (size_t)n);
	if (r == 0 && n < 0)
		r = (int)n;
	if (r == 0 && (tw.in_file || tw.remaining > 0))
		r = -EBADMSG;
	if (r == 0)
		*ret_files = tw.files;
	return r;
}

/* ---- one put ---- */

static void stats_diff(const struct cairn_writer_stats *a, const struct cairn_writer_stats *b,
		       struct cairn_writer_stats *ret)
{
	ret->bytes_in = b->bytes_in - a->bytes_in;
	ret->chunks_in = b->chunks_in - a->chunks_in;
	ret->chunks_new = b->chunks_new - a->chunks_new;
	ret->bytes_new = b->bytes_new - a->bytes_new;
	ret->bytes_stored = b->bytes_stored - a->bytes_stored;
	ret->collisions = b->collisions - a->collisions;
}

static int put_file(struct cairn_store *store, const struct options *opt, const char *path,
		    uint8_t *buf, struct put_result *res)
{
	struct cairn_writer *w;
	struct cairn_writer_stats before = {0}, after;

	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		fprintf(stderr, "bench_put: %s: %s\n", path, strerror(errno));
		return -errno;
	}
	uint64_t t0 = bench_now_ns(), cpu0 = bench_thread_cpu_ns(), pcpu0 = bench_process_cpu_ns();
	int r = cairn_writer_open(store, 0, opt->threads, &w);
	if (r < 0) {
		fprintf(stderr, "bench_put: %s\n", cairn_store_error(store));
		close(fd);
		return r;
	}
	r = opt->members ? put_members(w, fd, buf, &res->files)
			 : put_whole(w, fd, buf, &res->files);
	uint64_t t1 = bench_now_ns();
	if (r == 0)
		r = cairn_writer_commit(w);
	uint64_t t2 = bench_now_ns();
	res->main_cpu_ns = bench_thread_cpu_ns() - cpu0;
	res->process_cpu_ns = bench_process_cpu_ns() - pcpu0;
	res->wall_ns = t2 - t0;
	res->commit_ns = t2 - t1;
	cairn_writer_stats(w, &after);
	stats_diff(&before, &after, &res->stats);
	if (r < 0)
		fprintf(stderr, "bench_put: %s: %s\n", path,
			*cairn_writer_error(w) ? cairn_writer_error(w) : strerror(-r));
	cairn_writer_free(w);
	close(fd);
	return r;
}

static void print_result(int index, const char *path, const struct options *opt,
			 const struct put_result *res, const struct cairn_store_stats *ss)
{
	const struct cairn_writer_stats *s = &res->stats;
	double secs = (double)res->wall_ns / 1e9;
	const char *name = strrchr(path, '/');

	printf("put %d %s (%s, %u threads): time_s=%.3f commit_s=%.3f mb_s=%.1f "
	       "main_cpu_s=%.3f process_cpu_s=%.3f files=%llu bytes_in=%llu chunks=%llu "
	       "chunks_new=%llu bytes_new=%llu stored_added=%llu collisions=%llu "
	       "store_chunks=%llu store_chunk_bytes=%llu store_pack_bytes=%llu store_packs=%llu\n",
	       index, name ? name + 1 : path, opt->members ? "members" : "whole", opt->threads,
	       secs, (double)res->commit_ns / 1e9, (double)s->bytes_in / secs / BENCH_MB,
	       (double)res->main_cpu_ns / 1e9, (double)res->process_cpu_ns / 1e9,
	       (unsigned long long)res->files, (unsigned long long)s->bytes_in,
	       (unsigned long long)s->chunks_in, (unsigned long long)s->chunks_new,
	       (unsigned long long)s->bytes_new, (unsigned long long)s->bytes_stored,
	       (unsigned long long)s->collisions, (unsigned long long)ss->chunk_count,
	       (unsigned long long)ss->chunk_bytes, (unsigned long long)ss->pack_bytes,
	       (unsigned long long)ss->pack_count);
	fflush(stdout);
}

/* ---- main ---- */

static int parse_options(int argc, char **argv, struct options *opt)
{
	int c;

	*opt = (struct options){.threads = 2};
	while ((c = getopt(argc, argv, "t:m2d:s:kh")) != -1) {
		switch (c) {
		case 't':
			opt->threads = (unsigned)strtoul(optarg, NULL, 10);
			break;
		case 'm':
			opt->members = true;
			break;
		case '2':
			opt->twice = true;
			break;
		case 'd':
			opt->dir = optarg;
			break;
		case 's':
			opt->store = optarg;
			opt->keep = true;
			break;
		case 'k':
			opt->keep = true;
			break;
		default:
			return -EINVAL;
		}
	}
	opt->files = argv + optind;
	opt->file_count = argc - optind;
	return opt->file_count > 0 ? 0 : -EINVAL;
}

static int run(struct cairn_store *store, const struct options *opt, uint8_t *buf)
{
	int puts = opt->file_count * (opt->twice ? 2 : 1);

	for (int i = 0; i < puts; i++) {
		const char *path = opt->files[i % opt->file_count];
		struct put_result res = {0};
		struct cairn_store_stats ss;
		int r = put_file(store, opt, path, buf, &res);
		if (r == 0)
			r = cairn_store_stats(store, &ss);
		if (r < 0)
			return r;
		print_result(i + 1, path, opt, &res, &ss);
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct options opt;
	struct bench_store bs = {0};

	if (parse_options(argc, argv, &opt) < 0) {
		fprintf(stderr,
			"usage: %s [-t THREADS] [-m] [-2] [-d DIR | -s STORE] [-k] FILE...\n",
			argv[0]);
		return 2;
	}
	uint8_t *buf = malloc(READ_SIZE);
	if (!buf)
		return 1;
	int r = opt.store ? bench_store_open(&bs, opt.store) : bench_store_create(&bs, opt.dir);
	if (r < 0) {
		free(buf);
		return 1;
	}
	r = run(bs.store, &opt, buf);
	bench_store_release(&bs, opt.keep);
	free(buf);
	return r < 0 ? 1 : 0;
}
