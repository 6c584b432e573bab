#!/usr/bin/env bash
# Runs one Node test suite against a built dpsemu.
#   tests/run-node-tests.sh SUITE DPSEMU_BIN TOOLS_DIR
# SUITE is a folder of tests/node (integ: raw protocols, sdk: the official SDKs).
# Every test file starts its own daemon on free ports with a temporary data dir,
# so files run in parallel (DPSEMU_TEST_JOBS, default 2). Every wait inside the tests is
# bounded; DPSEMU_TEST_FILE_TIMEOUT_MS (default 10 min) is the last resort for a hung file.
# Exits non-zero on failure.
set -euo pipefail

if [ $# -ne 3 ]; then
	echo "usage: $0 SUITE DPSEMU_BIN TOOLS_DIR" >&2
	exit 2
fi
suite=$1
bin=$(realpath -m "$2")
tools=$(realpath -m "$3")
node_dir=$(cd "$(dirname "$0")/node" && pwd)

if [ ! -d "$node_dir/$suite" ]; then
	echo "$0: no test suite '$suite' in $node_dir" >&2
	exit 2
fi
if [ ! -x "$bin" ]; then
	echo "$0: $bin is not an executable (build it first)" >&2
	exit 2
fi

# The suites use node:test features of Node 20 (--test-concurrency, hooks).
major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
if [ "$major" -lt 20 ]; then
	echo "$0: Node.js 20 or later is needed for the test suites; found $(node --version 2>/dev/null || echo none)." >&2
	echo "  (Debian 12's nodejs package is 18: install Node 20 from your usual source.)" >&2
	exit 2
fi

# Install the pinned packages when node_modules is missing or older than the
# lockfile. npm writes node_modules/.package-lock.json on every install.
stamp=$node_dir/node_modules/.package-lock.json
if [ ! -f "$stamp" ] || [ "$node_dir/package-lock.json" -nt "$stamp" ]; then
	echo "== npm ci ($node_dir)"
	(cd "$node_dir" && npm ci --silent --no-audit --no-fund --ignore-scripts)
fi

shopt -s nullglob
files=("$node_dir/$suite"/*.test.js)
if [ ${#files[@]} -eq 0 ]; then
	echo "$0: no *.test.js files in $node_dir/$suite" >&2
	exit 2
fi

echo "== node --test $suite (${#files[@]} files)"
cd "$node_dir"
DPSEMU_BIN=$bin DPSEMU_TOOLS=$tools \
	exec node --test --test-concurrency="${DPSEMU_TEST_JOBS:-2}" --test-timeout="${DPSEMU_TEST_FILE_TIMEOUT_MS:-600000}" \
	--test-reporter=spec "${files[@]}"
