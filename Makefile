# SPDX-License-Identifier: MIT
# pagemove: plain Make, as liburing. Outputs go under $(B) (build/ by default;
# SAN=1 builds an ASan+UBSan tree in build-san/).

NAME      := pagemove
# The one version source: PMV_VERSION_MAJOR and PMV_VERSION_MINOR in the
# public header. The library's pmv_version(), `pagemove --version`,
# pagemove.pc, the shared library's file name and soname, and the man
# pages' footers all come from it. The soname carries the major number
# only: minor releases keep the ABI (tests/abi checks that they do).
VERSION_MAJOR := $(shell awk '$$2 == "PMV_VERSION_MAJOR" { print $$3 }' include/pagemove.h)
VERSION_MINOR := $(shell awk '$$2 == "PMV_VERSION_MINOR" { print $$3 }' include/pagemove.h)
ifeq ($(VERSION_MAJOR),)
$(error no PMV_VERSION_MAJOR in include/pagemove.h)
endif
ifeq ($(VERSION_MINOR),)
$(error no PMV_VERSION_MINOR in include/pagemove.h)
endif
VERSION   := $(VERSION_MAJOR).$(VERSION_MINOR)
SOVERSION := $(VERSION_MAJOR)
PREFIX    ?= /usr/local
LIBDIR    ?= $(PREFIX)/lib
INCDIR    ?= $(PREFIX)/include
BINDIR    ?= $(PREFIX)/bin
MANDIR    ?= $(PREFIX)/share/man

CC        ?= gcc
CFLAGS    ?= -O2 -g
# Warnings are errors here, in CI and in `make test`; a packager whose
# compiler warns where ours does not can build with WERROR=0.
WERROR    ?= 1
override CFLAGS += -std=gnu11 -Wall -Wextra $(if $(filter 0,$(WERROR)),,-Werror) \
		   -D_GNU_SOURCE -pthread -Iinclude
# (pagemove.pc's Libs.private says the same, for static links)
LDLIBS    := -lnuma -llz4 -lzstd -luring -lxxhash -pthread

ifeq ($(STATIC),1)
B         ?= build-static
override LDFLAGS += -static
endif
ifeq ($(SAN),1)
B         ?= build-san
override CFLAGS += -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
override LDFLAGS += -fsanitize=address,undefined
else
B         ?= build
endif

# A build whose Debian packages are missing stops here, before compiling,
# and says which to install; only `make deps`, `make test` and `make demo`
# install them (scripts/deps.sh has the list). BUILD_DEPS=HEADER:PACKAGE...
# replaces the list (for tests/t_build.sh). Goals that install first check
# in the make they start after installing.
BUILD_DEPS ?=
ifneq ($(filter-out deps test demo clean,$(or $(MAKECMDGOALS),all)),)
DEPS_MISSING := $(shell PMV_BUILD_HEADERS='$(BUILD_DEPS)' sh scripts/deps.sh missing $(CC) $(CPPFLAGS) $(CFLAGS))
ifneq ($(DEPS_MISSING),)
$(info pagemove: cannot build: missing Debian packages: $(DEPS_MISSING))
$(info pagemove: `make deps` installs them (as root), or: apt-get install $(DEPS_MISSING))
$(error missing build dependencies)
endif
endif

LIB_SRCS  := $(wildcard src/*.c)
# src/abi.c: the old symbol versions, which only a shared library has
LIB_OBJS  := $(filter-out $(B)/src/abi.o,$(LIB_SRCS:src/%.c=$(B)/src/%.o))
LIB_SOBJS := $(LIB_SRCS:src/%.c=$(B)/src/%.os)
HDRS      := include/pagemove.h $(wildcard src/*.h)

# tools/ (the CLI) uses bench/ (the benches, the demo's workload) and
# common/ (option parsing); bench/ uses common/ only: no -Itools, so a
# bench/ file that reached into tools/ would not build.
TOOL_SRCS := $(wildcard tools/*.c) $(wildcard bench/*.c) $(wildcard common/*.c)
TOOL_HDRS := $(wildcard tools/*.h) $(wildcard bench/*.h) $(wildcard common/*.h)
TEST_SRCS := $(wildcard tests/t_*.c)
TESTS     := $(TEST_SRCS:tests/%.c=$(B)/tests/%)
TEST_HELPERS := $(B)/tests/cli_child $(B)/tests/run_child
EXAMPLES  := $(patsubst examples/%.c,$(B)/examples/%,$(wildcard examples/*.c))
# The ABI test (tests/abi/README.md): one program per released header, and
# one for today's, each against the shared library (so none in a static tree).
ifneq ($(STATIC),1)
ABI_RELEASES := $(patsubst tests/abi/pagemove-%.h,%,$(wildcard tests/abi/pagemove-*.h))
ABI_TESTS := $(ABI_RELEASES:%=$(B)/tests/t_abi_%) $(B)/tests/t_abi_current
endif
# Man pages get the version at build time; a page that is only a .so link
# is copied as it is.
MAN_SRCS  := $(wildcard man/*.1 man/*.3)
MANS      := $(MAN_SRCS:man/%=$(B)/man/%)

STATIC_LIB := $(B)/libpagemove.a
SHARED_LIB := $(B)/libpagemove.so.$(VERSION)
CLI        := $(B)/pagemove
# libpagemove-preload.so (pagemove run): preload/ and the library's PIC
# objects in one object, exporting only what it interposes. Never
# sanitized: it is preloaded into programs that are not (SAN=1 builds its
# copy). Its own copy of the library's objects: PIC, without symbol
# versions (PMV_SHARED), which only libpagemove.so has.
PRELOAD_SO := $(B)/libpagemove-preload.so
PRELOAD_SRCS := $(wildcard preload/*.c) common/runcfg.c
PRELOAD_CFLAGS = $(filter-out -fsanitize=% -fno-sanitize-recover=%,$(CFLAGS))
PRELOAD_LDFLAGS = $(filter-out -fsanitize=%,$(LDFLAGS))
PRELOAD_LIB_OBJS := $(filter-out $(B)/preload/src/abi.os,$(LIB_SRCS:src/%.c=$(B)/preload/src/%.os))

.PHONY: all lib test test-unit test-san test-numa stress stress-loop bench demo install clean deps

# A static tree (the NUMA guest's) has no shared objects: no preload there.
ifeq ($(STATIC),1)
PRELOAD_ALL :=
else
PRELOAD_ALL := $(PRELOAD_SO)
endif

all: lib $(CLI) $(PRELOAD_ALL) $(TESTS) $(ABI_TESTS) $(TEST_HELPERS) $(EXAMPLES) $(B)/pagemove.pc $(MANS)

ifeq ($(STATIC),1)
lib: $(STATIC_LIB)
else
lib: $(STATIC_LIB) $(SHARED_LIB)
endif

deps:
	@sh scripts/deps.sh build

$(B)/src/%.o: src/%.c $(HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -fvisibility=hidden -c -o $@ $<

$(B)/src/%.os: src/%.c $(HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -fPIC -fvisibility=hidden -DPMV_SHARED -c -o $@ $<

$(STATIC_LIB): $(LIB_OBJS)
	rm -f $@
	ar rcs $@ $^

$(SHARED_LIB): $(LIB_SOBJS) src/libpagemove.map
	$(CC) $(LDFLAGS) -shared -Wl,-soname,libpagemove.so.$(SOVERSION) \
		-Wl,--version-script=src/libpagemove.map -o $@ $(LIB_SOBJS) $(LDLIBS)
	ln -sf libpagemove.so.$(VERSION) $(B)/libpagemove.so.$(SOVERSION)
	ln -sf libpagemove.so.$(VERSION) $(B)/libpagemove.so

# The library's own allocations go straight to glibc's malloc, never
# through the preload's malloc nor the program's allocator: a jemalloc that
# maps an extent holds its lock, and the region made for it allocates.
PRELOAD_REDEFINE := malloc=__libc_malloc calloc=__libc_calloc realloc=__libc_realloc \
	free=__libc_free aligned_alloc=__libc_memalign posix_memalign=_pmvp_libc_posix_memalign

$(B)/preload/src/%.os: src/%.c $(HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(PRELOAD_CFLAGS) -fPIC -fvisibility=hidden -c -o $@.tmp $<
	objcopy $(PRELOAD_REDEFINE:%=--redefine-sym %) $@.tmp $@ && rm -f $@.tmp

$(PRELOAD_SO): $(PRELOAD_SRCS) preload/preload.h common/runcfg.h preload/preload.map $(PRELOAD_LIB_OBJS)
	$(CC) $(PRELOAD_CFLAGS) $(PRELOAD_LDFLAGS) -fPIC -fvisibility=hidden -shared \
		-Wl,--version-script=preload/preload.map -o $@ $(PRELOAD_SRCS) \
		$(PRELOAD_LIB_OBJS) $(LDLIBS) -ldl

$(CLI): $(TOOL_SRCS) $(TOOL_HDRS) $(STATIC_LIB)
	$(CC) $(CFLAGS) $(LDFLAGS) -DPMV_LIBDIR='"$(LIBDIR)"' -o $@ $(TOOL_SRCS) $(STATIC_LIB) $(LDLIBS) -lm

$(B)/tests/%: tests/%.c tests/harness.h common/threads.h $(STATIC_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(STATIC_LIB) $(LDLIBS)

# Release X.Y's library as its users linked against it: a stub with the
# soname, every symbol of X.Y's version script in X.Y's nodes. A program
# linked with it binds to X.Y's symbol versions; at run time the rpath
# ($(B), searched before LD_LIBRARY_PATH) gives it today's library.
$(B)/tests/abi/%/libpagemove.so: tests/abi/libpagemove-%.map scripts/abi-stub.awk
	@mkdir -p $(dir $@)
	awk -f scripts/abi-stub.awk $< > $(dir $@)stub.c
	$(CC) -shared -fPIC -Wl,-soname,libpagemove.so.$(SOVERSION) \
		-Wl,--version-script=$< -o $@ $(dir $@)stub.c

# kept: every t_abi_X.Y would relink at each make otherwise
.SECONDARY: $(ABI_RELEASES:%=$(B)/tests/abi/%/libpagemove.so)
ABI_LINK = -Wl,-z,now -Wl,--disable-new-dtags -Wl,-rpath,'$$ORIGIN/..'

$(B)/tests/t_abi_%: tests/abi/abi.c tests/abi/pagemove-%.h $(B)/tests/abi/%/libpagemove.so $(SHARED_LIB)
	$(CC) $(CFLAGS) $(LDFLAGS) -DPMV_ABI_HEADER='"pagemove-$*.h"' -o $@ $< \
		-L$(B)/tests/abi/$* -lpagemove $(ABI_LINK)

$(B)/tests/t_abi_current: tests/abi/abi.c include/pagemove.h $(SHARED_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -DPMV_ABI_HEADER='"pagemove.h"' -o $@ $< \
		-L$(B) -lpagemove $(ABI_LINK)

# As a program outside the tree would be built, from the public header only
# (static, so that it runs from the build tree without LD_LIBRARY_PATH).
$(B)/examples/%: examples/%.c include/pagemove.h $(STATIC_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(STATIC_LIB) $(LDLIBS)

$(B)/tests/cli_child: tests/cli_child.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $<

# runs under the preload, which is never sanitized: neither is it
$(B)/tests/run_child: tests/run_child.c
	@mkdir -p $(dir $@)
	$(CC) $(PRELOAD_CFLAGS) $(PRELOAD_LDFLAGS) -o $@ $<

# Directories under PREFIX are written from ${prefix}, so that the file can
# move with its tree (pkg-config --define-prefix); others stay absolute.
pc_dir = $(patsubst $(PREFIX)/%,$${prefix}/%,$(1))

$(B)/pagemove.pc: pagemove.pc.in Makefile include/pagemove.h
	@mkdir -p $(dir $@)
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(call pc_dir,$(LIBDIR))|' \
	    -e 's|@INCDIR@|$(call pc_dir,$(INCDIR))|' -e 's|@VERSION@|$(VERSION)|' $< > $@

$(B)/man/%: man/% Makefile include/pagemove.h
	@mkdir -p $(dir $@)
	sed -e 's|@VERSION@|$(VERSION)|g' -e 's|@VERSION_MAJOR@|$(VERSION_MAJOR)|g' \
	    -e 's|@VERSION_MINOR@|$(VERSION_MINOR)|g' $< > $@

# `make test`: the suite, then the same suite under ASan+UBSan, then the
# multi-node NUMA guest. Each step installs what it is missing (as root):
# `make deps` here, the guest's qemu, busybox and cpio in tests/numa/run.sh.
# The other targets install nothing; the ones below that build stop with
# the list of missing packages.
test: deps
	@$(MAKE) --no-print-directory all
	@sh tests/all.sh $(B)

test-unit: all
	sh tests/run.sh $(B)

test-san:
	$(MAKE) SAN=1 all
	sh tests/run.sh build-san

test-numa:
	@if [ -x tests/numa/run-suite.sh ]; then sh tests/numa/run-suite.sh; \
	else echo "test-numa: tests/numa/run-suite.sh missing"; exit 1; fi

# make stress: every test with its loops STRESS times longer. make stress-loop
# RUNS=20: that many runs in a row, stopping at the first failing one.
STRESS ?= 5
RUNS ?= 20
stress: all
	PMV_STRESS=$(STRESS) sh tests/run.sh $(B)

stress-loop: all
	@i=1; while [ $$i -le $(RUNS) ]; do \
		echo "== stress run $$i of $(RUNS)"; \
		PMV_STRESS=$(STRESS) sh tests/run.sh $(B) > $(B)/stress-$$i.log 2>&1; rc=$$?; \
		tail -n 1 $(B)/stress-$$i.log; \
		if [ $$rc -ne 0 ]; then grep '^FAIL' $(B)/stress-$$i.log; exit 1; fi; \
		i=$$((i + 1)); \
	done; echo "stress-loop: $(RUNS) clean runs in a row"

bench: all
	$(CLI) bench

# memory tiers, then a memory tier of 64 MiB with lz4 below it: real memory saved
demo: deps
	@$(MAKE) --no-print-directory all
	$(CLI) demo
	$(CLI) demo --seconds 10 --tiers mem:64M,lz4

install: all
	install -d $(DESTDIR)$(LIBDIR)/pkgconfig $(DESTDIR)$(INCDIR) $(DESTDIR)$(BINDIR) \
		$(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man3
	install -m 644 include/pagemove.h $(DESTDIR)$(INCDIR)/
	install -m 644 $(STATIC_LIB) $(DESTDIR)$(LIBDIR)/
	install -m 755 $(SHARED_LIB) $(DESTDIR)$(LIBDIR)/
	install -m 755 $(PRELOAD_SO) $(DESTDIR)$(LIBDIR)/
	ln -sf libpagemove.so.$(VERSION) $(DESTDIR)$(LIBDIR)/libpagemove.so.$(SOVERSION)
	ln -sf libpagemove.so.$(VERSION) $(DESTDIR)$(LIBDIR)/libpagemove.so
	install -m 644 $(B)/pagemove.pc $(DESTDIR)$(LIBDIR)/pkgconfig/
	install -m 755 $(CLI) $(DESTDIR)$(BINDIR)/
	for m in $(B)/man/*.1; do [ -f "$$m" ] && install -m 644 $$m $(DESTDIR)$(MANDIR)/man1/; done; true
	for m in $(B)/man/*.3; do [ -f "$$m" ] && install -m 644 $$m $(DESTDIR)$(MANDIR)/man3/; done; true

clean:
	rm -rf build build-san build-static
