# Each training's test top-1 after every evaluation (every epoch, or every K steps when it trained
# on a generated stream: by_step = 1 puts the step on the x axis) (mixer_rRESOLUTION_sSEED). Variables from
# `mixerlab plot`: datafile, titles, nseries, outfile, term, title_text. Columns: epoch (the
# evaluation's number) test_top1 train_loss seconds step.
set terminal @term
set output outfile
set title title_text noenhanced
set ylabel "test top-1 (%)"
set key outside right top noenhanced font ",8"
set grid
# Series past the 8th reuse the colours with another point type (and dash), so every one differs.
ptype(i) = 7 + 2 * (int(i / 8) % 4)
set xlabel (by_step ? "step" : "epoch")
plot for [i=0:nseries-1] datafile index i using (by_step ? column(5) : column(1)):2 with linespoints \
    pt ptype(i) ps 0.7 dt int(i / 8) % 4 + 1 lc (i % 8 + 1) title word(titles, i+1)
