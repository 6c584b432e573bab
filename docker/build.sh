#!/usr/bin/env bash
# Builds dpsemu and stages what its container image holds, so the image recipe is the
# same script on a Docker builder and on a CI host without a Docker engine.
#
#   docker/build.sh OUTDIR [PROGRAM...]
#
# PROGRAM is dpsemu (the default) and/or dps-device (the example device). OUTDIR
# becomes a file system tree that the image copies to its root:
#   OUTDIR/usr/local/bin/PROGRAM                  stripped
#   OUTDIR/usr/local/lib/dpsemu/LIB.so.N          every shared library the programs
#                                                 load (ldd), except glibc's
# The image lists usr/local/lib/dpsemu in /etc/ld.so.conf.d (not staged here: a "*.d"
# folder under build/ would be read by the Makefile as a dependency file).
# glibc (libc6: libc, libm, the loader, ...) stays the base image's own: the loader and
# libc must come from one package, and the runtime stage starts from the same Debian
# release as the build stage.
#
# Steps: install missing build packages (scripts/deps.sh build), make, stage, check
# that every library resolves inside OUTDIR or to glibc. OUTDIR is replaced as a
# whole; it must be new, empty, or an earlier stage (it holds a .dpsemu-stage mark).
# STAGE_BUILD_DIR (default: build) is make's BUILD. The build uses the Makefile's own
# flags (CFLAGS and LDFLAGS from the environment apply, as for make): settings of a
# calling make (MAKEFLAGS, e.g. make test's sanitizer pass) are not inherited.
# Idempotent; with the packages installed and the build up to date it takes a second.
set -euo pipefail

usage() {
	echo "usage: $0 OUTDIR [dpsemu|dps-device]..." >&2
	exit 2
}

[ $# -ge 1 ] || usage
root=$(cd "$(dirname "$0")/.." && pwd)
out=$(realpath -m "$1")
shift
progs=("$@")
[ ${#progs[@]} -gt 0 ] || progs=(dpsemu)
build=${STAGE_BUILD_DIR:-build}
case $build in
/*) build_abs=$build ;;
*) build_abs=$root/$build ;;
esac

targets=()
for p in "${progs[@]}"; do
	case $p in
	dpsemu) targets+=("$build/dpsemu") ;;
	dps-device) targets+=("$build/tools/dps-device") ;;
	*) echo "$0: unknown program '$p' (dpsemu or dps-device)" >&2; usage ;;
	esac
done

# OUTDIR is deleted and rebuilt: never let a typo aim that at something else.
mark=.dpsemu-stage
case $out in
/ | "$root" | "$root/build" | "$HOME") echo "$0: refusing to use $out as OUTDIR" >&2; exit 2 ;;
esac
if [ -e "$out" ] && [ ! -e "$out/$mark" ] && [ -n "$(ls -A "$out" 2>/dev/null || echo x)" ]; then
	echo "$0: $out exists and is not a stage made by this script; remove it or pick another" >&2
	exit 2
fi

"$root/scripts/deps.sh" build
# -o: deps.sh already ran, and the device must not pull in the test suite's packages.
env -u MAKEFLAGS -u MFLAGS -u MAKEOVERRIDES -u MAKELEVEL -u SANITIZE \
	make -C "$root" -o deps -o test-deps BUILD="$build" -j"$(nproc)" "${targets[@]}" >&2

libdir=usr/local/lib/dpsemu
tmp=$out.tmp.$$
trap 'rm -rf "$tmp"' EXIT
rm -rf "$tmp"
mkdir -p "$tmp/usr/local/bin" "$tmp/$libdir"
touch "$tmp/$mark"

# glibc's files, resolved (ldd may name one through the /lib -> /usr/lib symlink).
declare -A glibc_file=()
while read -r f; do
	[ -f "$f" ] && glibc_file[$(readlink -f "$f")]=1
done < <(dpkg-query -L libc6)
is_glibc() {
	[ -n "${glibc_file[$(readlink -f "$1")]:-}" ]
}

# "name => /path (0x...)" lines; the loader ("/lib64/ld-linux...") and the vDSO have no "=>".
libs_of() {
	ldd "$1" | awk '$2 == "=>" { print $1, $3 }'
}

glibc=()
for i in "${!progs[@]}"; do
	bin=$build_abs/${targets[$i]#"$build"/}
	install -m 0755 -s "$bin" "$tmp/usr/local/bin/${progs[$i]}"
	while read -r name path; do
		if [ "$path" = "not" ]; then
			echo "$0: ${progs[$i]} needs $name, which is not installed" >&2
			exit 1
		fi
		if is_glibc "$path"; then
			glibc+=("$name")
			continue
		fi
		[ -e "$tmp/$libdir/$name" ] || install -m 0644 "$(readlink -f "$path")" "$tmp/$libdir/$name"
	done < <(libs_of "$bin")
done

# The stage must be complete: with its library folder first, nothing outside it but
# glibc may be loaded.
for p in "${progs[@]}"; do
	while read -r name path; do
		case $path in
		"$tmp/$libdir/"*) ;;
		*)
			if [ "$path" = "not" ] || ! is_glibc "$path"; then
				echo "$0: staged $p loads $name from $path, outside the stage" >&2
				exit 1
			fi
			;;
		esac
	done < <(LD_LIBRARY_PATH="$tmp/$libdir" libs_of "$tmp/usr/local/bin/$p")
done

rm -rf "$out"
mv "$tmp" "$out"
trap - EXIT
n=$(find "$out/$libdir" -type f | wc -l)
sorted=$(printf '%s\n' "${glibc[@]}" | sort -u | tr '\n' ' ')
echo "staged ${progs[*]} and $n libraries in $out (from the base image: ${sorted% })"
