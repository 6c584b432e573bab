#include "certs/tool.h"

#include "err.h"

#include "certs/gen.h"
#include "certs/x509.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DAY         86400
#define MAX_DAYS    36500
#define MAX_PATHLEN 32

enum tool_cmd {
	CMD_ROOT = 1 << 0,
	CMD_INTERMEDIATE = 1 << 1,
	CMD_DEVICE = 1 << 2,
	CMD_CSR = 1 << 3,
	CMD_VERIFICATION = 1 << 4,
};
#define CMD_CERTS (CMD_ROOT | CMD_INTERMEDIATE | CMD_DEVICE | CMD_VERIFICATION)
#define CMD_ALL   (CMD_CERTS | CMD_CSR)

enum opt_id {
	OPT_CN,
	OPT_OUT,
	OPT_CA,
	OPT_SELF_SIGNED,
	OPT_KEY,
	OPT_KEY_TYPE,
	OPT_DAYS,
	OPT_START_OFFSET,
	OPT_PATHLEN,
	OPT_CODE,
	OPT_FORCE,
	OPT_COUNT
};

static const struct tool_opt {
	const char *name;
	int takes_value;
	unsigned cmds; /* commands accepting it */
} opts[OPT_COUNT] = {
    [OPT_CN] = {"cn", 1, CMD_ALL & ~CMD_VERIFICATION},
    [OPT_OUT] = {"out", 1, CMD_ALL},
    [OPT_CA] = {"ca", 1, CMD_INTERMEDIATE | CMD_DEVICE | CMD_VERIFICATION},
    [OPT_SELF_SIGNED] = {"self-signed", 0, CMD_DEVICE},
    [OPT_KEY] = {"key", 1, CMD_ALL},
    [OPT_KEY_TYPE] = {"key-type", 1, CMD_ALL},
    [OPT_DAYS] = {"days", 1, CMD_CERTS},
    [OPT_START_OFFSET] = {"start-offset-days", 1, CMD_DEVICE},
    [OPT_PATHLEN] = {"pathlen", 1, CMD_INTERMEDIATE},
    [OPT_CODE] = {"code", 1, CMD_VERIFICATION},
    [OPT_FORCE] = {"force", 0, CMD_ALL},
};

static const struct tool_command {
	const char *name;
	enum tool_cmd cmd;
} commands[] = {
    {"root", CMD_ROOT}, {"intermediate", CMD_INTERMEDIATE}, {"device", CMD_DEVICE},
    {"csr", CMD_CSR},   {"verification", CMD_VERIFICATION},
};

/* Parsed command line of one invocation. */
struct tool_args {
	const char *cmd_name;
	enum tool_cmd cmd;
	const char *val[OPT_COUNT]; /* NULL = not given; "" for flags that are set */
	enum gen_key_type key_type;
	long days;
	long start_offset_days;
	long pathlen;
};

static const char usage_text[] =
    "usage: dpsemu certs COMMAND [options]\n"
    "\n"
    "Test certificates for X.509 attestation, written as PEM files.\n"
    "\n"
    "  root          --cn NAME --out PREFIX [--key-type T] [--days N]\n"
    "  intermediate  --cn NAME --ca PREFIX --out PREFIX [--pathlen N] [--key-type T]\n"
    "                [--days N]\n"
    "  device        --cn NAME (--ca PREFIX | --self-signed) --out PREFIX [--key-type T]\n"
    "                [--days N] [--start-offset-days N]\n"
    "  csr           --cn NAME --out PREFIX [--key-type T | --key FILE]\n"
    "  verification  --code CODE --ca PREFIX --out PREFIX [--days N]\n"
    "  help          this text\n"
    "Every command also takes --key FILE (instead of --key-type) and --force.\n"
    "\n"
    "Certificate commands write PREFIX.pem (the certificate), PREFIX.key (its private\n"
    "key, mode 0600) and PREFIX-chain.pem (the certificate followed by its issuers, read\n"
    "from CAPREFIX-chain.pem, without the root: what a device presents in TLS).\n"
    "csr writes PREFIX.key, PREFIX.csr.pem and PREFIX.csr.b64 (base64 DER, the form of\n"
    "the \"csr\" field of a DPS registration).\n"
    "\n"
    "  --cn NAME               subject common name (the registration ID of a device)\n"
    "  --ca PREFIX             issuing CA: PREFIX.pem, PREFIX.key, PREFIX-chain.pem\n"
    "  --key-type T            p256 (default), p384 or rsa2048\n"
    "  --key FILE              use an existing private key instead of a new one\n"
    "  --days N                validity in days (default 365; 3650 for root)\n"
    "  --start-offset-days N   notBefore = now + N days; negative N with a short --days\n"
    "                          makes an expired certificate, positive a not-yet-valid one\n"
    "  --pathlen N             path length constraint of an intermediate\n"
    "  --code CODE             verification code of the CA (becomes the CN)\n"
    "  --force                 overwrite an existing PREFIX.key\n"
    "\n"
    "Example: a root, an intermediate and a device certificate under it\n"
    "  dpsemu certs root --cn \"Test Root\" --out root\n"
    "  dpsemu certs intermediate --cn \"Test Intermediate\" --ca root --out inter\n"
    "  dpsemu certs device --cn dev1 --ca inter --out dev1\n";

static int usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int failure(const struct tool_args *a, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Prints "dpsemu certs CMD: message" and returns the usage exit code. */
static int usage_error(const char *cmd, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "dpsemu certs%s%s: ", cmd ? " " : "", cmd ? cmd : "");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nrun 'dpsemu certs help' for usage\n");
	return 2;
}

/* Prints "dpsemu certs CMD: message (error)" and returns the failure exit code. */
static int failure(const struct tool_args *a, int rc, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "dpsemu certs %s: ", a->cmd_name);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	if (rc != EMU_OK)
		fprintf(stderr, " (%s)", emu_strerror(rc));
	fputc('\n', stderr);
	return 1;
}

static int parse_long(const char *s, long min, long max, long *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

/* Fills a from argv; returns 0 or the exit code of a usage error. */
static int parse_args(int argc, char **argv, struct tool_args *a)
{
	const char *cmd = a->cmd_name;
	long v;

	for (int i = 2; i < argc; i++) {
		const char *arg = argv[i];
		const char *eq, *value = NULL;
		size_t nlen;
		int id;

		if (strncmp(arg, "--", 2) != 0)
			return usage_error(cmd, "unexpected argument '%s'", arg);
		arg += 2;
		eq = strchr(arg, '=');
		nlen = eq ? (size_t)(eq - arg) : strlen(arg);
		for (id = 0; id < OPT_COUNT; id++)
			if (strlen(opts[id].name) == nlen && strncmp(opts[id].name, arg, nlen) == 0)
				break;
		if (id == OPT_COUNT || !(opts[id].cmds & a->cmd))
			return usage_error(cmd, "unknown option '%s'", argv[i]);
		if (a->val[id])
			return usage_error(cmd, "option '--%s' given twice", opts[id].name);
		if (!opts[id].takes_value) {
			if (eq)
				return usage_error(cmd, "option '--%s' takes no value",
				                   opts[id].name);
			value = "";
		} else if (eq) {
			value = eq + 1;
		} else if (i + 1 < argc) {
			value = argv[++i];
		} else {
			return usage_error(cmd, "option '--%s' needs a value", opts[id].name);
		}
		if (opts[id].takes_value && value[0] == '\0')
			return usage_error(cmd, "option '--%s' needs a non-empty value",
			                   opts[id].name);
		a->val[id] = value;
	}

	if ((a->cmd & ~CMD_VERIFICATION) && !a->val[OPT_CN])
		return usage_error(cmd, "%s is required", "--cn");
	if (!a->val[OPT_OUT])
		return usage_error(cmd, "%s is required", "--out");
	if ((a->cmd & (CMD_INTERMEDIATE | CMD_VERIFICATION)) && !a->val[OPT_CA])
		return usage_error(cmd, "%s is required", "--ca");
	if (a->cmd == CMD_VERIFICATION && !a->val[OPT_CODE])
		return usage_error(cmd, "%s is required", "--code");
	if (a->cmd == CMD_DEVICE && !a->val[OPT_CA] == !a->val[OPT_SELF_SIGNED])
		return usage_error(cmd, "%s", "give exactly one of --ca PREFIX and --self-signed");
	if (a->val[OPT_KEY] && a->val[OPT_KEY_TYPE])
		return usage_error(cmd, "%s", "--key and --key-type cannot be combined");

	a->key_type = GEN_KEY_P256;
	if (a->val[OPT_KEY_TYPE] && gen_key_type_parse(a->val[OPT_KEY_TYPE], &a->key_type) != 0)
		return usage_error(cmd, "--key-type '%s' is not one of p256, p384, rsa2048",
		                   a->val[OPT_KEY_TYPE]);
	a->days = a->cmd == CMD_ROOT ? 3650 : 365;
	if (a->val[OPT_DAYS]) {
		if (parse_long(a->val[OPT_DAYS], 1, MAX_DAYS, &v) != 0)
			return usage_error(cmd, "--days '%s' must be a number from 1 to 36500",
			                   a->val[OPT_DAYS]);
		a->days = v;
	}
	a->start_offset_days = 0;
	if (a->val[OPT_START_OFFSET]) {
		if (parse_long(a->val[OPT_START_OFFSET], -MAX_DAYS, MAX_DAYS, &v) != 0)
			return usage_error(cmd,
			                   "--start-offset-days '%s' must be a number from -36500 "
			                   "to 36500",
			                   a->val[OPT_START_OFFSET]);
		a->start_offset_days = v;
	}
	a->pathlen = -1;
	if (a->val[OPT_PATHLEN]) {
		if (parse_long(a->val[OPT_PATHLEN], 0, MAX_PATHLEN, &v) != 0)
			return usage_error(cmd, "--pathlen '%s' must be a number from 0 to 32",
			                   a->val[OPT_PATHLEN]);
		a->pathlen = v;
	}
	return 0;
}

static int make_path(char *out, size_t outlen, const char *prefix, const char *suffix)
{
	int n = snprintf(out, outlen, "%s%s", prefix, suffix);

	return (n < 0 || (size_t)n >= outlen) ? -1 : 0;
}

/* The issuing CA given with --ca: its certificate, key and chain (CA first). */
struct tool_ca {
	X509 *cert;
	EVP_PKEY *key;
	STACK_OF(X509) *chain;
};

static void tool_ca_clear(struct tool_ca *ca)
{
	X509_free(ca->cert);
	EVP_PKEY_free(ca->key);
	sk_X509_pop_free(ca->chain, X509_free);
	memset(ca, 0, sizeof(*ca));
}

static int load_ca(const struct tool_args *a, struct tool_ca *ca)
{
	const char *prefix = a->val[OPT_CA];
	char path[PATH_MAX];
	int rc;

	if (make_path(path, sizeof(path), prefix, ".pem") != 0)
		return usage_error(a->cmd_name, "--ca '%s' is too long", prefix);
	rc = gen_read_cert_file(path, &ca->cert);
	if (rc != EMU_OK)
		return failure(a, rc, "cannot read the CA certificate %s", path);
	if (!x509_is_ca(ca->cert))
		return failure(a, EMU_OK,
		               "%s is not a CA certificate (no basicConstraints "
		               "CA:TRUE)",
		               path);
	make_path(path, sizeof(path), prefix, ".key");
	rc = gen_read_key_file(path, &ca->key);
	if (rc != EMU_OK)
		return failure(a, rc, "cannot read the CA key %s", path);
	if (!gen_key_matches_cert(ca->key, ca->cert))
		return failure(a, EMU_OK, "%s is not the key of the CA certificate", path);
	make_path(path, sizeof(path), prefix, "-chain.pem");
	rc = gen_read_chain_file(path, &ca->chain);
	if (rc == EMU_ENOTFOUND) {
		/* a CA made by other tools: its certificate alone is its chain */
		ca->chain = sk_X509_new_null();
		if (!ca->chain || !sk_X509_push(ca->chain, ca->cert))
			return failure(a, EMU_ENOMEM, "%s", "out of memory");
		X509_up_ref(ca->cert);
		return 0;
	}
	if (rc != EMU_OK)
		return failure(a, rc, "cannot read the CA chain %s", path);
	if (X509_cmp(sk_X509_value(ca->chain, 0), ca->cert) != 0)
		return failure(a, EMU_OK, "%s does not start with the CA certificate", path);
	return 0;
}

/* The key of the new certificate or CSR: --key, or a new one. *generated tells which. */
static int obtain_key(const struct tool_args *a, const char *key_out, EVP_PKEY **key,
                      int *generated)
{
	int rc;

	*generated = 0;
	if (a->val[OPT_KEY]) {
		rc = gen_read_key_file(a->val[OPT_KEY], key);
		if (rc != EMU_OK)
			return failure(a, rc, "cannot read the key %s", a->val[OPT_KEY]);
		return 0;
	}
	/* Refuse before doing any work; the O_EXCL write below closes the race. */
	if (!a->val[OPT_FORCE] && access(key_out, F_OK) == 0)
		return failure(a, EMU_OK, "%s already exists; use --force to overwrite it",
		               key_out);
	rc = gen_key(a->key_type, key);
	if (rc != EMU_OK)
		return failure(a, rc, "cannot generate a %s key", gen_key_type_name(a->key_type));
	*generated = 1;
	return 0;
}

static int write_key(const struct tool_args *a, const char *path, EVP_PKEY *key)
{
	int rc = gen_write_key_file(path, key, a->val[OPT_FORCE] ? 0 : GEN_WRITE_EXCL);

	if (rc == EMU_EEXIST)
		return failure(a, EMU_OK, "%s already exists; use --force to overwrite it", path);
	if (rc != EMU_OK)
		return failure(a, rc, "cannot write %s", path);
	printf("wrote %s (private key, %s, mode 0600)\n", path,
	       a->val[OPT_KEY] ? "given" : gen_key_type_name(a->key_type));
	return 0;
}

static int run_cert(const struct tool_args *a)
{
	char key_path[PATH_MAX], cert_path[PATH_MAX], chain_path[PATH_MAX];
	char sha1[41], sha256[65], cn[256];
	struct tool_ca ca = {0};
	struct gen_cert_opts o = {0};
	X509 **chain = NULL;
	EVP_PKEY *key = NULL;
	X509 *cert = NULL;
	size_t n_chain = 0;
	int generated = 0, rc, ret;
	const char *prefix = a->val[OPT_OUT];

	if (make_path(key_path, sizeof(key_path), prefix, ".key") != 0 ||
	    make_path(cert_path, sizeof(cert_path), prefix, ".pem") != 0 ||
	    make_path(chain_path, sizeof(chain_path), prefix, "-chain.pem") != 0)
		return usage_error(a->cmd_name, "--out '%s' is too long", prefix);
	if (a->val[OPT_CA] && (ret = load_ca(a, &ca)) != 0)
		goto out;
	ret = obtain_key(a, key_path, &key, &generated);
	if (ret != 0)
		goto out;

	o.cn = a->cmd == CMD_VERIFICATION ? a->val[OPT_CODE] : a->val[OPT_CN];
	o.key = key;
	o.issuer = ca.cert;
	o.issuer_key = ca.key;
	o.not_before_offset = (int64_t)a->start_offset_days * DAY;
	o.validity = (int64_t)a->days * DAY;
	o.is_ca = a->cmd == CMD_ROOT || a->cmd == CMD_INTERMEDIATE;
	o.pathlen = (int)a->pathlen;
	o.eku = o.is_ca ? GEN_EKU_NONE : GEN_EKU_CLIENT;
	rc = gen_cert(&o, &cert);
	if (rc != EMU_OK) {
		ret = failure(a, rc, "cannot create the certificate for '%s'", o.cn);
		goto out;
	}

	/* chain: the new certificate, then its issuers without a self-signed root */
	n_chain = 1 + (ca.chain ? (size_t)sk_X509_num(ca.chain) : 0);
	chain = calloc(n_chain, sizeof(*chain));
	if (!chain) {
		ret = failure(a, EMU_ENOMEM, "%s", "out of memory");
		goto out;
	}
	chain[0] = cert;
	for (size_t i = 1; i < n_chain; i++)
		chain[i] = sk_X509_value(ca.chain, (int)i - 1);
	if (n_chain > 1 && x509_is_self_signed(chain[n_chain - 1]))
		n_chain--;

	if (generated && (ret = write_key(a, key_path, key)) != 0)
		goto out;
	rc = gen_write_certs_file(cert_path, &cert, 1, 0);
	if (rc != EMU_OK) {
		ret = failure(a, rc, "cannot write %s", cert_path);
		goto out;
	}
	x509_thumbprint_sha1(cert, sha1);
	x509_thumbprint_sha256(cert, sha256);
	if (x509_common_name(cert, cn, sizeof(cn)) != EMU_OK)
		cn[0] = '\0';
	printf("wrote %s (CN=%s, SHA-1 %s, SHA-256 %s)\n", cert_path, cn, sha1, sha256);
	rc = gen_write_certs_file(chain_path, chain, n_chain, 0);
	if (rc != EMU_OK) {
		ret = failure(a, rc, "cannot write %s", chain_path);
		goto out;
	}
	printf("wrote %s (%zu certificate%s)\n", chain_path, n_chain, n_chain == 1 ? "" : "s");
	ret = 0;
out:
	free(chain);
	X509_free(cert);
	EVP_PKEY_free(key);
	tool_ca_clear(&ca);
	return ret;
}

static int run_csr(const struct tool_args *a)
{
	char key_path[PATH_MAX], pem_path[PATH_MAX], b64_path[PATH_MAX];
	const char *prefix = a->val[OPT_OUT];
	EVP_PKEY *key = NULL;
	X509_REQ *req = NULL;
	char *pem = NULL, *b64 = NULL;
	int generated = 0, rc, ret;

	if (make_path(key_path, sizeof(key_path), prefix, ".key") != 0 ||
	    make_path(pem_path, sizeof(pem_path), prefix, ".csr.pem") != 0 ||
	    make_path(b64_path, sizeof(b64_path), prefix, ".csr.b64") != 0)
		return usage_error(a->cmd_name, "--out '%s' is too long", prefix);
	ret = obtain_key(a, key_path, &key, &generated);
	if (ret != 0)
		goto out;
	rc = gen_csr(key, a->val[OPT_CN], &req);
	if (rc == EMU_OK) {
		pem = gen_csr_to_pem(req);
		b64 = gen_csr_to_b64der(req);
		if (!pem || !b64)
			rc = EMU_ECRYPTO;
	}
	if (rc != EMU_OK) {
		ret = failure(a, rc, "cannot create the request for '%s'", a->val[OPT_CN]);
		goto out;
	}
	if (generated && (ret = write_key(a, key_path, key)) != 0)
		goto out;
	rc = gen_write_file(pem_path, pem, strlen(pem), 0644, 0);
	if (rc != EMU_OK) {
		ret = failure(a, rc, "cannot write %s", pem_path);
		goto out;
	}
	printf("wrote %s (certificate request, CN=%s)\n", pem_path, a->val[OPT_CN]);
	/* no newline at all: the file content is the JSON string value as is */
	rc = gen_write_file(b64_path, b64, strlen(b64), 0644, 0);
	if (rc != EMU_OK) {
		ret = failure(a, rc, "cannot write %s", b64_path);
		goto out;
	}
	printf("wrote %s (base64 DER for the registration's \"csr\" field)\n", b64_path);
	ret = 0;
out:
	free(pem);
	free(b64);
	X509_REQ_free(req);
	EVP_PKEY_free(key);
	return ret;
}

int certs_tool_main(int argc, char **argv)
{
	struct tool_args a;
	int ret;

	if (argc < 2) {
		fputs(usage_text, stderr);
		return 2;
	}
	if (strcmp(argv[1], "help") == 0 || strcmp(argv[1], "--help") == 0 ||
	    strcmp(argv[1], "-h") == 0) {
		fputs(usage_text, stdout);
		return 0;
	}
	memset(&a, 0, sizeof(a));
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
		if (strcmp(argv[1], commands[i].name) == 0) {
			a.cmd_name = commands[i].name;
			a.cmd = commands[i].cmd;
		}
	}
	if (!a.cmd_name)
		return usage_error(NULL, "unknown command '%s'", argv[1]);
	ret = parse_args(argc, argv, &a);
	if (ret != 0)
		return ret;
	ret = a.cmd == CMD_CSR ? run_csr(&a) : run_cert(&a);
	fflush(stdout);
	return ret;
}
