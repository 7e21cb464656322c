# etrnkit — build, test, run and benchmark.
#
#   make              build bin/etrnd bin/etrnsim bin/etrncheck bin/etrn
#   make test         unit tests and the pytest harness, plain and under ASan+UBSan, and the catalogue under ASan+UBSan
#   make run          the full conformance catalogue against etrnd inside etrnsim, with its report
#   make bench        benchmarks (bench/) against Postfix, quick; make bench-full: the long run
#   make fuzz         libFuzzer targets, each for a bounded time
#   make check-asan   only the ASan+UBSan parts of make test
#   make check-faults crash injection and faults, long version (500 rounds)
#   make test-slow    the long harness tests (Postfix catalogue, mutation check, ...)
#   make run-postfix  the catalogue against Debian's Postfix (root, network namespace)
#   make run-mutations the catalogue against etrnd with each of its 12 test-only defects
#   make install      PREFIX=/usr/local DESTDIR= : binaries, man pages, example config
#
# Every folder's *.c is picked up by wildcard: adding a module means adding a file.
# A folder's main.c is its program; everything else goes into that folder's archive.

CC        ?= cc
PREFIX    ?= /usr/local
DESTDIR   ?=
PYTHON    ?= /usr/bin/python3

# Output folders. The sanitizer build reuses these rules with O=build/asan BINDIR=build/asan/bin.
O         ?= build
BINDIR    ?= bin
SAN       ?=

PKGS      := libevent libevent_openssl libcares openssl libpcap ldns
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
CMOCKA_LIBS := $(shell pkg-config --libs cmocka 2>/dev/null)

INCLUDES  := -Ilib -Ipcap -Iserver -Isim -Iconformance -Iclient
OPT       ?= -O2 -g
CFLAGS    += $(OPT) -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -MMD -MP $(INCLUDES) $(PKG_CFLAGS) $(SAN)
LDFLAGS   += $(SAN)
LDLIBS    := $(PKG_LIBS) -lm

SANFLAGS  := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined

# Sources, per folder.
LIB_SRC    := $(wildcard lib/*.c)
PCAP_SRC   := $(wildcard pcap/*.c)
SERVER_SRC := $(filter-out server/main.c,$(wildcard server/*.c))
SIM_SRC    := $(filter-out sim/main.c,$(wildcard sim/*.c))
CHECK_SRC  := $(filter-out conformance/main.c,$(wildcard conformance/*.c))
CLIENT_SRC := $(filter-out client/main.c,$(wildcard client/*.c))
TEST_SRC   := $(wildcard tests/test_*.c)

objs = $(patsubst %.c,$(O)/%.o,$(1))

LIB_A     := $(O)/libetrn.a
PCAP_A    := $(O)/libetrnpcap.a
SERVER_A  := $(O)/libetrnd.a
SIM_A     := $(O)/libetrnsim.a
CHECK_A   := $(O)/libetrncheck.a
CLIENT_A  := $(O)/libetrnclient.a
# Link order: users before what they use.
ALL_A     := $(CHECK_A) $(SIM_A) $(SERVER_A) $(CLIENT_A) $(PCAP_A) $(LIB_A)

# A program is built only once its main.c exists.
PROGRAMS  := $(if $(wildcard server/main.c),$(BINDIR)/etrnd) \
             $(if $(wildcard sim/main.c),$(BINDIR)/etrnsim) \
             $(if $(wildcard conformance/main.c),$(BINDIR)/etrncheck) \
             $(if $(wildcard client/main.c),$(BINDIR)/etrn)
TESTS     := $(patsubst tests/%.c,$(O)/tests/%,$(TEST_SRC))
# bench/*.c: each file is one benchmark or load tool, linked with every archive.
BENCH_SRC := $(wildcard bench/*.c)
BENCHES   := $(patsubst bench/%.c,$(O)/bench/%,$(BENCH_SRC))

.PHONY: all deps programs tests benches test test-slow asan-catalogue asan-harness check-asan run-postfix run-mutations unit-test asan-test harness-test run bench bench-full \
        fuzz check-faults install clean

all: deps programs tests

# Install missing Debian packages (a no-op when everything is there).
deps:
	@scripts/deps

programs: $(PROGRAMS)
tests: $(TESTS)
benches: $(BENCHES)

# --- archives ---------------------------------------------------------------
define archive_rule
$(1): $(call objs,$(2))
	@mkdir -p $$(dir $$@)
	rm -f $$@
	ar rcs $$@ $$^ $(if $(2),,$$(O)/empty.o)
endef
$(O)/empty.o:
	@mkdir -p $(dir $@)
	echo 'extern int etrnkit_empty_archive; int etrnkit_empty_archive;' | $(CC) -x c -c -o $@ -

$(eval $(call archive_rule,$(LIB_A),$(LIB_SRC)))
$(eval $(call archive_rule,$(PCAP_A),$(PCAP_SRC)))
$(eval $(call archive_rule,$(SERVER_A),$(SERVER_SRC)))
$(eval $(call archive_rule,$(SIM_A),$(SIM_SRC)))
$(eval $(call archive_rule,$(CHECK_A),$(CHECK_SRC)))
$(eval $(call archive_rule,$(CLIENT_A),$(CLIENT_SRC)))
$(LIB_A) $(PCAP_A) $(SERVER_A) $(SIM_A) $(CHECK_A) $(CLIENT_A): | $(O)/empty.o

# --- programs ---------------------------------------------------------------
$(BINDIR)/etrnd: $(O)/server/main.o $(SERVER_A) $(LIB_A)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BINDIR)/etrnsim: $(O)/sim/main.o $(SIM_A) $(PCAP_A) $(LIB_A)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BINDIR)/etrncheck: $(O)/conformance/main.o $(CHECK_A) $(SIM_A) $(PCAP_A) $(LIB_A)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BINDIR)/etrn: $(O)/client/main.o $(CLIENT_A) $(LIB_A)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# --- objects and unit tests -------------------------------------------------
$(O)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c -o $@ $<

$(O)/tests/%: tests/%.c $(ALL_A)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(ALL_A) $(LDLIBS) $(CMOCKA_LIBS)

$(O)/bench/%: bench/%.c $(ALL_A)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(ALL_A) $(LDLIBS)

-include $(shell find $(O) -name '*.d' 2>/dev/null)

# --- tests ------------------------------------------------------------------
# Unit tests run from the project root so they can read fixtures/.
unit-test: programs tests
	@scripts/run-unit-tests $(TESTS)

asan-test:
	$(MAKE) --no-print-directory O=build/asan BINDIR=build/asan/bin SAN="$(SANFLAGS)" OPT="-O1 -g" programs tests
	ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	    scripts/run-unit-tests $(patsubst $(O)/tests/%,build/asan/tests/%,$(TESTS))

harness-test: programs
	ETRNKIT_ROOT=$(CURDIR) ETRNKIT_BIN=$(CURDIR)/$(BINDIR) $(PYTHON) -m pytest -q harness

test: deps
	$(MAKE) --no-print-directory unit-test
	$(MAKE) --no-print-directory asan-test
	$(MAKE) --no-print-directory asan-catalogue
	$(MAKE) --no-print-directory harness-test
	$(MAKE) --no-print-directory asan-harness

# The whole catalogue with every program built with ASan+UBSan (etrnd and etrncheck alike):
# a sanitizer report aborts the program, which turns into an ERROR/FAIL and a non-zero exit.
asan-catalogue:
	ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	    ETRNKIT_BIN=build/asan/bin ETRNCHECK_REPORT=build/asan/report scripts/run-catalogue --plain

# The pytest harness against the ASan+UBSan build: etrnd, etrnsim, etrncheck and etrn all
# built with the sanitizers; the harness fails a test on any sanitizer report.
check-asan: asan-test asan-catalogue asan-harness
asan-harness:
	ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	    ETRNKIT_ROOT=$(CURDIR) ETRNKIT_BIN=$(CURDIR)/build/asan/bin $(PYTHON) -m pytest -q harness

# --- main job, benchmarks, fuzzing, faults ----------------------------------
run: deps programs
	scripts/run-catalogue

# The catalogue against Debian's Postfix in a private network namespace (root), and the
# mutation check: the catalogue must catch each of etrnd's 12 test-only defects.
run-postfix: deps programs
	mkdir -p report
	ETRNKIT_ROOT=$(CURDIR) ETRNKIT_BIN=$(CURDIR)/$(BINDIR) fixtures/targets/postfix-run \
	    --json report/postfix.json --html report/postfix.html

run-mutations: deps programs
	ETRNKIT_ROOT=$(CURDIR) ETRNKIT_BIN=$(CURDIR)/$(BINDIR) $(PYTHON) harness/run_mutations.py

# The long end-to-end tests `make test` leaves out (Postfix catalogue, mutations, ...).
test-slow: deps programs
	ETRNKIT_ROOT=$(CURDIR) ETRNKIT_BIN=$(CURDIR)/$(BINDIR) $(PYTHON) -m pytest -q -m slow harness

bench: deps programs benches
	scripts/run-bench --quick

bench-full: deps programs benches
	scripts/run-bench

fuzz: deps
	scripts/run-fuzz

check-faults: deps programs $(O)/bench/stress_sessions
	ETRNKIT_ROOT=$(CURDIR) ETRNKIT_BIN=$(CURDIR)/$(BINDIR) ETRNKIT_FAULT_ROUNDS=500 scripts/check-faults

# --- install ----------------------------------------------------------------
install: programs
	install -d $(DESTDIR)$(PREFIX)/sbin $(DESTDIR)$(PREFIX)/bin
	install -d $(DESTDIR)$(PREFIX)/share/man/man1 $(DESTDIR)$(PREFIX)/share/man/man5 $(DESTDIR)$(PREFIX)/share/man/man8
	install -d $(DESTDIR)$(PREFIX)/share/etrnkit
	$(if $(wildcard $(BINDIR)/etrnd),install -m 755 $(BINDIR)/etrnd $(DESTDIR)$(PREFIX)/sbin/)
	for p in etrnsim etrncheck etrn; do [ ! -f $(BINDIR)/$$p ] || install -m 755 $(BINDIR)/$$p $(DESTDIR)$(PREFIX)/bin/; done
	for m in docs/man/*.[158]; do [ -f "$$m" ] || continue; s=$${m##*.}; install -m 644 $$m $(DESTDIR)$(PREFIX)/share/man/man$$s/; done
	[ ! -f docs/etrnd.conf.example ] || install -m 644 docs/etrnd.conf.example $(DESTDIR)$(PREFIX)/share/etrnkit/
	[ ! -d fixtures ] || cp -r fixtures $(DESTDIR)$(PREFIX)/share/etrnkit/

clean:
	rm -rf build bin
