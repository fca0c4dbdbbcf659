/* add_input.c: the options of `cairn add` (and of `cairn mount ARCHIVE`,
 * which adds) that say how the input is read: --strip-components,
 * --encoding, and the passphrases of encrypted entries. A password is never
 * an argument (it would show in ps and in shell history): it comes from a
 * file's first line or from a prompt on the terminal with echo off, and is
 * wiped once the add is done. No message prints it.
 */
#include <fcntl.h>
#include <langinfo.h>
#include <locale.h>
#include <stdio.h>
#include <string.h>
#include <termios.h>

#include "cli.h"

int cli_add_input_option(struct cli *cli, int c, const char *arg, struct cli_add_options *add)
{
	long value;

	switch (c) {
	case CLI_OPT_STRIP_COMPONENTS:
		if (cli_parse_int(arg, 0, 4096, &value) < 0)
			return cli_usage_error(cli, "invalid --strip-components '%s'", arg);
		add->strip_components = (unsigned)value;
		return 0;
	case CLI_OPT_ENCODING:
		add->charset = arg;
		return 0;
	case CLI_OPT_PASSWORD_FILE:
		if (add->password_file_count == ARRAY_SIZE(add->password_files))
			return cli_usage_error(cli, "at most %zu --password-file",
					       ARRAY_SIZE(add->password_files));
		add->password_files[add->password_file_count++] = arg;
		return 0;
	default:
		return -1;
	}
}

void cli_charset_locale(void)
{
	const char *codeset = nl_langinfo(CODESET);

	if (strcmp(codeset, "UTF-8") != 0 && strcmp(codeset, "utf8") != 0)
		setlocale(LC_CTYPE, "C.UTF-8");
}

/* ---- passwords ---- */

/* The first line of path, without its newline. */
static int read_first_line(const char *path, char **ret)
{
	char buf[1024];
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);

	if (fd < 0)
		return -errno;
	ssize_t n = cairn_pread_full(fd, buf, sizeof(buf) - 1, 0);
	close(fd);
	if (n < 0)
		return (int)n;
	buf[n] = '\0';
	buf[strcspn(buf, "\r\n")] = '\0';
	*ret = strdup(buf);
	explicit_bzero(buf, sizeof(buf));
	return *ret ? 0 : -ENOMEM;
}

int cli_passwords_load(struct cli_passwords *pw, const struct cli_add_options *add)
{
	*pw = (struct cli_passwords){
		.prompt = isatty(STDIN_FILENO) || isatty(STDERR_FILENO),
	};
	for (size_t i = 0; i < add->password_file_count; i++) {
		int r = read_first_line(add->password_files[i], &pw->lines[pw->count]);
		if (r < 0) {
			cli_error("--password-file %s: %s", add->password_files[i], strerror(-r));
			cli_passwords_release(pw);
			return EXIT_ERROR;
		}
		pw->count++;
	}
	return EXIT_OK;
}

void cli_passwords_release(struct cli_passwords *pw)
{
	for (size_t i = 0; i < pw->count; i++) {
		explicit_bzero(pw->lines[i], strlen(pw->lines[i]));
		free(pw->lines[i]);
	}
	explicit_bzero(pw->typed, sizeof(pw->typed));
	pw->count = 0;
}

/* Turns the terminal's echo off (input typed ahead is dropped, as getpass
 * does) before the prompt is shown, so nothing typed after it is echoed.
 * Returns whether old holds what to restore. */
static bool echo_off(int tty, struct termios *old)
{
	struct termios quiet;

	if (tcgetattr(tty, old) < 0)
		return false;
	quiet = *old;
	quiet.c_lflag &= ~(tcflag_t)(ECHO | ECHONL);
	quiet.c_lflag |= ICANON;
	return tcsetattr(tty, TCSAFLUSH, &quiet) == 0;
}

static void show_prompt(int tty, const char *archive, const char *entry)
{
	FILE *f = fdopen(dup(tty), "w");

	if (!f)
		return;
	fputs("Password for ", f);
	cli_put_escaped(f, archive);
	if (entry) {
		fputs(" (", f);
		cli_put_escaped(f, entry);
		fputs(")", f);
	}
	fputs(": ", f);
	fclose(f);
}

/* One line from tty, without its line end. */
static size_t read_line(int tty, char *buf, size_t size)
{
	size_t len = 0;

	while (len + 1 < size) {
		char c;
		ssize_t n = read(tty, &c, 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0 || c == '\n' || c == '\r')
			break;
		buf[len++] = c;
	}
	buf[len] = '\0';
	return len;
}

const char *cli_passwords_prompt(void *userdata, const char *archive, const char *entry)
{
	struct cli_passwords *pw = userdata;
	struct termios old;

	if (!pw->prompt)
		return NULL;
	int tty = open("/dev/tty", O_RDWR | O_CLOEXEC | O_NOCTTY);
	if (tty < 0)
		return NULL;
	bool restore = echo_off(tty, &old);
	show_prompt(tty, archive, entry);
	size_t len = read_line(tty, pw->typed, sizeof(pw->typed));
	if (restore)
		tcsetattr(tty, TCSAFLUSH, &old);
	(void)!write(tty, "\n", 1);
	close(tty);
	return len > 0 ? pw->typed : NULL;
}

/* ---- mount -o encoding= ---- */

void cli_take_encoding_option(char *opts, char *charset, size_t size)
{
	char *out = opts;

	/* Compacted in place: what is kept only moves left. */
	for (const char *p = opts; *p;) {
		size_t len = strcspn(p, ",");
		if (len > 9 && strncmp(p, "encoding=", 9) == 0) {
			snprintf(charset, size, "%.*s", (int)(len - 9), p + 9);
		} else if (len > 0) {
			if (out != opts)
				*out++ = ',';
			memmove(out, p, len);
			out += len;
		}
		p += len + (p[len] == ',');
	}
	*out = '\0';
}
