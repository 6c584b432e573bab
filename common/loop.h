/* loop.h - the single event loop (epoll) that owns all emulator state.
 *
 * File descriptors are watched with a callback; timers fire once after a delay;
 * hooks let a library with its own event machinery (libmicrohttpd) take part:
 * a hook's timeout function bounds the wait and its run function is called
 * after every wakeup. Nothing here is thread-safe: one thread runs the loop. */
#ifndef DPSEMU_LOOP_H
#define DPSEMU_LOOP_H

#include <stdint.h>
#include <sys/epoll.h>

struct loop;
struct loop_timer;

/* Called with the epoll events (EPOLLIN, EPOLLOUT, EPOLLERR, EPOLLHUP) of fd. */
typedef void (*loop_fd_cb)(void *arg, int fd, uint32_t events);
typedef void (*loop_timer_cb)(void *arg);
/* Returns the longest wait in ms this hook allows (-1 = no limit). */
typedef int (*loop_hook_timeout)(void *arg);
typedef void (*loop_hook_run)(void *arg);

/* Creates a loop. Returns EMU_OK or EMU_EIO / EMU_ENOMEM. */
int loop_new(struct loop **out);
/* Frees the loop; watched fds are not closed. loop_free(NULL) is fine. */
void loop_free(struct loop *lp);

/* Watches fd for events (EPOLLIN/EPOLLOUT), adding it or changing its events
 * and callback. Returns EMU_OK, EMU_EIO or EMU_ENOMEM. */
int loop_watch(struct loop *lp, int fd, uint32_t events, loop_fd_cb cb, void *arg);
/* Stops watching fd (call before closing it). Pending events for fd in the
 * current iteration are dropped. */
void loop_unwatch(struct loop *lp, int fd);

/* Calls cb(arg) once, delay_ms from now. Returns the timer or NULL (no memory). */
struct loop_timer *loop_timer_add(struct loop *lp, uint64_t delay_ms, loop_timer_cb cb, void *arg);
/* Cancels a pending timer; it is freed. NULL is fine. Must not be called for a
 * timer that has already fired (the loop frees fired timers). */
void loop_timer_cancel(struct loop *lp, struct loop_timer *t);

/* Adds a hook (see above). Returns EMU_OK or EMU_ENOMEM. */
int loop_add_hook(struct loop *lp, loop_hook_timeout timeout, loop_hook_run run, void *arg);

/* Runs until loop_stop. Returns EMU_OK, or EMU_EIO if epoll fails. */
int loop_run(struct loop *lp);
/* Makes loop_run return after the current iteration. */
void loop_stop(struct loop *lp);

#endif
