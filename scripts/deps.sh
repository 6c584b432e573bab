#!/usr/bin/env bash
# Makes sure the Debian packages the build and the tests need are installed.
# Installs what is missing with apt-get when it can (root, or sudo without a
# password); otherwise names the missing packages and fails.
#   scripts/deps.sh build   - what building dpsemu needs
#   scripts/deps.sh test    - plus what the test suite needs
set -euo pipefail

build_pkgs=(gcc make pkg-config libssl-dev libmicrohttpd-dev liblmdb-dev libjansson-dev libcurl4-openssl-dev libmosquitto-dev)
test_pkgs=(libcmocka-dev mosquitto mosquitto-clients openssl curl nodejs npm)

want=("${build_pkgs[@]}")
[ "${1:-build}" = test ] && want+=("${test_pkgs[@]}")

missing=()
for p in "${want[@]}"; do
	# node and npm may come from outside Debian (nvm, NodeSource): a working
	# binary is as good as the package.
	case "$p" in
	nodejs) command -v node >/dev/null 2>&1 && continue ;;
	npm) command -v npm >/dev/null 2>&1 && continue ;;
	esac
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "dpsemu: installing missing Debian packages: ${missing[*]}" >&2
if [ "$(id -u)" = 0 ]; then
	apt=(apt-get)
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
	apt=(sudo apt-get)
else
	echo "dpsemu: cannot install packages (not root, no sudo). Run:" >&2
	echo "  sudo apt-get install -y ${missing[*]}" >&2
	exit 1
fi
export DEBIAN_FRONTEND=noninteractive
"${apt[@]}" update -qq
"${apt[@]}" install -y -qq --no-install-recommends "${missing[@]}" >&2
