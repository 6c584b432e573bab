#!/usr/bin/env bash
# bench.sh DPSEMU BENCH - `make bench`: what dpsemu costs, as ratios against a baseline
# measured in the same run on the same machine. The numbers are information, never a
# pass/fail verdict: the script exits 0 unless something could not be measured at all.
#
#   registrations  N X.509 registrations over MQTT, each a new TLS connection, CONNECT,
#                  SUBSCRIBE, register, poll until assigned (every device a new one: a
#                  certificate each, so DPS and the hub do a real first registration)
#   handshakes     N connect + TLS handshake + close with the same client certificate
#                  against the same port: the floor a registration cannot go below
#   telemetry      M QoS 1 messages from one device through the hub, against the same
#                  client publishing to a local mosquitto with TLS and client certificates
#
# Overrides: BENCH_REGISTRATIONS (300), BENCH_MESSAGES (5000), BENCH_JOBS (2; the parallel
# run, 1 skips it), BENCH_WINDOW (32; messages in flight in the windowed telemetry run).
set -euo pipefail

dpsemu=${1:?usage: bench.sh DPSEMU BENCH}
bench=${2:?usage: bench.sh DPSEMU BENCH}
N=${BENCH_REGISTRATIONS:-300}
M=${BENCH_MESSAGES:-5000}
JOBS=${BENCH_JOBS:-2}
WINDOW=${BENCH_WINDOW:-32}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/dpsemu-bench.XXXXXX")
pids=()
cleanup() {
	local p
	for p in "${pids[@]}"; do
		kill "$p" 2>/dev/null || true
		wait "$p" 2>/dev/null || true
	done
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say() { printf 'bench: %s\n' "$*" >&2; }

# A port nothing answers on (a race with other programs is possible but harmless: the
# start fails loudly).
free_port() {
	local p
	for _ in $(seq 1 100); do
		p=$((20000 + RANDOM % 30000))
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
			echo "$p"
			return 0
		fi
	done
	say "no free port found"
	return 1
}

wait_port() {
	local port=$1 pid=$2
	for _ in $(seq 1 200); do
		if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
			return 0
		fi
		kill -0 "$pid" 2>/dev/null || { say "process $pid exited before listening"; return 1; }
		sleep 0.05
	done
	say "nothing listens on port $port"
	return 1
}

command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || {
	say "mosquitto is not installed (apt-get install mosquitto)"; exit 1; }
mosquitto_bin=$(command -v mosquitto 2>/dev/null || echo /usr/sbin/mosquitto)

# --- PKI: one root for the enrollment group; 2N devices (sequential + parallel runs)
# directly under it.
say "making $((2 * N)) device certificates"
mkdir -p "$tmp/pki" "$tmp/seed" "$tmp/data"
"$dpsemu" certs root --cn bench-root --out "$tmp/pki/root" >/dev/null
for ((i = 0; i < 2 * N; i++)); do
	id=$(printf 'dev-%04d' "$i")
	"$dpsemu" certs device --cn "$id" --ca "$tmp/pki/root" --out "$tmp/pki/$id" >/dev/null
done
cat >"$tmp/seed/bench-group.json" <<EOF
{
  "enrollmentGroupId": "bench-group",
  "attestation": { "type": "x509",
    "x509": { "signingCertificates": { "primary": { "certificate": "$tmp/pki/root.pem" } } } },
  "provisioningStatus": "enabled"
}
EOF

# --- dpsemu
mqtt_port=$(free_port)
https_port=$(free_port)
DPSEMU_DATA_DIR="$tmp/data" DPSEMU_MQTT_PORT=$mqtt_port DPSEMU_HTTPS_PORT=$https_port \
	DPSEMU_ENROLLMENTS_DIR="$tmp/seed" DPSEMU_RETRY_AFTER=0 DPSEMU_LOG_LEVEL=warn \
	"$dpsemu" >"$tmp/dpsemu.log" 2>&1 &
pids+=($!)
wait_port "$mqtt_port" "${pids[0]}" || { cat "$tmp/dpsemu.log" >&2; exit 1; }
server_ca="$tmp/data/certs/server-ca.pem"

# --- mosquitto: TLS with the server certificate dpsemu generated in its data dir (the same
# chain and key type: both servers pay the same), client certificates required and
# verified against the devices' root as dpsemu verifies them against the group's.
mosq_port=$(free_port)
cat >"$tmp/mosquitto.conf" <<EOF
listener $mosq_port 127.0.0.1
cafile $tmp/pki/root.pem
certfile $tmp/data/certs/server.pem
keyfile $tmp/data/certs/server.key
require_certificate true
allow_anonymous true
persistence false
set_tcp_nodelay true
# As root mosquitto would switch to its own user, who cannot read the temp dir.
user $(id -un)
log_dest stderr
log_type error
log_type warning
EOF
"$mosquitto_bin" -c "$tmp/mosquitto.conf" >"$tmp/mosquitto.log" 2>&1 &
pids+=($!)
wait_port "$mosq_port" "${pids[1]}" || { cat "$tmp/mosquitto.log" >&2; exit 1; }

# Runs the bench tool; prints its rate, or fails with its message and the daemons' logs.
rate() {
	local out
	if ! out=$("$bench" "$@" --certs "$tmp/pki" 2>&1); then
		say "measurement failed: $out"
		say "dpsemu log:"; tail -n 20 "$tmp/dpsemu.log" >&2
		say "mosquitto log:"; tail -n 20 "$tmp/mosquitto.log" >&2
		return 1
	fi
	sed -n 's/.* rate=\([0-9.]*\).*/\1/p' <<<"$out"
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }'; }

dps=(--port "$mqtt_port" --ca "$server_ca")
say "$N registrations, $N handshakes (1 job)"
reg1=$(rate register "${dps[@]}" --count "$N" --first 0)
hs1=$(rate handshake "${dps[@]}" --count "$N")
if [ "$JOBS" -gt 1 ]; then
	say "$N registrations, $N handshakes ($JOBS jobs)"
	regj=$(rate register "${dps[@]}" --count "$N" --first "$N" --jobs "$JOBS")
	hsj=$(rate handshake "${dps[@]}" --count "$N" --jobs "$JOBS")
fi

# dev-0000 is a hub device now; mosquitto sees the same client id, username and topic.
mosq=(--port "$mosq_port" --ca "$server_ca")
say "$M messages, window 1 and $WINDOW, dpsemu and mosquitto"
tel_d1=$(rate telemetry "${dps[@]}" --count "$M" --window 1)
tel_m1=$(rate telemetry "${mosq[@]}" --count "$M" --window 1)
tel_dw=$(rate telemetry "${dps[@]}" --count "$M" --window "$WINDOW")
tel_mw=$(rate telemetry "${mosq[@]}" --count "$M" --window "$WINDOW")

printf '\n%-44s %12s %12s %8s\n' "measurement" "dpsemu /s" "baseline /s" "cost"
printf '%-44s %12s %12s %8s\n' "registration vs TLS handshake (1 job, N=$N)" "$reg1" "$hs1" \
	"$(ratio "$hs1" "$reg1")"
if [ "$JOBS" -gt 1 ]; then
	printf '%-44s %12s %12s %8s\n' "registration vs TLS handshake ($JOBS jobs)" "$regj" \
		"$hsj" "$(ratio "$hsj" "$regj")"
fi
printf '%-44s %12s %12s %8s\n' "telemetry QoS 1 vs mosquitto (window 1)" "$tel_d1" \
	"$tel_m1" "$(ratio "$tel_m1" "$tel_d1")"
printf '%-44s %12s %12s %8s\n' "telemetry QoS 1 vs mosquitto (window $WINDOW)" "$tel_dw" \
	"$tel_mw" "$(ratio "$tel_mw" "$tel_dw")"
printf '\ncost = baseline rate / dpsemu rate: the time one dpsemu operation takes in units\n'
printf 'of the baseline operation (1.00 = as cheap as the baseline). M=%s messages.\n' "$M"
exit 0
