/* json.c: the bits of JSON that --json output needs: strings escaped so
 * that any bytes give valid JSON and come back as the same bytes (names in
 * archives and store paths are not always UTF-8), and ratios, which may be
 * infinite, as numbers or null; and names escaped for a terminal, which
 * share the UTF-8 check.
 */
#include <stdio.h>

#include "cli.h"

/* The length of the well-formed UTF-8 sequence at p (RFC 3629: no
 * overlong forms, no surrogates, nothing above U+10FFFF), or 0 when the
 * byte at p does not start one. p is NUL-terminated, so reading stops at
 * the NUL, which is never a continuation byte. */
static size_t utf8_length(const unsigned char *p)
{
	size_t n;
	unsigned char lo = 0x80, hi = 0xbf; /* bounds of the second byte */

	if (*p < 0xc2)
		return 0; /* ASCII is the caller's; 0x80-0xc1 never start one */
	if (*p < 0xe0) {
		n = 2;
	} else if (*p < 0xf0) {
		n = 3;
		lo = *p == 0xe0 ? 0xa0 : 0x80; /* overlong */
		hi = *p == 0xed ? 0x9f : 0xbf; /* surrogates */
	} else if (*p < 0xf5) {
		n = 4;
		lo = *p == 0xf0 ? 0x90 : 0x80; /* overlong */
		hi = *p == 0xf4 ? 0x8f : 0xbf; /* above U+10FFFF */
	} else {
		return 0;
	}
	if (p[1] < lo || p[1] > hi)
		return 0;
	for (size_t i = 2; i < n; i++)
		if ((p[i] & 0xc0) != 0x80)
			return 0;
	return n;
}

void cli_json_string(const char *s)
{
	putchar('"');
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		size_t n;
		if (*p == '"' || *p == '\\')
			printf("\\%c", *p);
		else if (*p < 0x20 || *p == 0x7f)
			printf("\\u%04x", *p);
		else if (*p < 0x80)
			putchar(*p);
		else if ((n = utf8_length(p)) > 0) {
			fwrite(p, 1, n, stdout);
			p += n - 1;
		} else {
			/* A byte that is not UTF-8: a lone low surrogate, as
			 * Python's surrogateescape decodes it, so that
			 * os.fsencode(json.loads(...)) gives the bytes back. */
			printf("\\udc%02x", *p);
		}
	}
	putchar('"');
}

void cli_put_escaped(FILE *f, const char *s)
{
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		size_t n;
		if (*p == '\\')
			fputs("\\\\", f);
		else if (*p >= 0x20 && *p < 0x7f)
			fputc(*p, f);
		else if (*p >= 0x80 && (n = utf8_length(p)) > 0 && !(p[0] == 0xc2 && p[1] < 0xa0)) {
			/* Printable UTF-8 as is; C1 controls (U+0080 to
			 * U+009F, which some terminals obey) escaped. */
			fwrite(p, 1, n, f);
			p += n - 1;
		} else {
			fprintf(f, "\\%03o", *p);
		}
	}
}

void cli_json_ratio(uint64_t a, uint64_t b)
{
	if (a > 0 && b == 0)
		printf("null");
	else
		printf("%.4f", a ? (double)a / (double)b : 1.0);
}

const char *cli_ratio(uint64_t a, uint64_t b, char *buf, size_t size)
{
	if (a > 0 && b == 0)
		snprintf(buf, size, "inf");
	else
		snprintf(buf, size, "%.2fx", a ? (double)a / (double)b : 1.0);
	return buf;
}
