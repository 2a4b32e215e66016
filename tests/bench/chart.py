# SPDX-License-Identifier: Apache-2.0
"""Draws the benchmark against bare as a bar chart with gnuplot.

Every bar reads the same way, higher is better: a throughput row is the
mode's throughput over bare's, a cost row is bare's time over the mode's
(0.5 = twice as slow). The floor rows (the simplest supervisor doing the
same job, the kernel's price) are drawn in grey."""
import os
import subprocess


def draw(rows, out):
    # Only figures measured against bare: a lone figure (a peak RSS, the
    # agent's memory per container) has nothing to be relative to.
    with_bare = {row["figure"] for row in rows if row["mode"] == "bare"}
    figures = []
    for row in rows:
        if (row["mode"] != "bare" and row["figure"] in with_bare
                and row["figure"] not in figures):
            figures.append(row["figure"])
    data = os.path.join(out, "chart.dat")
    with open(data, "w") as f:
        index = 0
        labels = []
        for figure in figures:
            for row in rows:
                if row["figure"] == figure and row["mode"] != "bare":
                    ratio = float(row["ratio"])
                    speed = 1 / ratio if row["kind"] == "cost" else ratio
                    floor = 1 if row["mode"].startswith(("floor", "upstream")) else 0
                    f.write(f'{index} {speed:.4f} {floor} "{row["mode"]}" "{figure}"\n')
                    labels.append((index, f'{figure} -- {row["mode"]}'))
                    index += 1
            index += 1  # a gap between figures
    script = f"""
set terminal pngcairo size 1400,{200 + 22 * len(labels)} font 'sans,10'
set output '{os.path.join(out, "chart.png")}'
set title "keepalive: each mode against bare in the same run; higher is better, 1 = as fast as bare\\ngrey: floor, the simplest supervisor doing the same job (the kernel's price)"
set termoption noenhanced
set style fill solid 0.8 border -1
set xlabel 'speed relative to bare: bare time / mode time, or mode throughput / bare throughput'
set grid x
set xrange [0:*]
set yrange [-1:{index}] reverse
set ytics ({", ".join(f'"{label}" {i}' for i, label in labels)})
set arrow from 1, graph 0 to 1, graph 1 nohead lc rgb 'red' dt 2
unset key
plot '{data}' using (0.5*$2):1:(0.5*$2):(0.35):($3 > 0 ? 0xaaaaaa : 0x4477aa) with boxxyerror lc rgb variable, \\
     '' using ($2):1:(sprintf(" %.2f", $2)) with labels left offset 0.3,0
"""
    subprocess.run(["gnuplot"], input=script, text=True, check=True)


if __name__ == "__main__":
    # Redraws a chart from a results.csv: chart.py RESULTS.csv OUT_DIR
    import csv
    import sys
    with open(sys.argv[1]) as f:
        draw(list(csv.DictReader(f)), sys.argv[2])
