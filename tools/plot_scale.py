#!/usr/bin/env python3
"""Plots the scale benchmark's figures against network size, as one SVG.

Usage: tools/plot_scale.py SCALE_CSV OUT_SVG

SCALE_CSV is what `cargo bench -p chorus-node --bench scale` writes to the bench data
directory (target/bench-data/scale.csv): one row per network size and case (base, hostile,
churn). The SVG has one small panel per figure, each with a line per case; goals are drawn
as dashed lines. Standard library only.
"""

import csv
import math
import sys

PANELS = [
    ("delivery", "delivery ratio", 1.0),
    ("p50_ms", "p50 publish-to-store (ms)", None),
    ("p99_ms", "p99 publish-to-store (ms)", 1000.0),
    ("copies", "gossip copies per record per node", 2.0),
    ("kb_sent_per_node", "KB sent per node", None),
    ("mem_per_node_mb", "memory per node (MB)", 8.0),
    ("cpu_s_per_node", "CPU s per node", None),
]
COLOURS = {"base": "#1f5fa8", "hostile": "#b8412c", "churn": "#3b8a3e"}
W, H, PAD = 300, 200, 42


def main() -> None:
    rows = list(csv.DictReader(open(sys.argv[1], encoding="utf-8")))
    sizes = sorted({int(r["nodes"]) for r in rows})
    cols = 3
    nrows = math.ceil(len(PANELS) / cols)
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{cols * W}" height="{nrows * H + 30}" '
        'font-family="sans-serif" font-size="11">',
        '<rect width="100%" height="100%" fill="white"/>',
    ]
    x_legend = 10
    for case, colour in COLOURS.items():
        out.append(f'<rect x="{x_legend}" y="10" width="12" height="3" fill="{colour}"/>')
        out.append(f'<text x="{x_legend + 16}" y="15">{case}</text>')
        x_legend += 80
    out.append(f'<text x="{x_legend}" y="15">dashed: goal; x: nodes (log scale)</text>')
    lx = [math.log10(s) for s in sizes]
    for k, (key, title, goal) in enumerate(PANELS):
        ox, oy = (k % cols) * W, 30 + (k // cols) * H
        values = [float(r[key]) for r in rows if r[key] not in ("", "NaN", "nan")]
        top = max(values + ([goal] if goal else [])) * 1.1 or 1.0
        low = 0.0
        if key == "delivery":
            low = min(values + [0.98])
            top = 1.002

        def px(v: float) -> float:
            span = (max(lx) - min(lx)) or 1.0
            return ox + PAD + (v - min(lx)) / span * (W - PAD - 14)

        def py(v: float) -> float:
            return oy + H - 28 - (v - low) / ((top - low) or 1.0) * (H - 50)

        out.append(f'<text x="{ox + PAD}" y="{oy + 14}" font-weight="bold">{title}</text>')
        out.append(
            f'<line x1="{ox + PAD}" y1="{py(low)}" x2="{ox + W - 14}" y2="{py(low)}" stroke="#999"/>'
        )
        out.append(
            f'<line x1="{ox + PAD}" y1="{py(low)}" x2="{ox + PAD}" y2="{py(top)}" stroke="#999"/>'
        )
        for s, l in zip(sizes, lx):
            out.append(f'<text x="{px(l) - 10}" y="{py(low) + 14}">{s}</text>')
        for t in (low, (low + top) / 2, top):
            label = f"{t:.3f}" if key == "delivery" else f"{t:.3g}"
            out.append(f'<text x="{ox + 2}" y="{py(t) + 4}">{label}</text>')
        if goal is not None:
            out.append(
                f'<line x1="{ox + PAD}" y1="{py(goal)}" x2="{ox + W - 14}" y2="{py(goal)}" '
                'stroke="#666" stroke-dasharray="4 3"/>'
            )
        for case, colour in COLOURS.items():
            pts = [
                (px(math.log10(int(r["nodes"]))), py(float(r[key])))
                for r in rows
                if r["case"] == case and r[key] not in ("", "NaN", "nan")
            ]
            pts.sort()
            if len(pts) > 1:
                path = " ".join(f"{x:.1f},{y:.1f}" for x, y in pts)
                out.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"/>')
            for x, y in pts:
                out.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{colour}"/>')
    out.append("</svg>")
    open(sys.argv[2], "w", encoding="utf-8").write("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
