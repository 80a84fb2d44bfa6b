# mea: one non-recursive Makefile.  See README for the targets.
include config.mk

LIBSRC  = $(sort $(wildcard lib/*.c))
LIBOBJ  = $(LIBSRC:lib/%.c=build/lib/%.o)
CLISRC  = cmd/cli.c
PROGSRC = $(sort $(wildcard cmd/mea-*.c))
PROGS   = $(PROGSRC:cmd/%.c=bin/%)
TESTSRC = $(sort $(wildcard t/*_test.c))
TESTBIN = $(TESTSRC:t/%.c=build/t/%)
MAN1    = $(sort $(wildcard man/*.1))
MAN5    = $(sort $(wildcard man/*.5))
MAN7    = $(sort $(wildcard man/*.7))

ALL_CFLAGS = $(MEA_CFLAGS) $(CFLAGS) -MMD -MP

all: $(PROGS) $(TESTBIN)

build/lib/%.o: lib/%.c
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

build/cmd/%.o: cmd/%.c
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

build/t/%.o: t/%.c
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

build/libmea.a: $(LIBOBJ)
	@mkdir -p $(@D)
	rm -f $@
	ar rcs $@ $(LIBOBJ)

bin/%: build/cmd/%.o build/cmd/cli.o build/libmea.a
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $(filter %.o,$^) build/libmea.a $(MEA_LIBS)

# Programs made of more than one file name their extra objects here.
bin/mea-train: build/cmd/train_opts.o

build/t/%: build/t/%.o build/libmea.a
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< build/libmea.a $(MEA_LIBS)

# Install the Debian packages the build, the tests and the demo need
# (apt-get, as root, only when something is missing).
deps:
	@sh share/deps.sh

test: deps all
	prove --ext .bats -e 'bats --tap' t/

# Everything again under AddressSanitizer and UndefinedBehaviorSanitizer,
# in a copy of the tree in build/asan, so that the build and tests of this
# tree are never disturbed while it runs.  UB stops the program; both
# sanitizers exit with status 99, which no program uses, so that a report
# cannot pass for a documented failure.  ASan and LeakSanitizer write
# their reports to files in build/asan/log, so that one from a program
# whose status no test looks at (a cloud worker behind socat) is seen too
# (UBSan, in the same runtime, still reports on stderr).  The copy is
# removed when the suite passes and no report was written.
ASAN_CFLAGS = -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined \
	-fno-sanitize-recover=all
ASAN_ENV = ASAN_OPTIONS=detect_leaks=1:exitcode=99:log_path=$(CURDIR)/build/asan/log/report \
	UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1:exitcode=99
check-asan: deps
	rm -rf build/asan
	mkdir -p build/asan/log build/asan/fuzz
	cp -R Makefile config.mk cmd lib man share t build/asan/
	[ ! -d weights ] || cp -R weights build/asan/
	cp -R fuzz/*.[ch] fuzz/corpus fuzz/regress build/asan/fuzz/
	$(MAKE) -C build/asan CFLAGS='$(ASAN_CFLAGS)' LDFLAGS='-fsanitize=address,undefined' all
	cd build/asan && $(ASAN_ENV) prove --ext .bats -e 'bats --tap' t/
	@if ls build/asan/log | grep -q .; then head -n 40 build/asan/log/*; \
		echo "check-asan: sanitizer reports in build/asan/log"; exit 1; fi
	rm -rf build/asan

check: test

# Fuzzing: libFuzzer targets (fuzz/*_fuzz.c) built by clang with ASan and
# UBSan into build/fuzz, apart from the gcc build.  `make fuzz` runs each
# for FUZZ_SECONDS from its seeds (fuzz/corpus/TARGET, with fuzz/TARGET.dict
# when there is one); what it learns goes to fuzz/out/TARGET, a crash to
# fuzz/out/TARGET-crash-* (neither is kept).  Keep a crash as a test in
# fuzz/regress/TARGET: t/fuzz_replay_test replays the seeds and the
# crashes in `make test`.
FUZZ_CC = clang
FUZZ_SECONDS = 60
FUZZ_CFLAGS = -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined \
	-fno-sanitize-recover=all
FUZZ_BIN = $(patsubst fuzz/%.c,build/fuzz/%,$(sort $(wildcard fuzz/*_fuzz.c)))
FUZZ_LIBOBJ = $(LIBSRC:lib/%.c=build/fuzz/lib/%.o)

build/fuzz/lib/%.o: lib/%.c
	@mkdir -p $(@D)
	$(FUZZ_CC) $(MEA_CFLAGS) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -MMD -MP -c -o $@ $<

build/fuzz/%_fuzz: fuzz/%_fuzz.c fuzz/fuzz.h $(FUZZ_LIBOBJ)
	$(FUZZ_CC) $(MEA_CFLAGS) $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $< $(FUZZ_LIBOBJ) $(MEA_LIBS)

fuzz: deps $(FUZZ_BIN)
	@for f in $(FUZZ_BIN); do \
		t=$${f#build/fuzz/}; t=$${t%_fuzz}; mkdir -p fuzz/out/$$t; \
		echo "fuzz: $$t, $(FUZZ_SECONDS) s (log in fuzz/out/$$t.log)"; \
		d=; [ ! -f fuzz/$$t.dict ] || d=-dict=fuzz/$$t.dict; \
		OPENBLAS_NUM_THREADS=1 $$f -max_total_time=$(FUZZ_SECONDS) -timeout=30 $$d \
			-print_final_stats=1 -artifact_prefix=fuzz/out/$$t- \
			fuzz/out/$$t fuzz/corpus/$$t > fuzz/out/$$t.log 2>&1 || \
			{ tail -n 60 fuzz/out/$$t.log; echo "fuzz: $$t failed: fuzz/out/$$t-crash-*"; exit 1; }; \
		grep -E 'DONE' fuzz/out/$$t.log | tail -n 1; \
	done

lint-man:
	mandoc -Tlint -W warning $(MAN1) $(MAN5) $(MAN7)

demo: deps all
	@sh share/demo.sh

# Benchmarks and weights use the CPU's fastest OpenBLAS kernel: SkylakeX
# where the CPU has AVX-512 (this OpenBLAS does not recognise such CPUs
# and would fall back to Prescott code), else OpenBLAS's own choice; see
# share/blas-core.sh.  The tests keep the environment's setting.
FAST_BLAS = env -u OPENBLAS_L2_SIZE -u OPENBLAS_CORETYPE $$(sh share/blas-core.sh)

bench: deps all
	@$(FAST_BLAS) sh share/bench.sh

weights: deps all
	$(FAST_BLAS) sh share/weights.sh all

# The paper's evaluation on the Fashion-MNIST test set with the shipped
# weights: results/ (table, sweep, plots, and the commands in README.txt).
experiment: deps all
	$(FAST_BLAS) sh share/experiment.sh

install: all
	mkdir -p $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(MANPREFIX)/man1 \
		$(DESTDIR)$(MANPREFIX)/man5 $(DESTDIR)$(MANPREFIX)/man7 $(DESTDIR)$(DATAPREFIX)
	cp -f $(PROGS) $(DESTDIR)$(PREFIX)/bin/
	cp -f $(MAN1) $(DESTDIR)$(MANPREFIX)/man1/
	cp -f $(MAN5) $(DESTDIR)$(MANPREFIX)/man5/
	[ -z "$(MAN7)" ] || cp -f $(MAN7) $(DESTDIR)$(MANPREFIX)/man7/
	cp -Rf share/. $(DESTDIR)$(DATAPREFIX)/
	mkdir -p $(DESTDIR)$(DATAPREFIX)/weights
	cp -f weights/* $(DESTDIR)$(DATAPREFIX)/weights/ 2>/dev/null || true

uninstall:
	for p in $(PROGS); do rm -f $(DESTDIR)$(PREFIX)/bin/$${p#bin/}; done
	for m in $(MAN1) $(MAN5) $(MAN7); do s=$${m##*.}; rm -f $(DESTDIR)$(MANPREFIX)/man$$s/$${m#man/}; done
	rm -rf $(DESTDIR)$(DATAPREFIX)

clean-build:
	rm -rf build bin

clean: clean-build
	rm -rf results

.PHONY: all deps test check check-asan fuzz lint-man demo bench weights experiment install uninstall clean clean-build
.PRECIOUS: build/cmd/%.o build/t/%.o build/fuzz/lib/%.o

-include $(LIBOBJ:.o=.d) $(wildcard build/cmd/*.d) $(wildcard build/t/*.d) \
	$(wildcard build/fuzz/lib/*.d)
