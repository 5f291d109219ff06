#!/bin/sh
# Installs the Debian packages onramp needs, and only the missing ones.
# Usage: scripts/install-deps.sh build|test|demo|package|scale|bench
# Silent when everything is present; idempotent; must run as root to install.
set -eu

build_pkgs="gcc meson ninja-build pkg-config libssl-dev libcurl4-openssl-dev
libevent-dev libjansson-dev libsqlite3-dev libpq-dev libtss2-dev libcmocka-dev openssl
libsystemd-dev"
test_pkgs="python3 python3-pytest python3-pytest-timeout squid tinyproxy swtpm swtpm-tools tpm2-tools
dnsmasq postgresql apache2-utils iproute2 tpm2-openssl procps"
test_pkgs="$test_pkgs busybox" # udhcpc, for the agent's DHCP hook mode test
test_pkgs="$test_pkgs isc-dhcp-server kea-dhcp4-server isc-dhcp-client" # DHCP servers, dhclient (test_agent_dhcp_servers.py)
test_pkgs="$test_pkgs man-db" # man -l, for the man page test (tests/integration/test_e2e_docs.py)
test_pkgs="$test_pkgs debhelper dpkg-dev fakeroot bash-completion" # tests/integration/test_package.py
test_pkgs="$test_pkgs systemd" # systemd-analyze verify of the units (test_package.py)
test_pkgs="$test_pkgs chromium chromium-driver python3-selenium" # tests/integration/test_dashboard.py
test_pkgs="$test_pkgs haproxy" # TCP balancer in front of several instances (tests/integration/scalelab.py)
test_pkgs="$test_pkgs patroni python3-etcd etcd-server" # PostgreSQL failover (tests/integration/patronilab.py)
test_pkgs="$test_pkgs python3-pytest-xdist" # integration tests two files at a time (tests/run-all.py)
test_pkgs="$test_pkgs clang-format" # the C sources follow .clang-format (tests/integration/test_style.py)

package_pkgs="debhelper dpkg-dev fakeroot" # make package (scripts/build-package.sh)
# make bench: nginx to compare with, gnuplot for the plot, perf for profiles (docs/benchmarks.md)
bench_pkgs="nginx-light gnuplot-nox linux-perf strace"

case "${1:-build}" in
build) wanted="$build_pkgs" ;;
package) wanted="$build_pkgs $package_pkgs" ;;
test | demo) wanted="$build_pkgs $test_pkgs" ;;
scale) wanted="$build_pkgs $test_pkgs" ;; # make scale (scripts/scale.py): the test set
bench) wanted="$build_pkgs $test_pkgs $bench_pkgs" ;;
*)
	echo "install-deps: unknown set '$1' (expected build, test, demo, package, scale or bench)" >&2
	exit 2
	;;
esac

missing=""
for p in $wanted; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
		missing="$missing $p"
	fi
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
	echo "install-deps: missing Debian packages:$missing" >&2
	echo "install-deps: run as root, or install them with apt-get" >&2
	exit 1
fi
echo "install-deps: installing$missing" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
# shellcheck disable=SC2086
apt-get install -y -qq $missing >/dev/null
