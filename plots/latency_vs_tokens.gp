# Median latency against tokens (or resolution), log-log, one line per mixer,
# the p10-p90 band shaded. Variables from `mixerlab plot`: datafile, titles,
# nseries, xlabel, outfile, term, title_text. Columns: x median p10 p90 ...
set terminal @term
set output outfile
set title title_text noenhanced
set logscale xy
set xlabel xlabel
set ylabel "latency, median ms (band: p10-p90)"
set key left top noenhanced
set grid
set style fill transparent solid 0.2 noborder
plot for [i=0:nseries-1] datafile index i using 1:3:4 with filledcurves lc i+1 notitle, \
     for [i=0:nseries-1] datafile index i using 1:2 with linespoints lc i+1 pt 7 title word(titles, i+1)
