# Test top-1 against the measured median latency (rows without a latency are left out), one point
# per configuration, a colour per mixer. Variables as accuracy_vs_macs.gp; the same columns.
set terminal @term
set output outfile
set title title_text noenhanced
set logscale x
set xlabel "forward latency, median ms"
set ylabel "test top-1 (%)"
set key outside right top noenhanced
set grid
# Series past the 8th reuse the colours with another point type (and dash), so every one differs.
ptype(i) = 7 + 2 * (int(i / 8) % 4)
plot for [i=0:nseries-1] datafile index i using ($2 > 0 ? $2 : 1/0):3 with points pt ptype(i) ps 1.4 lc (i % 8 + 1) \
    title word(titles, i+1)
