# classes.gp: per-class precision of every row of the experiment, the
# hard classes (the extension's) shaded and starred (make experiment).
#
#   gnuplot -e "dir='results'; hard='0 2 3 4 6'" share/classes.gp
#
# Reads dir/classes.tsv (class, name, hard, then the precision in % of
# main, edge, cloud, meanet and share); writes dir/classes.png.
if (!exists("dir")) dir = "results"
if (!exists("hard")) hard = ""
if (!exists("share")) share = "0.1"
if (strstrt(GPVAL_TERMINALS, "pngcairo") > 0) {
	set terminal pngcairo size 1100,600 font ",11" noenhanced
} else {
	set terminal png size 1100,600 noenhanced
}
set output dir."/classes.png"
set datafile separator "\t"
set title "Precision per class (* hard class, answered by the extension at the edge)"
set ylabel "precision (%)"
set yrange [0:100]
set grid ytics
set style data histogram
set style histogram clustered gap 1
set style fill solid 0.9 border -1
set xtics nomirror rotate by -25
set key below horizontal
# Cluster k of n bars and a gap of 1 has its bars at k + j / (n + 1),
# j = 0 .. n - 1: shade the hard classes' clusters around their centres.
mid = (5 - 1) / (2.0 * (5 + 1))
do for [h in hard] {
	set object rectangle from real(h) + mid - 0.5, graph 0 to real(h) + mid + 0.5, graph 1 \
		behind fillcolor rgb "#e8e8e8" fillstyle solid noborder
}
array name[5] = ["main block only", "edge only", "cloud only", "MEANet, stored T", \
	sprintf("MEANet, T for %g%% cloud", 100 * real(share))]
array colour[5] = ["#888888", "#228833", "#aa3377", "#ee6677", "#ccbb44"]
label(n, h) = h eq "1" ? n."*" : n
plot for [i = 1:5] dir."/classes.tsv" skip 1 \
	using (column(3 + i)):xticlabels(label(strcol(2), strcol(3))) \
	title name[i] lc rgb colour[i]
