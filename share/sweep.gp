# sweep.gp: accuracy against the share of images sent to the cloud, over
# every threshold T of mea-score --sweep, with the rows of the table
# marked (make experiment; see share/experiment.sh).
#
#   gnuplot -e "dir='results'" share/sweep.gp
#
# Reads dir/sweep.tsv and dir/points.dat (row, cloud %, accuracy %);
# writes dir/sweep.png.
if (!exists("dir")) dir = "results"
if (!exists("share")) share = "0.1"
if (strstrt(GPVAL_TERMINALS, "pngcairo") > 0) {
	set terminal pngcairo size 900,650 font ",11"
} else {
	set terminal png size 900,650
}
set output dir."/sweep.png"
set datafile separator "\t"
set title "MEANet on Fashion-MNIST: accuracy against the share sent to the cloud"
set xlabel "images answered by the cloud (%)"
set ylabel "accuracy (%)"
set xrange [-2:102]
set grid
set key below maxrows 3 width 2
at(r) = strcol(1) eq r ? $3 : NaN
plot dir."/sweep.tsv" skip 1 using (100 * $3):(100 * $2) with lines lw 2 lc rgb "#4477aa" \
	title "MEANet, every T (mea-score --sweep)", \
     dir."/points.dat" using 2:(at("main")) with points pt 6 ps 2 lc rgb "#888888" \
	title "main block only", \
     "" using 2:(at("edge")) with points pt 7 ps 2 lc rgb "#228833" \
	title "all edge (main + extension)", \
     "" using 2:(at("cloud")) with points pt 5 ps 2 lc rgb "#aa3377" \
	title "all cloud", \
     "" using 2:(at("meanet")) with points pt 9 ps 2.5 lc rgb "#ee6677" \
	title "MEANet, stored T", \
     "" using 2:(at("share")) with points pt 13 ps 2.5 lc rgb "#ccbb44" \
	title sprintf("MEANet, T for %g%% cloud (held-out)", 100 * real(share))
