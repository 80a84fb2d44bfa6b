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

# Everything again under AddressSanitizer and UndefinedBehaviorSanitizer.
check-asan: deps
	$(MAKE) BUILD_SAN=1 clean-build
	$(MAKE) CFLAGS='-O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined' \
		LDFLAGS='-fsanitize=address,undefined' all
	ASAN_OPTIONS=detect_leaks=1 prove --ext .bats -e 'bats --tap' t/
	$(MAKE) clean-build

check: test

lint-man:
	mandoc -Tlint -W warning $(MAN1) $(MAN5) $(MAN7)

demo: deps all
	@sh share/demo.sh

# Benchmarks and weights may use OpenBLAS's AVX-512 kernel: this OpenBLAS
# does not recognise the CPU and would fall back to Prescott (SSE3) code.
# The tests keep the environment's setting.
FAST_BLAS = env -u OPENBLAS_L2_SIZE OPENBLAS_CORETYPE=$${MEA_BENCH_CORE:-SkylakeX}

bench: deps all
	@$(FAST_BLAS) sh share/bench.sh

weights: deps all
	$(FAST_BLAS) sh share/weights.sh all

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

.PHONY: all deps test check check-asan lint-man demo bench weights install uninstall clean clean-build
.PRECIOUS: build/cmd/%.o build/t/%.o

-include $(LIBOBJ:.o=.d) $(wildcard build/cmd/*.d) $(wildcard build/t/*.d)
