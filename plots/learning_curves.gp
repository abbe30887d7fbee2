# Each training's test top-1 after every epoch (mixer_rRESOLUTION_sSEED). Variables from
# `mixerlab plot`: datafile, titles, nseries, outfile, term, title_text. Columns: epoch test_top1
# train_loss seconds.
set terminal @term
set output outfile
set title title_text noenhanced
set xlabel "epoch"
set ylabel "test top-1 (%)"
set key outside right top noenhanced font ",8"
set grid
plot for [i=0:nseries-1] datafile index i using 1:2 with linespoints pt 7 ps 0.6 lc i+1 title word(titles, i+1)
