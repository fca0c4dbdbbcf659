/* test_s3_config.c: where an S3 store is and as whom (s3_config_load),
 * by the AWS conventions: environment first, then the profile's
 * credentials and config files in a temp HOME; and that no message of the
 * loader or of a client's failed call ever holds the secret, the session
 * token or the access key. Also the client's tiny XML reader (s3_xml.c),
 * which decodes the keys of a listing. No network: a failed call goes to
 * a closed loopback port.
 */
#include "s3_internal.h"
#include "test_util.h"
#include "util.h"

#define SECRET "s3cr3t/VALUE+never-shown"
#define TOKEN  "t0ken-VALUE-never-shown"

static const char *const aws_vars[] = {
	"AWS_ACCESS_KEY_ID",   "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
	"AWS_REGION",          "AWS_DEFAULT_REGION",    "AWS_ENDPOINT_URL",
	"AWS_ENDPOINT_URL_S3", "AWS_PROFILE",           "AWS_SHARED_CREDENTIALS_FILE",
	"AWS_CONFIG_FILE",     "AWS_MAX_ATTEMPTS",
};

/* A clean AWS environment with HOME in the test's directory (each test
 * runs in its own process, so nothing leaks to the next). */
static void clean_env(void)
{
	char home[PATH_MAX];

	for (size_t i = 0; i < ARRAY_SIZE(aws_vars); i++)
		unsetenv(aws_vars[i]);
	setenv("HOME", test_path(home, sizeof(home), ""), 1);
}

/* Writes HOME/.aws/NAME. */
static void aws_file(const char *name, const char *text)
{
	char path[PATH_MAX], rel[64];

	snprintf(rel, sizeof(rel), ".aws/%s", name);
	mkdir(test_path(path, sizeof(path), ".aws"), 0700);
	test_write_file(test_path(path, sizeof(path), rel), text, strlen(text));
}

static void load_ok(struct s3_config *cfg)
{
	char why[512];
	int r = s3_config_load(cfg, why, sizeof(why));

	ck_assert_msg(r == 0, "s3_config_load: %s (%s)", strerror(-r), why);
}

/* The message of a failed load: it must not hold any credential. */
static int load_fails(char *why, size_t why_size)
{
	struct s3_config cfg = {0};
	int r = s3_config_load(&cfg, why, why_size);

	ck_assert_int_lt(r, 0);
	ck_assert_ptr_null(cfg.secret_key);
	ck_assert_msg(strlen(why) > 0 && !strchr(why, '\n'), "message: '%s'", why);
	ck_assert_ptr_null(strstr(why, SECRET));
	ck_assert_ptr_null(strstr(why, TOKEN));
	return r;
}

START_TEST(test_env_only)
{
	struct s3_config cfg;

	clean_env();
	setenv("AWS_ACCESS_KEY_ID", "test:tester", 1); /* tempauth's, colon kept */
	setenv("AWS_SECRET_ACCESS_KEY", SECRET, 1);
	setenv("AWS_SESSION_TOKEN", TOKEN, 1);
	setenv("AWS_REGION", "eu-central-1", 1);
	setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:8080/", 1);
	load_ok(&cfg);
	ck_assert_str_eq(cfg.access_key, "test:tester");
	ck_assert_str_eq(cfg.secret_key, SECRET);
	ck_assert_str_eq(cfg.session_token, TOKEN);
	ck_assert_str_eq(cfg.region, "eu-central-1");
	ck_assert_str_eq(cfg.endpoint, "http://127.0.0.1:8080");
	ck_assert(cfg.path_style);
	ck_assert_uint_eq(cfg.retries, 5);
	ck_assert_uint_eq(cfg.base_ms, 100);
	ck_assert_uint_eq(cfg.max_ms, 5000);
	ck_assert_uint_eq(cfg.timeout_s, 30);
	s3_config_free(&cfg);
	ck_assert_ptr_null(cfg.secret_key);
}
END_TEST

START_TEST(test_aws_default)
{
	struct s3_config cfg;

	clean_env();
	setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE", 1);
	setenv("AWS_SECRET_ACCESS_KEY", SECRET, 1);
	load_ok(&cfg);
	ck_assert_str_eq(cfg.region, "us-east-1");
	ck_assert_str_eq(cfg.endpoint, "https://s3.us-east-1.amazonaws.com");
	ck_assert(!cfg.path_style);
	ck_assert_ptr_null(cfg.session_token);
	s3_config_free(&cfg);
	setenv("AWS_DEFAULT_REGION", "ap-south-1", 1);
	setenv("AWS_MAX_ATTEMPTS", "3", 1);
	load_ok(&cfg);
	ck_assert_str_eq(cfg.endpoint, "https://s3.ap-south-1.amazonaws.com");
	ck_assert_uint_eq(cfg.retries, 2);
	s3_config_free(&cfg);
}
END_TEST

static const char credentials[] = "[default]\n"
				  "aws_access_key_id = DEFAULTKEY\n"
				  "aws_secret_access_key = default-secret\n"
				  "\n"
				  "# a comment\n"
				  "[work]\n"
				  "aws_access_key_id=test:tester\n"
				  "aws_secret_access_key = " SECRET "\n"
				  "aws_session_token = " TOKEN "\n";

static const char config[] = "[default]\n"
			     "region = us-west-2\n"
			     "[profile work]\n"
			     "region = eu-west-3\n"
			     "endpoint_url = https://objects.example.net:9000\n"
			     "s3 =\n"
			     "  addressing_style = virtual\n"
			     "max_attempts = 4\n"
			     "[profile other]\n"
			     "aws_access_key_id = OTHERKEY\n"
			     "aws_secret_access_key = " SECRET "\n"
			     "endpoint_url = http://minio.local:9000\n";

START_TEST(test_profile)
{
	struct s3_config cfg;

	clean_env();
	aws_file("credentials", credentials);
	aws_file("config", config);
	load_ok(&cfg);
	ck_assert_str_eq(cfg.access_key, "DEFAULTKEY");
	ck_assert_str_eq(cfg.secret_key, "default-secret");
	ck_assert_str_eq(cfg.region, "us-west-2");
	ck_assert_str_eq(cfg.endpoint, "https://s3.us-west-2.amazonaws.com");
	ck_assert(!cfg.path_style);
	s3_config_free(&cfg);

	setenv("AWS_PROFILE", "work", 1);
	load_ok(&cfg);
	ck_assert_str_eq(cfg.access_key, "test:tester");
	ck_assert_str_eq(cfg.secret_key, SECRET);
	ck_assert_str_eq(cfg.session_token, TOKEN);
	ck_assert_str_eq(cfg.region, "eu-west-3");
	ck_assert_str_eq(cfg.endpoint, "https://objects.example.net:9000");
	ck_assert(!cfg.path_style); /* addressing_style = virtual */
	ck_assert_uint_eq(cfg.retries, 3);
	s3_config_free(&cfg);

	/* Credentials from the config file; a given endpoint is path-style. */
	setenv("AWS_PROFILE", "other", 1);
	load_ok(&cfg);
	ck_assert_str_eq(cfg.access_key, "OTHERKEY");
	ck_assert_str_eq(cfg.endpoint, "http://minio.local:9000");
	ck_assert(cfg.path_style);
	s3_config_free(&cfg);
}
END_TEST

START_TEST(test_env_precedence)
{
	char path[PATH_MAX];
	struct s3_config cfg;

	clean_env();
	/* The files where AWS_SHARED_CREDENTIALS_FILE and AWS_CONFIG_FILE say. */
	test_write_file(test_path(path, sizeof(path), "creds"), credentials, strlen(credentials));
	setenv("AWS_SHARED_CREDENTIALS_FILE", path, 1);
	test_write_file(test_path(path, sizeof(path), "conf"), config, strlen(config));
	setenv("AWS_CONFIG_FILE", path, 1);
	setenv("AWS_PROFILE", "work", 1);
	load_ok(&cfg);
	ck_assert_str_eq(cfg.access_key, "test:tester");
	s3_config_free(&cfg);

	setenv("AWS_ACCESS_KEY_ID", "ENVKEY", 1);
	setenv("AWS_SECRET_ACCESS_KEY", "env-secret", 1);
	setenv("AWS_REGION", "sa-east-1", 1);
	setenv("AWS_DEFAULT_REGION", "af-south-1", 1);
	setenv("AWS_ENDPOINT_URL", "http://generic:1", 1);
	load_ok(&cfg);
	ck_assert_str_eq(cfg.access_key, "ENVKEY");
	ck_assert_str_eq(cfg.secret_key, "env-secret");
	ck_assert_ptr_null(cfg.session_token); /* the profile's is not mixed in */
	ck_assert_str_eq(cfg.region, "sa-east-1");
	ck_assert_str_eq(cfg.endpoint, "http://generic:1");
	s3_config_free(&cfg);

	setenv("AWS_ENDPOINT_URL_S3", "http://s3-only:2", 1);
	load_ok(&cfg);
	ck_assert_str_eq(cfg.endpoint, "http://s3-only:2");
	/* The profile's addressing_style still applies to a given endpoint. */
	ck_assert(!cfg.path_style);
	s3_config_free(&cfg);
}
END_TEST

START_TEST(test_missing_credentials)
{
	char why[512];

	clean_env();
	ck_assert_int_eq(load_fails(why, sizeof(why)), -ENOKEY);
	ck_assert_str_eq(
		why,
		"no S3 credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE");

	setenv("AWS_SECRET_ACCESS_KEY", SECRET, 1);
	ck_assert_int_eq(load_fails(why, sizeof(why)), -EINVAL);
	ck_assert_ptr_nonnull(strstr(why, "AWS_ACCESS_KEY_ID"));
	unsetenv("AWS_SECRET_ACCESS_KEY");

	aws_file("credentials", credentials);
	setenv("AWS_PROFILE", "nosuch", 1);
	ck_assert_int_eq(load_fails(why, sizeof(why)), -ENOKEY);
	ck_assert_ptr_nonnull(strstr(why, "'nosuch'"));

	aws_file("credentials", "[half]\naws_secret_access_key = " SECRET "\n");
	setenv("AWS_PROFILE", "half", 1);
	ck_assert_int_eq(load_fails(why, sizeof(why)), -ENOKEY);
	ck_assert_ptr_nonnull(strstr(why, "'half'"));
}
END_TEST

START_TEST(test_bad_endpoint)
{
	char why[512];

	clean_env();
	setenv("AWS_ACCESS_KEY_ID", "KEY", 1);
	setenv("AWS_SECRET_ACCESS_KEY", SECRET, 1);
	setenv("AWS_ENDPOINT_URL", "ftp://host", 1);
	ck_assert_int_eq(load_fails(why, sizeof(why)), -EINVAL);
	ck_assert_ptr_nonnull(strstr(why, "ftp://host"));
	setenv("AWS_ENDPOINT_URL", "http://host/path", 1);
	ck_assert_int_eq(load_fails(why, sizeof(why)), -EINVAL);
	/* A password in the URL is not echoed. */
	setenv("AWS_ENDPOINT_URL", "http://user:" SECRET "@host", 1);
	ck_assert_int_eq(load_fails(why, sizeof(why)), -EINVAL);
}
END_TEST

/* A call that cannot connect fails after its tries with a message naming
 * the call and the key, and no credential. */
START_TEST(test_client_message)
{
	struct s3_config cfg;
	struct s3_client *client;
	struct s3_buf buf = {0};
	uint64_t requests;

	clean_env();
	setenv("AWS_ACCESS_KEY_ID", "test:tester", 1);
	setenv("AWS_SECRET_ACCESS_KEY", SECRET, 1);
	setenv("AWS_SESSION_TOKEN", TOKEN, 1);
	/* Port 1 on loopback: refused at once. */
	setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:1", 1);
	setenv("AWS_MAX_ATTEMPTS", "3", 1);
	load_ok(&cfg);
	cfg.base_ms = cfg.max_ms = 1;
	ck_assert_int_eq(s3_client_new(&cfg, "bucket", &client), 0);
	s3_config_free(&cfg);
	ck_assert_int_eq(s3_get(client, "packs/p 1", 0, 10, &buf), -EIO);
	const char *msg = s3_error(client);
	ck_assert_msg(strncmp(msg, "GET s3://bucket/packs/p 1 bytes 0-9: ", 37) == 0, "%s", msg);
	ck_assert_msg(strstr(msg, "(after 3 tries)"), "%s", msg);
	ck_assert_ptr_null(strstr(msg, SECRET));
	ck_assert_ptr_null(strstr(msg, TOKEN));
	ck_assert_ptr_null(strstr(msg, "tester"));
	s3_counters(client, &requests, NULL);
	ck_assert_uint_eq(requests, 3);
	ck_assert_int_eq(s3_put(client, "k", "x", 1), -EIO);
	ck_assert_ptr_null(strstr(s3_error(client), SECRET));
	s3_client_free(client);
}
END_TEST

START_TEST(test_xml)
{
	static const char page[] =
		"<ListBucketResult><IsTruncated>true</IsTruncated>"
		"<Contents><Key>a&amp;b &lt;c&gt; &#233;&#x263A;</Key><Size>12</Size>"
		"<LastModified>2024-02-29T12:34:56.000Z</LastModified></Contents>"
		"<NextContinuationToken>tok/=</NextContinuationToken></ListBucketResult>";
	const char *pos = page, *end = page + strlen(page), *text;
	size_t len;
	char code[64];

	text = s3_xml_find(&pos, end, "Key", &len);
	ck_assert_ptr_nonnull(text);
	_cleanup_free_ char *key = s3_xml_text(text, len);
	ck_assert_str_eq(key, "a&b <c> \xc3\xa9\xe2\x98\xba");
	text = s3_xml_find(&pos, end, "LastModified", &len);
	ck_assert_int_eq(s3_xml_time(text, len), 1709210096);
	ck_assert_ptr_null(s3_xml_text("&bogus;", 7));
	ck_assert_ptr_null(s3_xml_text("&#0;", 4));
	ck_assert_ptr_null(s3_xml_find(&pos, end, "Key", &len));

	s3_xml_error_code("<Error><Code>SlowDown</Code></Error>", 36, code, sizeof(code));
	ck_assert_str_eq(code, "SlowDown");
	/* Anything but a word is not shown. */
	s3_xml_error_code("<Error><Code>a b</Code></Error>", 31, code, sizeof(code));
	ck_assert_str_eq(code, "");
	_cleanup_free_ char *enc = s3_uri_encode("a b/c+~%", true);
	ck_assert_str_eq(enc, "a%20b/c%2B~%25");
	_cleanup_free_ char *enc_query = s3_uri_encode("p/q=", false);
	ck_assert_str_eq(enc_query, "p%2Fq%3D");
}
END_TEST

static Suite *s3_config_suite(void)
{
	Suite *suite = suite_create("s3_config");
	const struct test_case cases[] = {
		{"env_only", test_env_only, 1, 10},
		{"aws_default", test_aws_default, 1, 10},
		{"profile", test_profile, 1, 10},
		{"env_precedence", test_env_precedence, 1, 10},
		{"missing_credentials", test_missing_credentials, 1, 10},
		{"bad_endpoint", test_bad_endpoint, 1, 10},
		{"client_message", test_client_message, 1, 20},
		{"xml", test_xml, 1, 10},
	};

	return test_suite_add(suite, cases, ARRAY_SIZE(cases));
}

int main(void)
{
	return test_run(s3_config_suite());
}
