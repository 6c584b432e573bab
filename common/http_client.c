#include "http_client.h"

#include "buf.h"
#include "err.h"
#include "log.h"
#include "loop.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_RESPONSE (1024 * 1024)

struct http_client {
	struct loop *lp;
	CURLM *multi;
	struct loop_timer *timer;
	char *ca_file;
	struct curl_slist *connect_to; /* host:port:to_host:to_port overrides */
	struct http_call *calls;    /* in flight */
};

struct http_call {
	struct http_client *c;
	struct http_call *prev, *next;
	CURL *easy;
	struct curl_slist *headers;
	char *body;
	struct buf resp;
	http_client_cb cb;
	void *arg;
	char err[CURL_ERROR_SIZE];
};

static void call_free(struct http_call *call)
{
	struct http_client *c = call->c;

	if (call->prev)
		call->prev->next = call->next;
	else
		c->calls = call->next;
	if (call->next)
		call->next->prev = call->prev;
	curl_multi_remove_handle(c->multi, call->easy);
	curl_easy_cleanup(call->easy);
	curl_slist_free_all(call->headers);
	free(call->body);
	buf_free(&call->resp);
	free(call);
}

static void finish_done(struct http_client *c)
{
	CURLMsg *msg;
	int left;

	while ((msg = curl_multi_info_read(c->multi, &left))) {
		struct http_call *call = NULL;
		long status = 0;

		if (msg->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&call);
		if (msg->data.result == CURLE_OK)
			curl_easy_getinfo(msg->easy_handle, CURLINFO_RESPONSE_CODE, &status);
		else if (!call->err[0])
			snprintf(call->err, sizeof(call->err), "%s",
				 curl_easy_strerror(msg->data.result));
		call->cb(call->arg, (int)status, call->resp.data ? (char *)call->resp.data : "",
			 call->resp.len, status ? NULL : call->err);
		call_free(call);
	}
}

static void on_socket_event(void *arg, int fd, uint32_t events)
{
	struct http_client *c = arg;
	int flags = 0, running;

	if (events & EPOLLIN)
		flags |= CURL_CSELECT_IN;
	if (events & EPOLLOUT)
		flags |= CURL_CSELECT_OUT;
	if (events & (EPOLLERR | EPOLLHUP))
		flags |= CURL_CSELECT_ERR;
	curl_multi_socket_action(c->multi, fd, flags, &running);
	finish_done(c);
}

static int socket_cb(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp)
{
	struct http_client *c = userp;
	uint32_t ev = 0;
	(void)easy;
	(void)socketp;

	if (what == CURL_POLL_REMOVE) {
		loop_unwatch(c->lp, s);
		return 0;
	}
	if (what & CURL_POLL_IN)
		ev |= EPOLLIN;
	if (what & CURL_POLL_OUT)
		ev |= EPOLLOUT;
	loop_watch(c->lp, s, ev, on_socket_event, c);
	return 0;
}

static void on_timer(void *arg)
{
	struct http_client *c = arg;
	int running;

	c->timer = NULL;
	curl_multi_socket_action(c->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	finish_done(c);
}

static int timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
	struct http_client *c = userp;
	(void)multi;

	loop_timer_cancel(c->lp, c->timer);
	c->timer = NULL;
	if (timeout_ms >= 0)
		c->timer = loop_timer_add(c->lp, (uint64_t)timeout_ms, on_timer, c);
	return 0;
}

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
	struct http_call *call = arg;

	if (buf_append(&call->resp, p, size * n) != EMU_OK) {
		snprintf(call->err, sizeof(call->err), "response larger than %d bytes", MAX_RESPONSE);
		return 0;
	}
	return size * n;
}

int http_client_new(struct loop *lp, const char *ca_file, struct http_client **out)
{
	static int global_done;
	struct http_client *c;

	*out = NULL;
	if (!global_done) {
		if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
			return EMU_EIO;
		global_done = 1;
	}
	c = calloc(1, sizeof(*c));
	if (!c)
		return EMU_ENOMEM;
	c->lp = lp;
	c->multi = curl_multi_init();
	c->ca_file = ca_file ? strdup(ca_file) : NULL;
	if (!c->multi || (ca_file && !c->ca_file)) {
		http_client_free(c);
		return EMU_ENOMEM;
	}
	curl_multi_setopt(c->multi, CURLMOPT_SOCKETFUNCTION, socket_cb);
	curl_multi_setopt(c->multi, CURLMOPT_SOCKETDATA, c);
	curl_multi_setopt(c->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
	curl_multi_setopt(c->multi, CURLMOPT_TIMERDATA, c);
	*out = c;
	return EMU_OK;
}

void http_client_free(struct http_client *c)
{
	if (!c)
		return;
	while (c->calls)
		call_free(c->calls);
	loop_timer_cancel(c->lp, c->timer);
	if (c->multi)
		curl_multi_cleanup(c->multi);
	curl_slist_free_all(c->connect_to);
	free(c->ca_file);
	free(c);
}

int http_client_connect_to(struct http_client *c, const char *host, int port, const char *to_host,
			   int to_port)
{
	char entry[600];
	struct curl_slist *l;

	/* An IPv6 literal needs brackets in this syntax. */
	snprintf(entry, sizeof(entry), "%s:%d:%s%s%s:%d", host, port, strchr(to_host, ':') ? "[" : "",
		 to_host, strchr(to_host, ':') ? "]" : "", to_port);
	l = curl_slist_append(c->connect_to, entry);
	if (!l)
		return EMU_ENOMEM;
	c->connect_to = l;
	return EMU_OK;
}

int http_client_request(struct http_client *c, const char *method, const char *url,
			const char *const *headers, const char *body, long timeout_ms,
			http_client_cb cb, void *arg)
{
	struct http_call *call = calloc(1, sizeof(*call));

	if (!call)
		return EMU_ENOMEM;
	call->c = c;
	call->cb = cb;
	call->arg = arg;
	buf_init(&call->resp, MAX_RESPONSE);
	call->easy = curl_easy_init();
	if (!call->easy || (body && !(call->body = strdup(body))))
		goto nomem;
	for (; headers && *headers; headers++) {
		struct curl_slist *l = curl_slist_append(call->headers, *headers);
		if (!l)
			goto nomem;
		call->headers = l;
	}
	curl_easy_setopt(call->easy, CURLOPT_URL, url);
	curl_easy_setopt(call->easy, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(call->easy, CURLOPT_HTTPHEADER, call->headers);
	if (call->body) {
		curl_easy_setopt(call->easy, CURLOPT_POSTFIELDS, call->body);
		curl_easy_setopt(call->easy, CURLOPT_POSTFIELDSIZE, (long)strlen(call->body));
	}
	curl_easy_setopt(call->easy, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(call->easy, CURLOPT_WRITEDATA, call);
	curl_easy_setopt(call->easy, CURLOPT_ERRORBUFFER, call->err);
	curl_easy_setopt(call->easy, CURLOPT_PRIVATE, call);
	curl_easy_setopt(call->easy, CURLOPT_TIMEOUT_MS, timeout_ms);
	curl_easy_setopt(call->easy, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(call->easy, CURLOPT_PROTOCOLS_STR, "https");
	if (c->ca_file)
		curl_easy_setopt(call->easy, CURLOPT_CAINFO, c->ca_file);
	if (c->connect_to)
		curl_easy_setopt(call->easy, CURLOPT_CONNECT_TO, c->connect_to);
	call->next = c->calls;
	if (c->calls)
		c->calls->prev = call;
	c->calls = call;
	if (curl_multi_add_handle(c->multi, call->easy) != CURLM_OK) {
		call_free(call);
		return EMU_EINVAL;
	}
	return EMU_OK;
nomem:
	if (call->easy)
		curl_easy_cleanup(call->easy);
	curl_slist_free_all(call->headers);
	free(call->body);
	free(call);
	return EMU_ENOMEM;
}
