#!/bin/sh
# Creates, once, the PKI that the docker-compose services share. The compose file's
# "pki" service runs it (as root, with dpsemu on PATH) before anything else starts:
#
#   init-pki.sh [DIR]            DIR: PKI_DIR, or /pki
#
#   server-ca.pem/.key           the server CA: DPS's and the hub's TLS certificates
#                                chain to it (DPSEMU_SERVER_CA_CERT/KEY); clients trust it
#   device-root.pem/.key         root of the certificates DPS issues from CSRs
#   issuing-ca.pem/.key          the issuing CA directly under it: DPS signs with it, the
#                                hub trusts it (DPSEMU_ISSUING_CA_CERT/KEY)
#   device-ca-chain.pem          issuing CA, then root (DPSEMU_ISSUING_CA_CHAIN)
#   bootstrap-ca.pem/.key        CA of the enrollment group the example device uses
#   device-001.pem/.key, device-001-chain.pem
#                                the example device's bootstrap (factory) certificate
#
# Nothing is replaced once DIR holds the .complete mark: clients have been told to
# trust these CAs. A run cut short starts again from nothing. Run as root, it hands
# the files to PKI_OWNER (default 10001:10001, the image's dpsemu user), since keys
# are readable by their owner only.
set -eu

dir=${1:-${PKI_DIR:-/pki}}
owner=${PKI_OWNER:-10001:10001}
device=${PKI_DEVICE_ID:-device-001}

if [ -f "$dir/.complete" ]; then
	echo "init-pki: $dir already holds the PKI; nothing to do"
	exit 0
fi
mkdir -p "$dir"
work=$dir/.work
rm -rf "$work"
mkdir -m 0700 "$work"

dpsemu certs root --cn "dpsemu server CA" --out "$work/server-ca"
dpsemu certs root --cn "dpsemu device root CA" --key-type p384 --out "$work/device-root"
dpsemu certs intermediate --cn "dpsemu device issuing CA" --key-type p384 --pathlen 0 \
	--days 1825 --ca "$work/device-root" --out "$work/issuing-ca"
cat "$work/issuing-ca.pem" "$work/device-root.pem" >"$work/device-ca-chain.pem"
dpsemu certs root --cn "dpsemu bootstrap CA" --out "$work/bootstrap-ca"
dpsemu certs device --cn "$device" --days 1825 --ca "$work/bootstrap-ca" --out "$work/$device"

mv -f "$work"/* "$dir"/
rmdir "$work"
if [ "$(id -u)" = 0 ]; then
	chown -R "$owner" "$dir/"
fi
touch "$dir/.complete"
echo "init-pki: created the PKI in $dir"
