# Throughput (items per second at the median) against batch, one line per
# mixer/model, over every size measured. Columns 8 (batch) and 7.
set terminal @term
set output outfile
set title title_text noenhanced
set logscale x 2
set xlabel "batch"
set ylabel "throughput, items/s (median)"
set key left top noenhanced
set grid
plot for [i=0:nseries-1] datafile index i using 8:7 with points lc i+1 pt 7 title word(titles, i+1)
