/* metrics.c - the metric registry and its text exposition (see metrics.h). */
#include "metrics.h"

#include "buf.h"
#include "err.h"
#include "log.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum family_type { FT_COUNTER, FT_GAUGE, FT_HISTOGRAM };

struct series {
	struct series *next;
	char *values[METRICS_MAX_LABELS];
	double value;      /* counter, gauge; histogram: the sum */
	uint64_t count;    /* histogram observations */
	uint64_t *buckets; /* histogram: cumulative count per bound */
};

struct metrics_family {
	struct metrics_family *next;
	enum family_type type;
	char *name;
	char *help;
	char *labels[METRICS_MAX_LABELS];
	int nlabels;
	double bounds[METRICS_MAX_BUCKETS];
	size_t nbounds;
	struct series *series, *last;
	size_t nseries;
	int warned_full;
};

struct metrics {
	struct metrics_family *families, *last;
};

int metrics_new(struct metrics **out)
{
	*out = calloc(1, sizeof(**out));
	return *out ? EMU_OK : EMU_ENOMEM;
}

static void series_free(struct series *s)
{
	for (int i = 0; i < METRICS_MAX_LABELS; i++)
		free(s->values[i]);
	free(s->buckets);
	free(s);
}

static void family_free(struct metrics_family *f)
{
	struct series *s, *next;

	for (s = f->series; s; s = next) {
		next = s->next;
		series_free(s);
	}
	for (int i = 0; i < f->nlabels; i++)
		free(f->labels[i]);
	free(f->name);
	free(f->help);
	free(f);
}

void metrics_free(struct metrics *m)
{
	struct metrics_family *f, *next;

	if (!m)
		return;
	for (f = m->families; f; f = next) {
		next = f->next;
		family_free(f);
	}
	free(m);
}

static int name_ok(const char *s, int colons)
{
	if (!s || !*s || (*s >= '0' && *s <= '9'))
		return 0;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || *s == '_' || (colons && *s == ':')))
			return 0;
	return 1;
}

/* Splits "a,b" into f->labels. Returns EMU_OK or EMU_EINVAL / EMU_ENOMEM. */
static int parse_labels(struct metrics_family *f, const char *labels)
{
	const char *p = labels;

	while (p && *p) {
		size_t n = strcspn(p, ",");
		char *name;

		if (f->nlabels == METRICS_MAX_LABELS)
			return EMU_EINVAL;
		name = strndup(p, n);
		if (!name)
			return EMU_ENOMEM;
		f->labels[f->nlabels++] = name;
		/* "le" is the histogram's own label. */
		if (!name_ok(name, 0) || strcmp(name, "le") == 0 || strncmp(name, "__", 2) == 0)
			return EMU_EINVAL;
		p += n;
		if (*p == ',')
			p++;
	}
	return EMU_OK;
}

static int same_shape(const struct metrics_family *a, const struct metrics_family *b)
{
	if (a->type != b->type || a->nlabels != b->nlabels || a->nbounds != b->nbounds)
		return 0;
	for (int i = 0; i < a->nlabels; i++)
		if (strcmp(a->labels[i], b->labels[i]) != 0)
			return 0;
	for (size_t i = 0; i < a->nbounds; i++)
		if (a->bounds[i] != b->bounds[i])
			return 0;
	return 1;
}

static struct metrics_family *get_family(struct metrics *m, enum family_type type,
					 const char *name, const char *help, const char *labels,
					 const double *bounds, size_t nbounds)
{
	struct metrics_family *f, *have;

	if (!m)
		return NULL;
	if (!name_ok(name, 1) || nbounds > METRICS_MAX_BUCKETS || (nbounds && !bounds)) {
		log_error("metrics", "metric '%s': invalid name or buckets", name ? name : "");
		return NULL;
	}
	f = calloc(1, sizeof(*f));
	if (!f)
		return NULL;
	f->type = type;
	f->nbounds = nbounds;
	for (size_t i = 0; i < nbounds; i++) {
		f->bounds[i] = bounds[i];
		if (isnan(bounds[i]) || (i && bounds[i] <= bounds[i - 1])) {
			log_error("metrics", "metric '%s': bucket bounds must ascend", name);
			family_free(f);
			return NULL;
		}
	}
	if (parse_labels(f, labels) != EMU_OK) {
		log_error("metrics", "metric '%s': invalid label names '%s'", name, labels);
		family_free(f);
		return NULL;
	}
	for (have = m->families; have; have = have->next)
		if (strcmp(have->name, name) == 0)
			break;
	if (have) {
		int same = same_shape(have, f);
		family_free(f);
		if (!same) {
			log_error("metrics", "metric '%s' registered twice with different shapes",
				  name);
			return NULL;
		}
		return have;
	}
	f->name = strdup(name);
	f->help = strdup(help ? help : "");
	if (!f->name || !f->help) {
		family_free(f);
		return NULL;
	}
	if (m->last)
		m->last->next = f;
	else
		m->families = f;
	m->last = f;
	return f;
}

struct metrics_family *metrics_counter(struct metrics *m, const char *name, const char *help,
				       const char *labels)
{
	return get_family(m, FT_COUNTER, name, help, labels, NULL, 0);
}

struct metrics_family *metrics_gauge(struct metrics *m, const char *name, const char *help,
				     const char *labels)
{
	return get_family(m, FT_GAUGE, name, help, labels, NULL, 0);
}

struct metrics_family *metrics_histogram(struct metrics *m, const char *name, const char *help,
					 const char *labels, const double *bounds, size_t nbounds)
{
	return get_family(m, FT_HISTOGRAM, name, help, labels, bounds, nbounds);
}

static const char *value_at(const char *const *values, int i)
{
	return values && values[i] ? values[i] : "";
}

static int series_matches(const struct metrics_family *f, const struct series *s,
			  const char *const *values)
{
	for (int i = 0; i < f->nlabels; i++) {
		/* Stored values are cut at METRICS_MAX_VALUE_LEN: compare what was kept. */
		const char *v = value_at(values, i);
		size_t n = strnlen(v, METRICS_MAX_VALUE_LEN);
		if (strlen(s->values[i]) != n || memcmp(s->values[i], v, n) != 0)
			return 0;
	}
	return 1;
}

/* The series for values, created when absent (NULL when full or out of memory). */
static struct series *find_series(struct metrics_family *f, const char *const *values,
				  int create)
{
	struct series *s;

	for (s = f->series; s; s = s->next)
		if (series_matches(f, s, values))
			return s;
	if (!create)
		return NULL;
	if (f->nseries == METRICS_MAX_SERIES) {
		if (!f->warned_full)
			log_warn("metrics", "metric '%s' has %d series: further label values are "
				 "not counted", f->name, METRICS_MAX_SERIES);
		f->warned_full = 1;
		return NULL;
	}
	s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	for (int i = 0; i < f->nlabels; i++)
		if (!(s->values[i] = strndup(value_at(values, i), METRICS_MAX_VALUE_LEN))) {
			series_free(s);
			return NULL;
		}
	if (f->type == FT_HISTOGRAM && f->nbounds &&
	    !(s->buckets = calloc(f->nbounds, sizeof(*s->buckets)))) {
		series_free(s);
		return NULL;
	}
	if (f->last)
		f->last->next = s;
	else
		f->series = s;
	f->last = s;
	f->nseries++;
	return s;
}

void metrics_add(struct metrics_family *f, const char *const *values, double v)
{
	struct series *s;

	if (!f || f->type == FT_HISTOGRAM || isnan(v) || (f->type == FT_COUNTER && v < 0))
		return;
	if ((s = find_series(f, values, 1)))
		s->value += v;
}

void metrics_inc(struct metrics_family *f, const char *const *values)
{
	metrics_add(f, values, 1);
}

void metrics_set(struct metrics_family *f, const char *const *values, double v)
{
	struct series *s;

	if (!f || f->type != FT_GAUGE)
		return;
	if ((s = find_series(f, values, 1)))
		s->value = v;
}

void metrics_observe(struct metrics_family *f, const char *const *values, double v)
{
	struct series *s;

	if (!f || f->type != FT_HISTOGRAM || isnan(v) || !(s = find_series(f, values, 1)))
		return;
	s->count++;
	s->value += v;
	for (size_t i = 0; i < f->nbounds; i++)
		if (v <= f->bounds[i])
			s->buckets[i]++;
}

double metrics_value(const struct metrics_family *f, const char *const *values)
{
	struct series *s;

	if (!f || !(s = find_series((struct metrics_family *)f, values, 0)))
		return 0;
	return f->type == FT_HISTOGRAM ? (double)s->count : s->value;
}

/* The shortest text that reads back as v; integers without a fraction. */
static void fmt_num(double v, char out[40])
{
	if (isnan(v)) {
		snprintf(out, 40, "NaN");
	} else if (isinf(v)) {
		snprintf(out, 40, "%s", v > 0 ? "+Inf" : "-Inf");
	} else if (v > -1e15 && v < 1e15 && v == (double)(int64_t)v) {
		snprintf(out, 40, "%.0f", v);
	} else {
		for (int prec = 6; prec <= 17; prec++) {
			snprintf(out, 40, "%.*g", prec, v);
			if (strtod(out, NULL) == v)
				break;
		}
	}
}

/* Appends s escaped for a HELP line (quotes too for a label value). */
static int put_escaped(struct buf *b, const char *s, int quotes)
{
	int rc = EMU_OK;

	for (; *s && rc == EMU_OK; s++) {
		if (*s == '\\')
			rc = buf_append_str(b, "\\\\");
		else if (*s == '\n')
			rc = buf_append_str(b, "\\n");
		else if (quotes && *s == '"')
			rc = buf_append_str(b, "\\\"");
		else
			rc = buf_append(b, s, 1);
	}
	return rc;
}

/* Writes name{labels[,le="x"]} value. */
static int put_sample(struct buf *b, const struct metrics_family *f, const char *suffix,
		      const struct series *s, const char *le, double v)
{
	char num[40];
	int rc = buf_printf(b, "%s%s", f->name, suffix);
	int n = 0;

	for (int i = 0; i < f->nlabels && rc == EMU_OK; i++, n++) {
		rc = buf_printf(b, "%s%s=\"", n ? "," : "{", f->labels[i]);
		if (rc == EMU_OK)
			rc = put_escaped(b, s->values[i], 1);
		if (rc == EMU_OK)
			rc = buf_append_str(b, "\"");
	}
	if (rc == EMU_OK && le) {
		rc = buf_printf(b, "%sle=\"%s\"", n ? "," : "{", le);
		n++;
	}
	if (rc == EMU_OK && n)
		rc = buf_append_str(b, "}");
	fmt_num(v, num);
	if (rc == EMU_OK)
		rc = buf_printf(b, " %s\n", num);
	return rc;
}

static int render_family(const struct metrics_family *f, struct buf *b)
{
	static const char *const types[] = { "counter", "gauge", "histogram" };
	struct series unlabelled = { 0 };
	const struct series *s;
	char le[40];
	int rc;

	rc = buf_printf(b, "# HELP %s ", f->name);
	if (rc == EMU_OK)
		rc = put_escaped(b, f->help, 0);
	if (rc == EMU_OK)
		rc = buf_printf(b, "\n# TYPE %s %s\n", f->name, types[f->type]);
	/* A family without labels always has its one series, even at zero. */
	s = f->series;
	if (!s && f->nlabels == 0 && f->type != FT_HISTOGRAM)
		s = &unlabelled;
	for (; s && rc == EMU_OK; s = s->next) {
		if (f->type != FT_HISTOGRAM) {
			rc = put_sample(b, f, "", s, NULL, s->value);
			continue;
		}
		for (size_t i = 0; i < f->nbounds && rc == EMU_OK; i++) {
			fmt_num(f->bounds[i], le);
			rc = put_sample(b, f, "_bucket", s, le, (double)s->buckets[i]);
		}
		if (rc == EMU_OK)
			rc = put_sample(b, f, "_bucket", s, "+Inf", (double)s->count);
		if (rc == EMU_OK)
			rc = put_sample(b, f, "_sum", s, NULL, s->value);
		if (rc == EMU_OK)
			rc = put_sample(b, f, "_count", s, NULL, (double)s->count);
	}
	return rc;
}

int metrics_render(const struct metrics *m, struct buf *out)
{
	int rc = EMU_OK;

	if (!m)
		return EMU_OK;
	for (const struct metrics_family *f = m->families; f && rc == EMU_OK; f = f->next)
		rc = render_family(f, out);
	return rc;
}
