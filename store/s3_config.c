/* s3_config.c: where an S3 store is and as whom, by the conventions the
 * AWS tools set (environment, then the shared credentials and config files
 * of a profile), so that a user's existing setup works unchanged. The
 * files are INI with AWS's one twist: a key with no value opens indented
 * sub-keys ("s3 =" then "  addressing_style = path"), read here as
 * "s3.addressing_style". Messages name files, profiles and variables,
 * never a value read from them.
 */
#include "s3_internal.h"

#include "util.h"

#include <ctype.h>
#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *env(const char *name)
{
	const char *value = getenv(name);

	return value && *value ? value : NULL;
}

static char *trim(char *s)
{
	while (isspace((unsigned char)*s))
		s++;
	size_t len = strlen(s);
	while (len > 0 && isspace((unsigned char)s[len - 1]))
		s[--len] = '\0';
	return s;
}

/* The path of an AWS file: $VAR, else ~/.aws/NAME. */
static char *aws_file(const char *var, const char *name)
{
	const char *home = env("HOME");
	char *path = NULL;

	if (env(var))
		return strdup(env(var));
	if (!home) {
		struct passwd *pw = getpwuid(getuid());
		home = pw ? pw->pw_dir : NULL;
	}
	if (!home || asprintf(&path, "%s/.aws/%s", home, name) < 0)
		return NULL;
	return path;
}

static void fclosep(FILE **f)
{
	if (*f)
		fclose(*f);
}

/* The value of key ("name" or "parent.name") in section of the INI file
 * at path, a new string; NULL when the file, section or key is missing.
 * *found_section says whether the section is there. */
static char *ini_get(const char *path, const char *section, const char *key, bool *found_section)
{
	_cleanup_(fclosep) FILE *f = path ? fopen(path, "re") : NULL;
	_cleanup_free_ char *line = NULL;
	char parent[64] = "";
	size_t cap = 0;
	bool in_section = false;

	if (!f)
		return NULL;
	while (getline(&line, &cap, f) >= 0) {
		bool indented = line[0] == ' ' || line[0] == '\t';
		char *s = trim(line);
		if (*s == '\0' || *s == '#' || *s == ';')
			continue;
		if (*s == '[') {
			char *close = strchr(s, ']');
			if (close)
				*close = '\0';
			in_section = strcmp(trim(s + 1), section) == 0;
			if (in_section && found_section)
				*found_section = true;
			parent[0] = '\0';
			continue;
		}
		char *eq = strchr(s, '=');
		if (!in_section || !eq)
			continue;
		*eq = '\0';
		char *name = trim(s), *value = trim(eq + 1);
		if (!indented)
			parent[0] = '\0';
		if (!indented && *value == '\0' && strlen(name) < sizeof(parent)) {
			snprintf(parent, sizeof(parent), "%s", name);
			continue;
		}
		char full[160];
		snprintf(full, sizeof(full), "%s%s%s", indented ? parent : "",
			 indented && parent[0] ? "." : "", name);
		if (strcmp(full, key) == 0)
			return strdup(value);
	}
	return NULL;
}

/* The profile's files and section names. */
struct profile {
	const char *name;
	char *credentials, *config; /* paths */
	char config_section[96];
	bool in_credentials, in_config;
};

static char *profile_config(struct profile *p, const char *key)
{
	char *value = ini_get(p->config, p->config_section, key, &p->in_config);

	/* [profile default] is accepted for [default]. */
	if (!value && strcmp(p->name, "default") == 0)
		value = ini_get(p->config, "profile default", key, &p->in_config);
	return value;
}

static char *profile_get(struct profile *p, const char *key)
{
	char *value = ini_get(p->credentials, p->name, key, &p->in_credentials);

	return value ? value : profile_config(p, key);
}

static int load_credentials(struct s3_config *cfg, struct profile *p, char *why, size_t why_size)
{
	const char *id = env("AWS_ACCESS_KEY_ID"), *secret = env("AWS_SECRET_ACCESS_KEY");

	if (id || secret) {
		if (!id || !secret) {
			snprintf(why, why_size, "%s is set but %s is not",
				 id ? "AWS_ACCESS_KEY_ID" : "AWS_SECRET_ACCESS_KEY",
				 id ? "AWS_SECRET_ACCESS_KEY" : "AWS_ACCESS_KEY_ID");
			return -EINVAL;
		}
		cfg->access_key = strdup(id);
		cfg->secret_key = strdup(secret);
		if (env("AWS_SESSION_TOKEN"))
			cfg->session_token = strdup(env("AWS_SESSION_TOKEN"));
		if (!cfg->access_key || !cfg->secret_key ||
		    (env("AWS_SESSION_TOKEN") && !cfg->session_token))
			return -ENOMEM;
		return 0;
	}
	cfg->access_key = profile_get(p, "aws_access_key_id");
	cfg->secret_key = profile_get(p, "aws_secret_access_key");
	cfg->session_token = profile_get(p, "aws_session_token");
	if (cfg->access_key && cfg->secret_key)
		return 0;
	if (env("AWS_PROFILE") && !p->in_credentials && !p->in_config)
		snprintf(why, why_size,
			 "no S3 credentials: AWS profile '%s' is in neither %s nor %s", p->name,
			 p->credentials ? p->credentials : "~/.aws/credentials",
			 p->config ? p->config : "~/.aws/config");
	else if (cfg->access_key || cfg->secret_key)
		snprintf(
			why, why_size,
			"no S3 credentials: AWS profile '%s' has only one of aws_access_key_id and aws_secret_access_key",
			p->name);
	else
		snprintf(
			why, why_size,
			"no S3 credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE");
	return -ENOKEY;
}

static int load_endpoint(struct s3_config *cfg, struct profile *p, char *why, size_t why_size)
{
	_cleanup_free_ char *style = profile_config(p, "s3.addressing_style");
	const char *given =
		env("AWS_ENDPOINT_URL_S3") ? env("AWS_ENDPOINT_URL_S3") : env("AWS_ENDPOINT_URL");

	if (given)
		cfg->endpoint = strdup(given);
	else
		cfg->endpoint = profile_config(p, "s3.endpoint_url");
	if (!cfg->endpoint && !given)
		cfg->endpoint = profile_config(p, "endpoint_url");
	bool aws = !cfg->endpoint;
	if (aws && asprintf(&cfg->endpoint, "https://s3.%s.amazonaws.com", cfg->region) < 0) {
		cfg->endpoint = NULL;
		return -ENOMEM;
	}
	if (!cfg->endpoint)
		return -ENOMEM;
	size_t len = strlen(cfg->endpoint);
	while (len > 0 && cfg->endpoint[len - 1] == '/')
		cfg->endpoint[--len] = '\0';
	if (strchr(cfg->endpoint, '@')) {
		/* Not echoed: it may hold a user and password. */
		snprintf(
			why, why_size,
			"bad S3 endpoint: no user or password in the URL (credentials come from AWS_ACCESS_KEY_ID or the profile)");
		return -EINVAL;
	}
	const char *host = strstr(cfg->endpoint, "://");
	if (!host || host[3] == '\0' || strchr(host + 3, '/') ||
	    (strncmp(cfg->endpoint, "http://", 7) != 0 &&
	     strncmp(cfg->endpoint, "https://", 8) != 0)) {
		snprintf(why, why_size,
			 "bad S3 endpoint '%s': want http://HOST[:PORT] or https://HOST[:PORT]",
			 cfg->endpoint);
		return -EINVAL;
	}
	cfg->path_style = style ? strcmp(style, "virtual") != 0 : !aws;
	if (style && strcmp(style, "path") == 0)
		cfg->path_style = true;
	return 0;
}

static unsigned max_attempts(struct profile *p)
{
	_cleanup_free_ char *from_profile = NULL;
	const char *text = env("AWS_MAX_ATTEMPTS");

	if (!text)
		text = from_profile = profile_config(p, "max_attempts");
	long n = text ? strtol(text, NULL, 10) : 0;
	return n >= 1 && n <= 100 ? (unsigned)n : 6;
}

static int load_all(struct s3_config *cfg, struct profile *p, char *why, size_t why_size)
{
	const char *region = env("AWS_REGION") ? env("AWS_REGION") : env("AWS_DEFAULT_REGION");
	int r;

	cfg->region = region ? strdup(region) : profile_config(p, "region");
	if (!cfg->region)
		cfg->region = strdup("us-east-1");
	if (!cfg->region)
		return -ENOMEM;
	r = load_credentials(cfg, p, why, why_size);
	if (r == 0)
		r = load_endpoint(cfg, p, why, why_size);
	cfg->retries = max_attempts(p) - 1;
	cfg->base_ms = 100;
	cfg->max_ms = 5000;
	cfg->timeout_s = 30;
	return r;
}

int s3_config_load(struct s3_config *cfg, char *why, size_t why_size)
{
	struct s3_config loaded = {0};
	struct profile p = {.name = env("AWS_PROFILE") ? env("AWS_PROFILE") : "default"};
	int r;

	p.credentials = aws_file("AWS_SHARED_CREDENTIALS_FILE", "credentials");
	p.config = aws_file("AWS_CONFIG_FILE", "config");
	if (strcmp(p.name, "default") == 0)
		snprintf(p.config_section, sizeof(p.config_section), "default");
	else
		snprintf(p.config_section, sizeof(p.config_section), "profile %s", p.name);
	if (why_size > 0)
		why[0] = '\0';
	r = load_all(&loaded, &p, why, why_size);
	free(p.credentials);
	free(p.config);
	if (r < 0) {
		if (r == -ENOMEM)
			snprintf(why, why_size, "out of memory loading the S3 configuration");
		s3_config_free(&loaded);
		return r;
	}
	*cfg = loaded;
	return 0;
}

static void wipe_free(char *s)
{
	if (s) {
		explicit_bzero(s, strlen(s));
		free(s);
	}
}

void s3_config_free(struct s3_config *cfg)
{
	if (!cfg)
		return;
	free(cfg->endpoint);
	free(cfg->region);
	wipe_free(cfg->access_key);
	wipe_free(cfg->secret_key);
	wipe_free(cfg->session_token);
	*cfg = (struct s3_config){0};
}
