/* metrics.h - counters, gauges and histograms for GET /metrics (Prometheus).
 *
 * One registry (created in main, passed down in each service's deps) owns
 * every metric family; a family has a fixed list of label names, and each
 * distinct list of label values is one series, created on first use. Modules
 * look their families up once at start-up (metrics_counter & co. return the
 * existing family when the name is already registered) and keep the pointer.
 * Every update takes a NULL family as a no-op, so code runs unchanged without a
 * registry (unit tests). Label values must come from small fixed sets (a
 * transport, an outcome, a status class): a family holds at most
 * METRICS_MAX_SERIES series and drops updates of further ones.
 *
 * metrics_render writes the text exposition format 0.0.4: families in the
 * order registered, series in the order first used, histogram buckets
 * cumulative with le="+Inf", then _sum and _count. */
#ifndef DPSEMU_METRICS_H
#define DPSEMU_METRICS_H

#include <stddef.h>

struct buf;
struct metrics;
struct metrics_family;

#define METRICS_CONTENT_TYPE "text/plain; version=0.0.4"
#define METRICS_MAX_LABELS 4
#define METRICS_MAX_SERIES 256
#define METRICS_MAX_BUCKETS 24
#define METRICS_MAX_VALUE_LEN 128 /* longer label values are cut */

/* Label values for an update, in the order of the family's label names. */
#define METRICS_LABELS(...) ((const char *const[]){ __VA_ARGS__ })

/* Creates an empty registry. Returns EMU_OK or EMU_ENOMEM. */
int metrics_new(struct metrics **out);
/* Frees the registry and every family (their pointers become invalid). NULL is fine. */
void metrics_free(struct metrics *m);

/* Gets or creates a family. name must match [a-zA-Z_:][a-zA-Z0-9_:]*; labels
 * is a comma-separated list of label names ("transport,outcome"), NULL or ""
 * for none (at most METRICS_MAX_LABELS). For a histogram, bounds are the
 * ascending upper bounds of its buckets (at most METRICS_MAX_BUCKETS; +Inf is
 * implied). Returns the family (owned by m), or NULL when m is NULL, out of
 * memory, the arguments are invalid, or name exists with another type, labels
 * or bounds (logged). */
struct metrics_family *metrics_counter(struct metrics *m, const char *name, const char *help,
				       const char *labels);
struct metrics_family *metrics_gauge(struct metrics *m, const char *name, const char *help,
				     const char *labels);
struct metrics_family *metrics_histogram(struct metrics *m, const char *name, const char *help,
					 const char *labels, const double *bounds, size_t nbounds);

/* Updates the series named by values (NULL when the family has no labels;
 * otherwise exactly one value per label, NULL values read as ""). f NULL is a
 * no-op, as is an update of the wrong kind (add to a histogram, a negative add
 * or a set on a counter, observe on a counter or gauge). */
void metrics_add(struct metrics_family *f, const char *const *values, double v);
void metrics_inc(struct metrics_family *f, const char *const *values);
void metrics_set(struct metrics_family *f, const char *const *values, double v);
void metrics_observe(struct metrics_family *f, const char *const *values, double v);

/* The value of a counter or gauge series, or the observation count of a
 * histogram series; 0 when the series does not exist or f is NULL. */
double metrics_value(const struct metrics_family *f, const char *const *values);

/* Appends the exposition text of every family to out. Returns EMU_OK, or
 * EMU_ENOMEM / EMU_ETOOBIG from the buffer. */
int metrics_render(const struct metrics *m, struct buf *out);

#endif
