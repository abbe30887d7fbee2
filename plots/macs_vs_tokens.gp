# MACs (fvcore convention) against tokens or resolution, one line per mixer. Column 6.
set terminal @term
set output outfile
set title title_text noenhanced
set logscale xy
set xlabel xlabel
set ylabel "MACs (fvcore)"
set key left top noenhanced
set grid
plot for [i=0:nseries-1] datafile index i using 1:6 with linespoints lc i+1 pt 7 title word(titles, i+1)
