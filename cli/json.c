/* json.c: the bits of JSON that --json output needs: strings escaped so
 * that any bytes (store paths and archive names are not always UTF-8) give
 * valid JSON, and ratios, which may be infinite, as numbers or null.
 */
#include <stdio.h>

#include "cli.h"

void cli_json_string(const char *s)
{
	putchar('"');
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p == '"' || *p == '\\')
			printf("\\%c", *p);
		else if (*p < 0x20 || *p == 0x7f)
			printf("\\u%04x", *p);
		else if (*p < 0x80)
			putchar(*p);
		else {
			size_t n = *p >= 0xf0 ? 4 : *p >= 0xe0 ? 3 : *p >= 0xc2 ? 2 : 0;
			size_t ok = n > 0;
			for (size_t i = 1; ok && i < n; i++)
				ok = (p[i] & 0xc0) == 0x80;
			if (!ok) {
				printf("\\u%04x", *p);
				continue;
			}
			fwrite(p, 1, n, stdout);
			p += n - 1;
		}
	}
	putchar('"');
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
