# exits.gp: where the answers of each row of the experiment came from:
# the main block, the extension, the cloud, or the edge after the cloud
# failed (make experiment).
#
#   gnuplot -e "dir='results'" share/exits.gp
#
# Reads dir/table.tsv; writes dir/exits.png.
if (!exists("dir")) dir = "results"
if (!exists("share")) share = "0.1"
if (strstrt(GPVAL_TERMINALS, "pngcairo") > 0) {
	set terminal pngcairo size 1000,550 font ",11" noenhanced
} else {
	set terminal png size 1000,550 noenhanced
}
set output dir."/exits.png"
set datafile separator "\t"
set title "Share of the images answered at each exit"
set ylabel "images (%)"
set yrange [0:100]
set grid ytics
set style data histogram
set style histogram rowstacked
set style fill solid 0.9 border -1
set boxwidth 0.6
set bmargin 4
set key outside right top vertical reverse Left
row(r) = r eq "main" ? "main block\nonly" : r eq "edge" ? "edge only\n(main + ext)" : \
	r eq "cloud" ? "cloud only" : r eq "meanet" ? "MEANet,\nstored T" : \
	r eq "share" ? sprintf("MEANet, T for\n%g%% cloud", 100 * real(share)) : r
plot dir."/table.tsv" skip 1 using 4:xticlabels(row(strcol(1))) title "main" lc rgb "#4477aa", \
     "" skip 1 using 5 title "extension" lc rgb "#228833", \
     "" skip 1 using 6 title "cloud" lc rgb "#aa3377", \
     "" skip 1 using 7 title "fallback" lc rgb "#bbbbbb"
