# mea build configuration: edit here or override on the make command line.
VERSION = 0.1.0
PREFIX = /usr/local
MANPREFIX = $(PREFIX)/share/man
DATAPREFIX = $(PREFIX)/share/mea

CC ?= cc
CFLAGS ?= -O2 -g
# Warnings and the language level are added, so a user's CFLAGS cannot drop them.
# Flags come from pkg-config, which share/deps.sh installs (pkg-config is
# asked only when a recipe runs, after `make deps`); the fallbacks are
# Debian's paths.
PKGS = libpng zlib libjpeg openblas
# An undeclared function is an error, not a warning: before `make deps`
# a netlib cblas.h (without openblas_get_corename) can be found instead of
# OpenBLAS's, and the implicit int return would crash every program.
MEA_CFLAGS = -std=c11 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE -Wall -Wextra \
	-Werror=implicit-function-declaration -Ilib \
	$(shell pkg-config --cflags $(PKGS) 2>/dev/null || \
		echo -I/usr/include/libpng16 -I/usr/include/x86_64-linux-gnu/openblas-pthread)
MEA_LIBS = $(shell pkg-config --libs $(PKGS) 2>/dev/null || echo -lpng16 -lz -ljpeg -lopenblas) \
	-lm -lpthread
