#!/bin/sh
# Builds the Debian package from the files git tracks (and new ones it does not
# ignore), in a scratch copy: dpkg-buildpackage writes beside the source tree.
# Usage: scripts/build-package.sh OUTDIR
set -eu

out=${1:?usage: scripts/build-package.sh OUTDIR}
top=$(cd "$(dirname "$0")/.." && pwd)
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT INT TERM

mkdir -p "$scratch/onramp" "$out"
(cd "$top" && git ls-files -co --exclude-standard -z | xargs -0 tar -cf - --) |
	tar -xf - -C "$scratch/onramp"
if ! (cd "$scratch/onramp" &&
	DEB_BUILD_OPTIONS="nocheck parallel=$(nproc)" dpkg-buildpackage -b -us -uc \
		>"$scratch/build.log" 2>&1); then
	tail -n 40 "$scratch/build.log" >&2
	echo "build-package: dpkg-buildpackage failed (last lines above)" >&2
	exit 1
fi
out=$(cd "$out" && pwd)
for f in "$scratch"/*.deb; do
	cp "$f" "$out/"
	echo "package: $out/$(basename "$f")"
done
