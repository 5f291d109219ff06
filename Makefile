# onramp: a thin layer over Meson + ninja. Every target installs the Debian
# packages it needs first (scripts/install-deps.sh; silent when present).
#   make         build everything into build/
#   make test    build (normal and ASan+UBSan) and run all tests
#   make demo    run the whole flow on this machine (see README.md);
#                make demo KEEP=1 leaves the lab running, make demo-stop stops it
#   make install install the programs, man pages, units and completion under
#                PREFIX (default /usr/local), staged under DESTDIR when set
#   make package build the Debian package (debian/) into build/package/
#   make scale   scale-out run (not in make test): 2 instances of every daemon
#                behind HAProxy on PostgreSQL, storms of 1,000 onramp-fleetsim
#                routers with instances killed -9, then the Patroni primary
#                (scripts/scale.py, bounded to 15 minutes)
#   make bench   onramp against nginx, scaling curves, agent (docs/benchmarks.md);
#                not part of make test; writes build/bench/results.json

BUILD := build
ASAN_BUILD := build-asan
PREFIX ?= /usr/local
DESTDIR ?=

KEEP ?= 0

.PHONY: all build deps test test-deps asan demo demo-stop install package scale bench clean

all: build

deps:
	@scripts/install-deps.sh build

build: deps
	@[ -f $(BUILD)/build.ninja ] || meson setup $(BUILD) >/dev/null
	@ninja -C $(BUILD) >/dev/null || ninja -C $(BUILD)

asan: deps
	@[ -f $(ASAN_BUILD)/build.ninja ] || meson setup $(ASAN_BUILD) \
		-Db_sanitize=address,undefined -Db_lundef=false -Dbuildtype=debug >/dev/null
	@ninja -C $(ASAN_BUILD) >/dev/null || ninja -C $(ASAN_BUILD)

test-deps:
	@scripts/install-deps.sh test

test: test-deps build asan
	@/usr/bin/python3 tests/run-all.py

demo:
	@scripts/install-deps.sh demo
	@$(MAKE) --no-print-directory build
	@DEMO_KEEP=$(KEEP) scripts/demo.sh

demo-stop:
	@scripts/demo.sh stop

# The normal build, configured for PREFIX: only what names a path is rebuilt.
install: build
	@meson configure $(BUILD) -Dprefix=$(PREFIX) >/dev/null
	@ninja -C $(BUILD) >/dev/null
	@meson install -C $(BUILD) --no-rebuild --quiet $(if $(DESTDIR),--destdir "$(DESTDIR)")

# dpkg-buildpackage in a copy of the tracked tree, so that the work tree and its
# builds stay as they are; the .deb files land in build/package/.
package:
	@scripts/install-deps.sh package
	@scripts/build-package.sh $(BUILD)/package

scale:
	@scripts/install-deps.sh scale
	@$(MAKE) --no-print-directory build
	@timeout 900 /usr/bin/python3 scripts/scale.py

bench:
	@scripts/install-deps.sh bench
	@$(MAKE) --no-print-directory build
	@/usr/bin/python3 bench/run_bench.py

clean:
	rm -rf $(BUILD) $(ASAN_BUILD)
