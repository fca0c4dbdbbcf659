/* test_curl_dl.c: libcurl opened on first use (store/curl_dl.c). Every
 * kind of argument the forwarders pass on (a long, a pointer, a callback,
 * an off_t, an info pointer) reaches libcurl intact: a transfer of a
 * file:// URL through the easy and the multi interface, with a range, a
 * write callback and a speed limit, gives back the right bytes and the
 * right counters.
 */
#include "test_store_util.h"

#include <curl/curl.h>

#include "curl_dl.h"

struct sink {
	char data[256];
	size_t size;
};

static size_t on_write(char *data, size_t size, size_t count, void *userdata)
{
	struct sink *sink = userdata;
	size_t n = size * count;

	if (sink->size + n > sizeof(sink->data))
		return 0;
	memcpy(sink->data + sink->size, data, n);
	sink->size += n;
	return n;
}

/* A file holding the 26 letters; its file:// URL in url. */
static void make_file(char *url, size_t size)
{
	char path[PATH_MAX];

	test_write_file(test_path(path, sizeof(path), "letters"), "abcdefghijklmnopqrstuvwxyz", 26);
	snprintf(url, size, "file://%s", path);
}

/* Sets up a ranged download of url into sink. */
static CURL *ranged(const char *url, struct sink *sink)
{
	CURL *curl = curl_easy_init();

	ck_assert_ptr_nonnull(curl);
	ck_assert_int_eq(curl_easy_setopt(curl, CURLOPT_URL, url), CURLE_OK);
	ck_assert_int_eq(curl_easy_setopt(curl, CURLOPT_RANGE, "3-9"), CURLE_OK);
	ck_assert_int_eq(curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_write), CURLE_OK);
	ck_assert_int_eq(curl_easy_setopt(curl, CURLOPT_WRITEDATA, sink), CURLE_OK);
	ck_assert_int_eq(curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L), CURLE_OK);
	ck_assert_int_eq(curl_easy_setopt(curl, CURLOPT_MAX_RECV_SPEED_LARGE, (curl_off_t)1 << 30),
			 CURLE_OK);
	return curl;
}

START_TEST(test_easy)
{
	char url[PATH_MAX + 16], why[300];
	struct sink sink = {0};
	curl_off_t got = 0;

	ck_assert_int_eq(curl_dl_load(why, sizeof(why)), 0);
	ck_assert_int_eq(curl_dl_load(why, sizeof(why)), 0); /* once is enough */
	ck_assert_ptr_nonnull(curl_version_info(CURLVERSION_NOW));
	make_file(url, sizeof(url));
	CURL *curl = ranged(url, &sink);
	ck_assert_int_eq(curl_easy_perform(curl), CURLE_OK);
	ck_assert_int_eq(sink.size, 7);
	ck_assert_mem_eq(sink.data, "defghij", 7);
	ck_assert_int_eq(curl_easy_getinfo(curl, CURLINFO_SIZE_DOWNLOAD_T, &got), CURLE_OK);
	ck_assert_int_eq(got, 7);
	ck_assert_str_eq(curl_easy_strerror(CURLE_OK), "No error");
	char *escaped = curl_easy_escape(curl, "a b/c", 0);
	ck_assert_str_eq(escaped, "a%20b%2Fc");
	curl_free(escaped);
	struct curl_slist *list = curl_slist_append(NULL, "X-Test: 1");
	ck_assert_ptr_nonnull(list);
	curl_slist_free_all(list);
	curl_easy_reset(curl);
	curl_easy_cleanup(curl);
}
END_TEST

START_TEST(test_multi)
{
	char url[PATH_MAX + 16], why[300];
	struct sink sinks[3] = {0};
	CURL *handles[3];
	int running = 1, queued, done = 0;

	ck_assert_int_eq(curl_dl_load(why, sizeof(why)), 0);
	make_file(url, sizeof(url));
	CURLM *multi = curl_multi_init();
	ck_assert_ptr_nonnull(multi);
	ck_assert_int_eq(curl_multi_setopt(multi, CURLMOPT_MAXCONNECTS, 4L), CURLM_OK);
	for (int i = 0; i < 3; i++) {
		handles[i] = ranged(url, &sinks[i]);
		ck_assert_int_eq(curl_multi_add_handle(multi, handles[i]), CURLM_OK);
	}
	while (running) {
		ck_assert_int_eq(curl_multi_perform(multi, &running), CURLM_OK);
		if (running)
			ck_assert_int_eq(curl_multi_poll(multi, NULL, 0, 1000, NULL), CURLM_OK);
	}
	CURLMsg *msg;
	while ((msg = curl_multi_info_read(multi, &queued))) {
		ck_assert_int_eq(msg->msg, CURLMSG_DONE);
		ck_assert_int_eq(msg->data.result, CURLE_OK);
		done++;
	}
	ck_assert_int_eq(done, 3);
	for (int i = 0; i < 3; i++) {
		ck_assert_mem_eq(sinks[i].data, "defghij", 7);
		ck_assert_int_eq(curl_multi_remove_handle(multi, handles[i]), CURLM_OK);
		curl_easy_cleanup(handles[i]);
	}
	ck_assert_str_eq(curl_multi_strerror(CURLM_OK), "No error");
	ck_assert_int_eq(curl_multi_cleanup(multi), CURLM_OK);
}
END_TEST

static Suite *curl_dl_suite(void)
{
	Suite *suite = suite_create("curl_dl");
	const struct test_case cases[] = {
		{"easy", test_easy, 1, 10},
		{"multi", test_multi, 1, 10},
	};

	return test_suite_add(suite, cases, ARRAY_SIZE(cases));
}

int main(void)
{
	return test_run(curl_dl_suite());
}
