# Peak memory (exact arena sizes: weights + activations + workspace) against
# tokens or resolution, one line per mixer. Column 5: MiB.
set terminal @term
set output outfile
set title title_text noenhanced
set logscale xy
set xlabel xlabel
set ylabel "peak memory, MiB (arenas)"
set key left top noenhanced
set grid
plot for [i=0:nseries-1] datafile index i using 1:5 with linespoints lc i+1 pt 7 title word(titles, i+1)
