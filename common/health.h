/* health.h - `dpsemu health`: asks a running daemon whether it is healthy.
 *
 * A container's HEALTHCHECK (and a CI service container's --health-cmd) runs it
 * inside the container, so the image needs no curl. It reads the same settings as
 * the daemon (environment variables DPSEMU_*, or the daemon's flags) to find the
 * daemon: GET https://{hostname}:{https port}/health, connecting to the bind
 * address (127.0.0.1 when bound to 0.0.0.0, ::1 for ::) and verifying the server
 * certificate against {data dir}/certs/server-ca.pem. */
#ifndef DPSEMU_HEALTH_H
#define DPSEMU_HEALTH_H

/* Runs one check. argv[0] is "health", then options:
 *   --url URL        ask URL instead (no redirection of the connection)
 *   --ca FILE        trust FILE instead of {data dir}/certs/server-ca.pem
 *   --timeout SECS   give up after SECS seconds (1..300, default 5)
 *   --help           usage on stdout
 * and any daemon flag (--https-port 8443, --data-dir DIR, ...), which beats the
 * environment as it does for the daemon.
 * On HTTP 200 it prints the answer (one line of JSON) on stdout and returns 0.
 * Otherwise it prints one line, "dpsemu health: <url>: <reason>", on stderr and
 * returns 1: Docker reserves exit code 2, so usage errors and invalid settings
 * return 1 too. Can be called more than once in a process. */
int health_main(int argc, char **argv);

#endif
