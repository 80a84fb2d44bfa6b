#!/usr/bin/env bats
# Calibration and training helpers of libmea, checked by t/calib_test.c.

load helper

@test "calib: hard classes, thresholds, rng, batches and erasing match hand-worked values" {
	run calib_test
	echo "$output"
	[ "$status" -eq 0 ]
	[[ $output != *FAIL* ]]
	[ "$(grep -c '^ok' <<< "$output")" -eq 5 ]
}
