#!/usr/bin/env bats
# The kernels of lib/nn.h against the plain-loop references and finite
# differences in t/nn_test.c; each test runs one group of its checks.

load helper

# Run one group; it must pass every check it prints, and print some.
group() {
	run --separate-stderr nn_test "$1"
	[ "$status" -eq 0 ]
	[ -z "$stderr" ]
	[[ $output == "ok "* ]]
	[[ $output != *FAIL* ]]
}

@test "nn: mea_gemm matches the plain loop in all four transpositions" {
	group gemm
}

@test "nn: conv and pool shapes compute P, Q and reject impossible geometry" {
	group conv-shape
}

@test "nn: conv forward matches the plain loop on odd shapes" {
	group conv-fwd
}

@test "nn: conv forward through the naive GEMM switch matches too" {
	group conv-naive
}

@test "nn: conv backward matches finite differences, incl. groups and depthwise" {
	group conv-bwd
}

@test "nn: batch-norm inference and training match, running stats unbiased" {
	group bn-fwd
}

@test "nn: batch-norm backward matches finite differences" {
	group bn-bwd
}

@test "nn: a batch norm folded into the conv gives the same output" {
	group bn-fold
}

@test "nn: relu and relu6 forward and backward, NaN kept" {
	group relu
}

@test "nn: add and acc, in place too" {
	group add
}

@test "nn: channel concat forward and backward" {
	group concat
}

@test "nn: max pooling forward, argmax and backward" {
	group maxpool
}

@test "nn: average pooling ignores padding, forward and backward" {
	group avgpool
}

@test "nn: global average pooling forward and backward" {
	group gap
}

@test "nn: fully connected forward and backward" {
	group fc
}

@test "nn: softmax is stable at large logits; entropy in nats" {
	group softmax
}

@test "nn: cross-entropy loss and its gradient" {
	group xent
}

@test "nn: SGD step matches the hand-computed momentum and nesterov values" {
	group sgd
}

@test "nn: fused kernels give the values of the separate ones; _set ignores dx" {
	group fused
}

@test "nn: an unknown group is a usage error naming the group" {
	run --separate-stderr nn_test no-such-group
	[ "$status" -eq 2 ]
	[ -z "$output" ]
	[[ $stderr == "nn_test: unknown group 'no-such-group'"* ]]
	[ "$(printf '%s\n' "$stderr" | wc -l)" -eq 1 ]
}
