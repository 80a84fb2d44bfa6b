#!/bin/sh
# make experiment: the paper's evaluation (Long et al., ICDCS 2021) on the
# Fashion-MNIST test set, run through the real pipeline programs with the
# shipped weights.  Writes $OUT (default results/):
#
#   table.txt, table.tsv  one row per way of answering: the main block only,
#                         the edge only, the cloud only, MEANet at the stored
#                         T and at the T for a 10% cloud share; PASS/FAIL
#                         lines for the targets at the end of table.txt
#   sweep.tsv             mea-score --sweep: accuracy and costs at every T
#   classes.tsv           per-class precision of every row
#   sweep.png             accuracy against cloud share, rows marked
#   classes.png           per-class precision, hard classes marked
#   exits.png             where each row's answers came from
#   calibrate.txt         the T for the 10% share, from held-out training data
#   json/ROW.json         mea-score --json of every row
#   README.txt            the commands that made all of it
#
#   sh share/experiment.sh       (make experiment; from the top directory)
#
# Settings, from the environment: EDGE, CLOUD (the models), N (test images,
# default all 10000), SHARE (cloud share of the second MEANet row, 0.1),
# ENERGY (mea-score profile, default), OUT, BIN, FMNIST.  VAL_FRAC and
# SPLIT_SEED must be those the edge model was trained with (as in
# share/weights.sh), so that calibration sees only held-out images.
#
# Exit status: 0 when every target passes, 1 when one fails (the results
# are written anyway), 2 when the experiment could not run.
set -eu
BIN=${BIN:-bin}
EDGE=${EDGE:-weights/fmnist-edge.mea-model}
CLOUD=${CLOUD:-weights/fmnist-cloud.mea-model}
FMNIST=${FMNIST:-/usr/share/datasets/fashion-mnist}
N=${N:-10000}
SHARE=${SHARE:-0.1}
ENERGY=${ENERGY:-default}
OUT=${OUT:-results}
VAL_FRAC=${VAL_FRAC:-0.1}
SPLIT_SEED=${SPLIT_SEED:-1}
GP=${GP:-share}
TEST=$FMNIST/t10k-images-idx3-ubyte.gz
TRAIN=$FMNIST/train-images-idx3-ubyte.gz

die() {
	echo "experiment: $*" >&2
	exit 2
}

# The commands are kept as text, run with sh -c and written to README.txt
# as they ran, so paths must not need quoting.
for v in "$BIN" "$EDGE" "$CLOUD" "$FMNIST" "$OUT" "$ENERGY"; do
	case $v in *[!A-Za-z0-9_./+-]*) die "'$v': use a path of letters, digits and ._/+-" ;; esac
done
for m in "$EDGE" "$CLOUD"; do
	[ -s "$m" ] || die "$m: missing (make weights, or set EDGE= and CLOUD=)"
done
[ -r "$TEST" ] && [ -r "$TRAIN" ] || die "$FMNIST: no Fashion-MNIST (make deps)"
command -v gnuplot >/dev/null || die "gnuplot: not installed (make deps)"
case $N in ''|*[!0-9]*|0*) die "N: '$N' is not a number of test images from 1 to 10000" ;; esac
[ "${#N}" -le 5 ] && [ "$N" -le 10000 ] || die "N: '$N' is more than the 10000 test images"
awk -v s="$SHARE" 'BEGIN { exit !(s ~ /^0?\.[0-9]+$/ && s > 0) }' ||
	die "SHARE: '$SHARE' is not a share between 0 and 1, such as 0.1"

pct=$(awk -v s="$SHARE" 'BEGIN { print 100 * s }')
tmp=$(mktemp -d "${TMPDIR:-/tmp}/mea-experiment.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
trap 'exit 2' INT TERM
mkdir "$tmp/json"
log=$tmp/README.txt

# json KEY FILE: the value at KEY (such as exits.cloud.share or
# classes.3.precision) of mea-score --json's output, "" when absent.  A
# small flattener, so that the script needs nothing beyond POSIX tools.
json() {
	awk -v want="$1" '
	function path(   p, k) {
		p = ""
		for (k = 1; k <= d; k++)
			p = p (k > 1 ? "." : "") (type[k] == "[" ? idx[k] : key[k])
		return p
	}
	{ s = s $0 "\n" }
	END {
		n = length(s)
		for (i = 1; i <= n; ) {
			c = substr(s, i, 1)
			if (c == "{" || c == "[") { type[++d] = c; idx[d] = 0; key[d] = ""; i++ }
			else if (c == "}" || c == "]") { d--; i++ }
			else if (c == ",") { if (type[d] == "[") idx[d]++; i++ }
			else if (c ~ /[: \t\r\n]/) i++
			else if (c == "\"") {
				v = ""
				for (j = i + 1; (ch = substr(s, j, 1)) != "\"" && j <= n; j++) {
					if (ch == "\\") ch = substr(s, ++j, 1)
					v = v ch
				}
				for (i = j + 1; substr(s, i, 1) ~ /[ \t\r\n]/; i++)
					;
				if (substr(s, i, 1) == ":") key[d] = v
				else if (path() == want) { print v; exit }
			} else {
				for (j = i; j <= n && substr(s, j, 1) !~ /[,}\] \t\r\n]/; j++)
					;
				if (path() == want) { print substr(s, i, j - i); exit }
				i = j
			}
		}
	}' "$2"
}

now() { date +%s.%N; }

# run NAME COMMAND: run a pipeline ending in mea-score --json, timed, and
# check that every image came out of it with an answer.
run() {
	name=$1 cmd=$2
	echo "experiment: $name" >&2
	printf '%s > %s\n\n' "$cmd" "$OUT/json/$name.json" >> "$log"
	t0=$(now)
	sh -c "$cmd" > "$tmp/json/$name.json" || die "$name: the pipeline failed"
	t1=$(now)
	awk -v a="$t0" -v b="$t1" -v n="$N" 'BEGIN { printf "%.1f\n", n / (b - a) }' \
		> "$tmp/$name.rate"
	records=$(json records "$tmp/json/$name.json")
	answered=$(json answered "$tmp/json/$name.json")
	[ "$records" = "$N" ] || die "$name: $records records came out of $N"
	[ "$answered" = "$N" ] || die "$name: $answered of $N records have an answer"
}

decode="$BIN/mea-decode -n $N $TEST"
main="$BIN/mea-main -m $EDGE"
gate="$BIN/mea-gate -m $EDGE"
ext="$BIN/mea-ext -m $EDGE"
offload="$BIN/mea-offload -e '$BIN/mea-main -m $CLOUD --cloud'"
score="$BIN/mea-score -m $EDGE -e $ENERGY"
t_stored=$(od -An -tf4 -j56 -N4 "$EDGE" | tr -d ' ')

cat > "$log" <<EOF
mea experiment: how $OUT/ was made
======================================

$(date -u '+%Y-%m-%d %H:%M UTC'), $(uname -sm), $(nproc) cores,
$(sed -n 's/^model name[^:]*: //p' /proc/cpuinfo | head -1)
OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset}, MEA_THREADS=${MEA_THREADS:-1} per stage
$(sha256sum "$EDGE" "$CLOUD")
Test images: the first $N of $TEST.
Energy profile: $ENERGY (assumed constants; see mea-score(1)).

Each row is one pipeline, timed from mea-decode to mea-score (images/s
is N over that wall time, every stage one thread, stages in parallel).

The T for a $pct% cloud share, chosen on held-out training data
(the --val-frac $VAL_FRAC --split-seed $SPLIT_SEED split the edge model
was trained with, so none of these images trained it):

EOF

# ------------------------------------------------------------ threshold
echo "experiment: calibrate (T for a $SHARE cloud share on held-out data)" >&2
cal="$BIN/mea-decode $TRAIN > $tmp/train.mea &&
    $BIN/mea-train -j calibrate -m $EDGE -o $tmp/cal.mea-model -C $SHARE -f $VAL_FRAC -Y $SPLIT_SEED < $tmp/train.mea"
printf '%s\n\n' "$cal" | sed "s|$tmp/|TMP/|g" >> "$log"
sh -c "$cal" > "$tmp/calibrate.txt" || die "calibrate failed"
# The T as stored (f32), not as printed (rounded).
t_share=$(od -An -tf4 -j56 -N4 "$tmp/cal.mea-model" | tr -d ' ')
rm -f "$tmp/train.mea" "$tmp/cal.mea-model"

# ----------------------------------------------------------------- rows
cat >> "$log" <<EOF
The rows (main: main block only; edge: main + extension, no cloud;
cloud: every image to the cloud; meanet: MEANet at the model's stored T;
share: MEANet at the T above):

EOF
run main "$decode | $main | $gate -H '' --no-cloud | $score -j"
run edge "$decode | $main | $gate --no-cloud | $ext | $score -j"
# mea-gate takes T >= 0, so "cloud only" is T = 0: every image with an
# entropy above 0 goes to the cloud, and the table shows the share that
# did.  The main block ran only to feed the gate; the row does not count it.
run cloud "$decode | $main | $gate -T 0 | $ext | $offload | $score -j"
run meanet "$decode | $main | $gate | $ext | $offload | $score -j"
run share "$decode | $main | $gate -T $t_share | $ext | $offload | $score -j"

# ---------------------------------------------------------------- sweep
echo "experiment: sweep" >&2
cmd="$decode | $main | $gate --all | $ext | $offload | $score --sweep"
printf 'The sweep (every T from one pass):\n\n%s > %s\n\n' "$cmd" "$OUT/sweep.tsv" >> "$log"
sh -c "$cmd" > "$tmp/sweep.tsv" || die "sweep: the pipeline failed"
[ "$(wc -l < "$tmp/sweep.tsv")" -gt 1 ] || die "sweep: no rows"
# The T that the test set itself would pick for the share: for comparison
# only, since picking T on the test set flatters the result.
t_test=$(awk -F'\t' -v s="$SHARE" 'NR > 1 && $3 <= s + 0 { print $1; exit }' "$tmp/sweep.tsv")
# The sweep's row for the stored T (the largest T at or below it makes the
# same split), to cross-check the sweep against the pipeline run.
at_stored=$(awk -F'\t' -v t="$t_stored" 'NR > 1 && $1 + 0 <= t + 0 { a = $2; c = $3 }
	END { printf "accuracy %.2f%%, cloud %.2f%%", 100 * a, 100 * c }' "$tmp/sweep.tsv")

# ---------------------------------------------------------------- table
# One TSV row per run; percentages of the records, costs per image.
{
	printf 'row\tT\taccuracy_pct\tmain_pct\text_pct\tcloud_pct\tfallback_pct\t'
	printf 'edge_macs\tcloud_macs\tbytes_up\tbytes_down\tenergy_uj\tcounted\timages_s\n'
	for r in main edge cloud meanet share; do
		j=$tmp/json/$r.json
		case $r in
		main|edge) T=- ;;
		cloud) T=0 ;;
		meanet) T=$t_stored ;;
		share) T=$t_share ;;
		esac
		edge_macs=$(json per_image.macs_edge "$j")
		edge_uj=$(json energy.edge_uj "$j")
		counted="edge compute"
		if [ "$r" = cloud ]; then
			edge_macs=0 edge_uj=0
		fi
		awk -v r="$r" -v T="$T" -v acc="$(json accuracy "$j")" \
		    -v m="$(json exits.main.share "$j")" -v x="$(json exits.ext.share "$j")" \
		    -v c="$(json exits.cloud.share "$j")" -v f="$(json exits.fallback.share "$j")" \
		    -v em="$edge_macs" -v cm="$(json per_image.macs_cloud "$j")" \
		    -v up="$(json per_image.bytes_up "$j")" -v dn="$(json per_image.bytes_down "$j")" \
		    -v eu="$edge_uj" -v lu="$(json energy.link_uj "$j")" \
		    -v cu="$(json energy.cloud_uj "$j")" -v rate="$(cat "$tmp/$r.rate")" '
		function pct(v) { return v == "" || v == "null" ? "" : sprintf("%.2f", 100 * v) }
		BEGIN {
			counted = (em > 0 ? "edge" : "")
			if (up + dn > 0) counted = counted (counted != "" ? "+" : "") "link"
			if (cm > 0) counted = counted (counted != "" ? "+" : "") "cloud"
			e = (eu == "" || lu == "" || cu == "") ? "" : sprintf("%.3f", eu + lu + cu)
			printf "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%.0f\t%.0f\t%.1f\t%.1f\t%s\t%s\t%s\n",
				r, T, pct(acc), pct(m), pct(x), pct(c), pct(f), em, cm, up, dn,
				e, counted, rate
		}'
	done
} > "$tmp/table.tsv"

# Per-class precision (percent) of every row, with the hard classes.
{
	printf 'class\tname\thard\tmain\tedge\tcloud\tmeanet\tshare\n'
	k=0
	while [ -n "$(json classes.$k.class "$tmp/json/main.json")" ]; do
		printf '%s\t%s\t%s' "$k" "$(json classes.$k.name "$tmp/json/main.json" | tr ' \t' '__')" \
			"$(json classes.$k.hard "$tmp/json/main.json" | sed 's/true/1/;s/false/0/')"
		for r in main edge cloud meanet share; do
			printf '\t%s' "$(json classes.$k.precision "$tmp/json/$r.json" |
				awk '$1 == "null" { print ""; next } { printf "%.2f", 100 * $1 }')"
		done
		printf '\n'
		k=$((k + 1))
	done
} > "$tmp/classes.tsv"

# Targets.
awk -F'\t' '$1 == "cloud" { print $3 }' "$tmp/table.tsv" > "$tmp/cloud.acc"
status=0
{
	awk -F'\t' -v cacc="$(cat "$tmp/cloud.acc")" -v T="$t_stored" '
	$1 == "meanet" {
		ok = $3 + 0 >= cacc - 0.2 && $6 + 0 <= 20
		printf "%s  MEANet at the stored T (%s): accuracy %.2f%% %s cloud %.2f%% - 0.2 points, " \
			"cloud share %.2f%% %s 20%%\n", ok ? "PASS" : "FAIL", T, $3,
			($3 + 0 >= cacc - 0.2 ? ">=" : "<"), cacc, $6, ($6 + 0 <= 20 ? "<=" : ">")
	}' "$tmp/table.tsv"
	awk -F'\t' 'NR > 1 && $12 == "" { bad = bad " " $1 }
	END {
		if (bad == "") print "PASS  every row reports its energy"
		else print "FAIL  no energy for:" bad " (energy profile not found?)"
	}' "$tmp/table.tsv"
	awk -F'\t' 'NR > 1 && $7 + 0 > 0 { bad = bad " " $1 }
	END {
		if (bad == "") print "PASS  the cloud answered every image sent to it (no fallback)"
		else print "FAIL  fallback answers in:" bad
	}' "$tmp/table.tsv"
} > "$tmp/targets.txt"
grep -q '^FAIL' "$tmp/targets.txt" && status=1

# The aligned table, with what each row is.
{
	echo "MEANet on the Fashion-MNIST test set ($N images)"
	echo "edge $EDGE, cloud $CLOUD, energy profile $ENERGY"
	echo
	awk -F'\t' -v share="$pct" '
	BEGIN {
		name["main"] = "main block only"
		name["edge"] = "edge only (main + ext)"
		name["cloud"] = "cloud only"
		name["meanet"] = "MEANet, stored T"
		name["share"] = "MEANet, T for " share "%"
		fmt = "%-23s %6s %7s %7s %6s %7s %9s %9s %6s %6s %10s %-15s %7s\n"
		printf fmt, "", "T", "acc %", "main %", "ext %", "cloud %", "edge", "cloud",
			"up", "down", "energy", "energy counts", "images"
		printf fmt, "", "nats", "", "", "", "", "MMACs", "MMACs", "bytes", "bytes", "uJ/image",
			"", "/s"
	}
	NR > 1 {
		T = $2 == "-" ? "-" : sprintf("%.3g", $2)
		printf fmt, name[$1], T, $3, $4, $5, $6, sprintf("%.2f", $8 / 1e6),
			sprintf("%.2f", $9 / 1e6), sprintf("%.0f", $10), sprintf("%.0f", $11),
			$12 == "" ? "-" : sprintf("%.1f", $12), $13, sprintf("%.0f", $14)
		if ($7 + 0 > 0) fallback = fallback " " $1 " " $7 "%"
	}
	END { if (fallback != "") print "fallback to the edge:" fallback }' "$tmp/table.tsv"
	cat <<-EOF

	Notes
	cloud only: T = 0 sends every image with an entropy above 0 (cloud % says
	  how many did); its energy counts the link and the cloud, not the main
	  block that ran only to feed the gate.
	MEANet, T for $pct%: T = $t_share is the T that sends at most $pct% of the
	  held-out training images to the cloud (mea-train -j calibrate -C $SHARE).
	  Picked on this test set, T would be ${t_test:-(none)} (not used).
	sweep check: at the stored T the sweep gives $at_stored;
	  the MEANet row above should agree, up to rounding in batched evaluation.
	energy per image = edge MACs x edge pJ + 8 x (up + down bytes) x link pJ
	  + cloud MACs x cloud pJ, with the assumed constants of profile $ENERGY;
	  not counted: memory traffic, idle and radio tail power, decoding, the
	  server's overheads (mea-score(1)).
	EOF
	echo
	cat "$tmp/targets.txt"
} > "$tmp/table.txt"

# ---------------------------------------------------------------- plots
awk -F'\t' 'BEGIN { OFS = "\t" } NR > 1 { print $1, $6, $3 }' "$tmp/table.tsv" \
	> "$tmp/points.dat"
hard=$(awk -F'\t' 'NR > 1 && $3 == 1 { printf "%s%s", n++ ? " " : "", $1 }' "$tmp/classes.tsv")
for p in sweep classes exits; do
	printf 'gnuplot -e "dir='"'%s'; hard='%s'; share='%s'"'" %s\n' \
		"$OUT" "$hard" "$SHARE" "$GP/$p.gp" >> "$tmp/plots"
	gnuplot -e "dir='$tmp'; hard='$hard'; share='$SHARE'" "$GP/$p.gp" ||
		die "$GP/$p.gp failed"
done
cat >> "$log" <<EOF
Then share/experiment.sh turned the --json outputs into table.tsv,
table.txt and classes.tsv (points.dat holds the rows' cloud share and
accuracy for the sweep plot), and drew the plots:

$(cat "$tmp/plots")
EOF

# ------------------------------------------------------------- results
mkdir -p "$OUT/json"
for f in table.txt table.tsv sweep.tsv classes.tsv points.dat calibrate.txt \
    sweep.png classes.png exits.png README.txt; do
	mv -f "$tmp/$f" "$OUT/$f"
done
mv -f "$tmp"/json/*.json "$OUT/json/"
cat "$OUT/table.txt"
exit $status
