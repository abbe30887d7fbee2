# Test accuracy against the sequence length L, one line per mixer (sequence models on generated
# tasks: for selective copying the share of copied tokens right). Variables from `mixerlab plot`:
# datafile, titles, nseries, outfile, term, title_text. Columns: MMACs latency_ms top1 top5 L seed.
set terminal @term
set output outfile
set title title_text noenhanced
set logscale x 2
set xlabel "sequence length L (tokens)"
set ylabel "test accuracy (%)"
set yrange [0:100]
set key outside right top noenhanced
set grid
# Series past the 8th reuse the colours with another point type (and dash), so every one differs.
ptype(i) = 7 + 2 * (int(i / 8) % 4)
plot for [i=0:nseries-1] datafile index i using 5:3 with linespoints pt ptype(i) ps 1.2 dt int(i / 8) % 4 + 1 \
    lc (i % 8 + 1) title word(titles, i+1)
