# Test top-1 against MACs per image, one point per configuration (each seed and resolution), a
# colour per mixer: the MambaOut paper's kind of figure. Variables from `mixerlab plot`: datafile,
# titles, nseries, outfile, term, title_text. Columns: MMACs latency_ms top1 top5 resolution seed.
set terminal @term
set output outfile
set title title_text noenhanced
set logscale x
set xlabel "MACs per image (millions, fvcore)"
set ylabel "test top-1 (%)"
set key outside right top noenhanced
set grid
# Series past the 8th reuse the colours with another point type (and dash), so every one differs.
ptype(i) = 7 + 2 * (int(i / 8) % 4)
plot for [i=0:nseries-1] datafile index i using 1:3 with points pt ptype(i) ps 1.4 lc (i % 8 + 1) title word(titles, i+1)
