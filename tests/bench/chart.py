# SPDX-License-Identifier: Apache-2.0
"""Draws the benchmark's ratios against bare as a bar chart with gnuplot."""
import os
import subprocess


def draw(rows, out):
    figures = []
    for row in rows:
        if row["mode"] != "bare" and row["figure"] not in figures:
            figures.append(row["figure"])
    data = os.path.join(out, "chart.dat")
    with open(data, "w") as f:
        index = 0
        labels = []
        for figure in figures:
            for row in rows:
                if row["figure"] == figure and row["mode"] != "bare":
                    f.write(f'{index} {row["ratio"]:.4f} "{row["mode"]}" "{figure}"\n')
                    labels.append((index, f'{figure} -- {row["mode"]}'))
                    index += 1
            index += 1  # a gap between figures
    script = f"""
set terminal pngcairo size 1400,{200 + 22 * len(labels)} font 'sans,10'
set output '{os.path.join(out, "chart.png")}'
set title 'keepalive: each mode against bare, same run (cost rows: lower is better; throughput rows: higher is better)'
set termoption noenhanced
set style fill solid 0.8 border -1
set xlabel 'ratio to bare'
set grid x
set xrange [0:*]
set yrange [-1:{index}] reverse
set ytics ({", ".join(f'"{label}" {i}' for i, label in labels)})
set arrow from 1, graph 0 to 1, graph 1 nohead lc rgb 'red' dt 2
unset key
plot '{data}' using (0.5*$2):1:(0.5*$2):(0.35) with boxxyerror lc rgb '#4477aa', \\
     '' using ($2):1:(sprintf(" %.2fx", $2)) with labels left offset 0.3,0
"""
    subprocess.run(["gnuplot"], input=script, text=True, check=True)
