/* s3_xml.c: just enough XML to read S3's answers (ListObjectsV2 pages,
 * error bodies, multipart uploads): elements found by name, their text with
 * the five named entities and character references decoded. No DTDs, no
 * attributes, no namespaces beyond ignoring them: the engine's answers are
 * flat and regular, and a full parser would be a second library to link.
 */
#include "s3_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

const char *s3_xml_find(const char **pos, const char *end, const char *tag, size_t *len)
{
	char open[80], close[80];
	int open_len = snprintf(open, sizeof(open), "<%s>", tag);
	int close_len = snprintf(close, sizeof(close), "</%s>", tag);

	if (open_len >= (int)sizeof(open) || close_len >= (int)sizeof(close) || *pos >= end)
		return NULL;
	const char *start = memmem(*pos, (size_t)(end - *pos), open, (size_t)open_len);
	if (!start)
		return NULL;
	start += open_len;
	const char *stop = memmem(start, (size_t)(end - start), close, (size_t)close_len);
	if (!stop)
		return NULL;
	*len = (size_t)(stop - start);
	*pos = stop + close_len;
	return start;
}

/* Appends code point cp as UTF-8; returns the bytes written, 0 if invalid. */
static size_t put_utf8(char *out, unsigned long cp)
{
	if (cp == 0 || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
		return 0;
	if (cp < 0x80) {
		out[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		out[0] = (char)(0xC0 | (cp >> 6));
		out[1] = (char)(0x80 | (cp & 0x3F));
		return 2;
	}
	if (cp < 0x10000) {
		out[0] = (char)(0xE0 | (cp >> 12));
		out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
		out[2] = (char)(0x80 | (cp & 0x3F));
		return 3;
	}
	out[0] = (char)(0xF0 | (cp >> 18));
	out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
	out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
	out[3] = (char)(0x80 | (cp & 0x3F));
	return 4;
}

/* Decodes the entity at text (after its '&', up to its ';') into out;
 * returns the bytes written, 0 if unknown. */
static size_t decode_entity(const char *name, size_t len, char *out)
{
	static const struct {
		const char *name;
		char c;
	} named[] = {{"amp", '&'}, {"lt", '<'}, {"gt", '>'}, {"quot", '"'}, {"apos", '\''}};

	for (size_t i = 0; i < sizeof(named) / sizeof(named[0]); i++) {
		if (strlen(named[i].name) == len && memcmp(name, named[i].name, len) == 0) {
			*out = named[i].c;
			return 1;
		}
	}
	if (len < 2 || name[0] != '#' || len > 10)
		return 0;
	char digits[12];
	bool hex = name[1] == 'x' || name[1] == 'X';
	memcpy(digits, name + (hex ? 2 : 1), len - (hex ? 2 : 1));
	digits[len - (hex ? 2 : 1)] = '\0';
	char *stop;
	unsigned long cp = strtoul(digits, &stop, hex ? 16 : 10);
	if (digits[0] == '\0' || *stop != '\0')
		return 0;
	return put_utf8(out, cp);
}

char *s3_xml_text(const char *text, size_t len)
{
	/* A character reference is at least 4 bytes and decodes to at most 4. */
	char *out = malloc(len + 1), *p = out;

	if (!out)
		return NULL;
	for (size_t i = 0; i < len;) {
		if (text[i] != '&') {
			*p++ = text[i++];
			continue;
		}
		const char *semi = memchr(text + i, ';', len - i);
		size_t n = semi ? decode_entity(text + i + 1, (size_t)(semi - text - i - 1), p) : 0;
		if (n == 0) {
			free(out);
			return NULL;
		}
		p += n;
		i = (size_t)(semi - text) + 1;
	}
	*p = '\0';
	return out;
}

void s3_xml_error_code(const void *body, size_t size, char *code, size_t code_size)
{
	const char *pos = body, *end = pos + size, *text;
	size_t len;

	code[0] = '\0';
	if (!body)
		return;
	text = s3_xml_find(&pos, end, "Code", &len);
	if (!text || len >= code_size)
		return;
	/* Codes are words; anything else is not shown. */
	for (size_t i = 0; i < len; i++) {
		char ch = text[i];
		if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
		      (ch >= '0' && ch <= '9') || ch == '.' || ch == '-' || ch == '_'))
			return;
	}
	memcpy(code, text, len);
	code[len] = '\0';
}

int64_t s3_xml_time(const char *text, size_t len)
{
	char buf[40];
	struct tm tm = {0};
	int n = 0;

	if (len >= sizeof(buf))
		return -1;
	memcpy(buf, text, len);
	buf[len] = '\0';
	if (sscanf(buf, "%4d-%2d-%2dT%2d:%2d:%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
		   &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &n) != 6)
		return -1;
	tm.tm_year -= 1900;
	tm.tm_mon -= 1;
	/* Fractions of a second and the 'Z' after them are dropped. */
	return (int64_t)timegm(&tm);
}
