/* tool.h - `dpsemu certs ...`: test certificates for users.
 *
 * Creates roots, intermediates, device certificates, CSRs and proof-of-possession
 * (verification) certificates as PEM files, with the chain files devices present
 * in TLS. Run `dpsemu certs help` for the syntax. */
#ifndef DPSEMU_CERTS_TOOL_H
#define DPSEMU_CERTS_TOOL_H

/* Runs one tool command. argv[0] is "certs", argv[1] the command (root,
 * intermediate, device, csr, verification, help), then its options.
 * Prints one line per file written on stdout, errors on stderr.
 * Returns the process exit code: 0 success, 1 failure (unreadable CA files, an
 * existing key file without --force, ...), 2 usage error. Without a command it
 * prints the usage on stderr and returns 2. Can be called more than once in a
 * process (it keeps no state). */
int certs_tool_main(int argc, char **argv);

#endif
