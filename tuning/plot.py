#!/usr/bin/env python3
"""Draws the sweep plots from `ingot-engine bench --json` reports (standard library only).

    python3 tuning/plot.py tuning/results

Reads `<op>-<size>-c<concurrency>.json` files (as `tuning/sweep` writes them) and writes
into the same directory:
- `concurrency.svg`: 4 KiB objects, ops/s and p99 latency against concurrency;
- `size.svg`: 8 concurrent, MB/s and p99 latency against object size;
- `summary.md`: every point as a table row.
"""

import json
import math
import re
import sys
from pathlib import Path

NAME = re.compile(r"^(?P<op>[a-z]+)-(?P<size>\d+(?:\.\d+)?[KMG]?i?B)-c(?P<c>\d+)$")
UNITS = {"B": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30}
COLORS = {"put": "#d1495b", "get": "#00798c", "stat": "#edae49", "list": "#30638e"}


def size_bytes(label):
    m = re.match(r"^(\d+(?:\.\d+)?)([KMG]iB|B)$", label)
    if not m:
        raise ValueError(f"size {label!r}")
    return float(m[1]) * UNITS[m[2]]


def load(directory):
    points = []
    for path in sorted(Path(directory).glob("*.json")):
        m = NAME.match(path.stem)
        if not m:
            continue
        report = json.loads(path.read_text())
        line = report["operations"].get(m["op"])
        if line is None or line["count"] == 0:
            continue
        points.append(
            {
                "op": m["op"],
                "size": m["size"],
                "size_bytes": size_bytes(m["size"]),
                "c": int(m["c"]),
                "ops_per_s": line["ops_per_s"],
                "mb_per_s": line["mb_per_s"],
                "p50_ms": line["p50_ms"],
                "p99_ms": line["p99_ms"],
                "errors": sum(report["errors"].values()),
                "cpu_us_per_op": report["cpu_us_per_op"],
            }
        )
    return points


def nice_max(v):
    if v <= 0:
        return 1.0
    exp = 10 ** math.floor(math.log10(v))
    for step in (1, 2, 2.5, 5, 10):
        if v <= step * exp:
            return step * exp
    return 10 * exp


def fmt(v):
    if v >= 1000:
        return f"{v / 1000:g}k"
    return f"{v:g}"


def panel(x0, y0, w, h, title, series, x_label, y_label, x_ticks):
    """One chart: log-scale x (values in x_ticks), linear y from 0."""
    out = [f'<g transform="translate({x0},{y0})">']
    out.append(f'<text x="{w / 2}" y="-12" text-anchor="middle" font-weight="bold">{title}</text>')
    ymax = nice_max(max((y for pts in series.values() for _, y in pts), default=1))
    lo, hi = math.log(x_ticks[0][0]), math.log(x_ticks[-1][0])
    span = (hi - lo) or 1

    def px(x):
        return (math.log(x) - lo) / span * w

    def py(y):
        return h - y / ymax * h

    out.append(f'<rect width="{w}" height="{h}" fill="none" stroke="#888"/>')
    for i in range(5):
        y = ymax * i / 4
        out.append(f'<line x1="0" x2="{w}" y1="{py(y):.1f}" y2="{py(y):.1f}" stroke="#eee"/>')
        out.append(f'<text x="-6" y="{py(y) + 4:.1f}" text-anchor="end">{fmt(y)}</text>')
    for x, label in x_ticks:
        out.append(f'<line x1="{px(x):.1f}" x2="{px(x):.1f}" y1="0" y2="{h}" stroke="#eee"/>')
        out.append(f'<text x="{px(x):.1f}" y="{h + 16}" text-anchor="middle">{label}</text>')
    out.append(f'<text x="{w / 2}" y="{h + 36}" text-anchor="middle">{x_label}</text>')
    out.append(
        f'<text transform="translate(-52,{h / 2}) rotate(-90)" text-anchor="middle">{y_label}</text>'
    )
    for k, (op, pts) in enumerate(sorted(series.items())):
        color = COLORS.get(op, "#333")
        path = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in sorted(pts))
        out.append(f'<polyline points="{path}" fill="none" stroke="{color}" stroke-width="2"/>')
        for x, y in pts:
            out.append(f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="3" fill="{color}"/>')
        out.append(f'<rect x="{w - 70}" y="{8 + k * 18}" width="12" height="12" fill="{color}"/>')
        out.append(f'<text x="{w - 52}" y="{18 + k * 18}">{op}</text>')
    out.append("</g>")
    return out


def chart(path, title, left, right):
    w, h = 420, 260
    body = [
        '<svg xmlns="http://www.w3.org/2000/svg" width="1040" height="360" '
        'font-family="sans-serif" font-size="12">',
        '<rect width="100%" height="100%" fill="white"/>',
        f'<text x="520" y="22" text-anchor="middle" font-size="15">{title}</text>',
    ]
    body += panel(80, 50, w, h, *left)
    body += panel(600, 50, w, h, *right)
    body.append("</svg>")
    Path(path).write_text("\n".join(body) + "\n")


def by_op(points, x_key, y_key):
    series = {}
    for p in points:
        series.setdefault(p["op"], []).append((p[x_key], p[y_key]))
    return series


def size_label(b):
    for unit in ("GiB", "MiB", "KiB"):
        if b >= UNITS[unit]:
            return f"{b / UNITS[unit]:g} {unit}"
    return f"{b:g} B"


def main(directory):
    points = load(directory)
    if not points:
        sys.exit(f"plot.py: no sweep reports (<op>-<size>-c<N>.json) in {directory}")
    conc = [p for p in points if p["size"] == "4KiB"]
    sizes = [p for p in points if p["c"] == 8]
    written = []
    if conc:
        ticks = [(c, str(c)) for c in sorted({p["c"] for p in conc})]
        chart(
            Path(directory) / "concurrency.svg",
            "4 KiB objects against concurrency",
            ("Throughput", by_op(conc, "c", "ops_per_s"), "concurrency", "ops/s", ticks),
            ("p99 latency", by_op(conc, "c", "p99_ms"), "concurrency", "ms", ticks),
        )
        written.append("concurrency.svg")
    if len({p["size_bytes"] for p in sizes}) > 1:
        ticks = [(b, size_label(b)) for b in sorted({p["size_bytes"] for p in sizes})]
        chart(
            Path(directory) / "size.svg",
            "8 concurrent, against object size",
            ("Throughput", by_op(sizes, "size_bytes", "mb_per_s"), "object size", "MB/s", ticks),
            ("p99 latency", by_op(sizes, "size_bytes", "p99_ms"), "object size", "ms", ticks),
        )
        written.append("size.svg")
    rows = [
        "| op | size | concurrency | ops/s | MB/s | p50 ms | p99 ms | errors | generator µs/op |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for p in sorted(points, key=lambda p: (p["op"], p["size_bytes"], p["c"])):
        rows.append(
            f"| {p['op']} | {p['size']} | {p['c']} | {p['ops_per_s']:,.0f} | "
            f"{p['mb_per_s']:,.1f} | {p['p50_ms']:.2f} | {p['p99_ms']:.2f} | "
            f"{p['errors']} | {p['cpu_us_per_op']:.1f} |"
        )
    (Path(directory) / "summary.md").write_text("\n".join(rows) + "\n")
    written.append("summary.md")
    print(f"plot.py: wrote {', '.join(written)} in {directory}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "tuning/results")
