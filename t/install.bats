#!/usr/bin/env bats
# make install and uninstall honour PREFIX and DESTDIR.

load helper

@test "install: programs, man pages, share data and weights land under DESTDIR/PREFIX" {
	D=$BATS_TEST_TMPDIR/root
	run make -s -C "$TOP" install PREFIX=/opt/mea DESTDIR="$D"
	[ "$status" -eq 0 ]
	for p in mea-decode mea-main mea-gate mea-ext mea-offload mea-score mea-train; do
		[ -x "$D/opt/mea/bin/$p" ]
		[ -f "$D/opt/mea/share/man/man1/$p.1" ]
	done
	[ -f "$D/opt/mea/share/man/man5/mea-stream.5" ]
	[ -f "$D/opt/mea/share/man/man5/mea-model.5" ]
	[ -f "$D/opt/mea/share/man/man7/mea.7" ]
	[ -f "$D/opt/mea/share/mea/energy/default.energy" ]
	[ -f "$D/opt/mea/share/mea/fashion-mnist.classes" ]
	for w in "$TOP"/weights/*.mea-model; do
		[ -e "$w" ] || continue
		cmp "$w" "$D/opt/mea/share/mea/weights/${w##*/}"
	done
	run "$D/opt/mea/bin/mea-gate" --version
	[ "$output" = "mea-gate 0.1.0" ]
	run make -s -C "$TOP" uninstall PREFIX=/opt/mea DESTDIR="$D"
	[ "$status" -eq 0 ]
	[ -z "$(find "$D" -type f)" ]
}
