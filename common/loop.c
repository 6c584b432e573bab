#include "loop.h"

#include "clock.h"
#include "err.h"
#include "log.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_EVENTS 128
#define MAX_HOOKS 4

struct watcher {
	loop_fd_cb cb; /* NULL when not watched */
	void *arg;
	uint32_t events;
};

struct loop_timer {
	uint64_t due;
	loop_timer_cb cb;
	void *arg;
	struct loop_timer *next; /* sorted by due */
};

struct hook {
	loop_hook_timeout timeout;
	loop_hook_run run;
	void *arg;
};

struct loop {
	int epfd;
	int stopping;
	struct watcher *watchers; /* indexed by fd */
	int nwatchers;
	struct loop_timer *timers;
	struct hook hooks[MAX_HOOKS];
	int nhooks;
};

int loop_new(struct loop **out)
{
	struct loop *lp = calloc(1, sizeof(*lp));

	*out = NULL;
	if (!lp)
		return EMU_ENOMEM;
	lp->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (lp->epfd < 0) {
		log_error("loop", "epoll_create1: %s", strerror(errno));
		free(lp);
		return EMU_EIO;
	}
	*out = lp;
	return EMU_OK;
}

void loop_free(struct loop *lp)
{
	if (!lp)
		return;
	while (lp->timers) {
		struct loop_timer *t = lp->timers;
		lp->timers = t->next;
		free(t);
	}
	close(lp->epfd);
	free(lp->watchers);
	free(lp);
}

static int grow_watchers(struct loop *lp, int fd)
{
	int n = lp->nwatchers ? lp->nwatchers : 64;
	struct watcher *w;

	while (n <= fd)
		n *= 2;
	w = realloc(lp->watchers, (size_t)n * sizeof(*w));
	if (!w)
		return EMU_ENOMEM;
	memset(w + lp->nwatchers, 0, (size_t)(n - lp->nwatchers) * sizeof(*w));
	lp->watchers = w;
	lp->nwatchers = n;
	return EMU_OK;
}

int loop_watch(struct loop *lp, int fd, uint32_t events, loop_fd_cb cb, void *arg)
{
	struct epoll_event ev = { .events = events, .data.fd = fd };
	struct watcher *w;
	int op;

	if (fd >= lp->nwatchers && grow_watchers(lp, fd) != EMU_OK)
		return EMU_ENOMEM;
	w = &lp->watchers[fd];
	op = w->cb ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
	if ((op == EPOLL_CTL_ADD || w->events != events) && epoll_ctl(lp->epfd, op, fd, &ev) < 0) {
		log_error("loop", "epoll_ctl fd %d: %s", fd, strerror(errno));
		return EMU_EIO;
	}
	w->cb = cb;
	w->arg = arg;
	w->events = events;
	return EMU_OK;
}

void loop_unwatch(struct loop *lp, int fd)
{
	if (fd < 0 || fd >= lp->nwatchers || !lp->watchers[fd].cb)
		return;
	epoll_ctl(lp->epfd, EPOLL_CTL_DEL, fd, NULL);
	memset(&lp->watchers[fd], 0, sizeof(lp->watchers[fd]));
}

struct loop_timer *loop_timer_add(struct loop *lp, uint64_t delay_ms, loop_timer_cb cb, void *arg)
{
	struct loop_timer *t = calloc(1, sizeof(*t)), **pp;

	if (!t)
		return NULL;
	t->due = clock_mono_ms() + delay_ms;
	t->cb = cb;
	t->arg = arg;
	for (pp = &lp->timers; *pp && (*pp)->due <= t->due; pp = &(*pp)->next)
		;
	t->next = *pp;
	*pp = t;
	return t;
}

void loop_timer_cancel(struct loop *lp, struct loop_timer *t)
{
	struct loop_timer **pp;

	if (!t)
		return;
	for (pp = &lp->timers; *pp; pp = &(*pp)->next)
		if (*pp == t) {
			*pp = t->next;
			free(t);
			return;
		}
}

int loop_add_hook(struct loop *lp, loop_hook_timeout timeout, loop_hook_run run, void *arg)
{
	if (lp->nhooks == MAX_HOOKS)
		return EMU_ENOMEM;
	lp->hooks[lp->nhooks++] = (struct hook){ timeout, run, arg };
	return EMU_OK;
}

static int next_wait_ms(struct loop *lp)
{
	int wait = -1;

	if (lp->timers) {
		uint64_t now = clock_mono_ms();
		wait = lp->timers->due <= now ? 0 : (int)(lp->timers->due - now);
	}
	for (int i = 0; i < lp->nhooks; i++) {
		int h = lp->hooks[i].timeout ? lp->hooks[i].timeout(lp->hooks[i].arg) : -1;
		if (h >= 0 && (wait < 0 || h < wait))
			wait = h;
	}
	return wait;
}

static void run_due_timers(struct loop *lp)
{
	uint64_t now = clock_mono_ms();

	while (lp->timers && lp->timers->due <= now) {
		struct loop_timer *t = lp->timers;
		lp->timers = t->next;
		t->cb(t->arg);
		free(t);
	}
}

int loop_run(struct loop *lp)
{
	struct epoll_event evs[MAX_EVENTS];

	lp->stopping = 0;
	while (!lp->stopping) {
		int n = epoll_wait(lp->epfd, evs, MAX_EVENTS, next_wait_ms(lp));
		if (n < 0) {
			if (errno == EINTR)
				continue;
			log_error("loop", "epoll_wait: %s", strerror(errno));
			return EMU_EIO;
		}
		for (int i = 0; i < n; i++) {
			int fd = evs[i].data.fd;
			/* A callback earlier in this batch may have unwatched fd. */
			if (fd < lp->nwatchers && lp->watchers[fd].cb)
				lp->watchers[fd].cb(lp->watchers[fd].arg, fd, evs[i].events);
		}
		run_due_timers(lp);
		for (int i = 0; i < lp->nhooks; i++)
			if (lp->hooks[i].run)
				lp->hooks[i].run(lp->hooks[i].arg);
	}
	return EMU_OK;
}

void loop_stop(struct loop *lp)
{
	lp->stopping = 1;
}
