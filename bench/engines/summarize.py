#!/usr/bin/env python3
"""Medians of results/*.txt (go test -bench output) and ratios vs modernc."""
import re, statistics, collections, glob
data = collections.defaultdict(lambda: collections.defaultdict(list))
order = []
for f in sorted(glob.glob("results/[A-D].txt")):
    for line in open(f):
        if not line.startswith("Benchmark"):
            continue
        parts = line.split()
        name = re.sub(r"-\d+$", "", parts[0][len("Benchmark"):])
        if name not in data:
            order.append(name)
        for v, unit in zip(parts[2::2], parts[3::2]):
            data[name][unit].append(float(v))
med = {n: {u: statistics.median(v) for u, v in d.items()} for n, d in data.items()}
def t(ns):
    for div, suf in ((1e6, "ms"), (1e3, "µs")):
        if ns >= div: return f"{ns/div:.3g} {suf}"
    return f"{ns:.3g} ns"
print("name                                sec/op     B/op  allocs/op   rows/s")
for n in order:
    m = med[n]
    rs = f"{m['rows/s']/1e3:.1f}k" if "rows/s" in m else ""
    print(f"{n:34s} {t(m['ns/op']):>9s} {m['B/op']:>8.0f} {m['allocs/op']:>9.0f} {rs:>8s}")
print()
for n in order:
    grp, eng = n.split("/")
    base = med[grp + "/modernc"]
    if "rows/s" in med[n]:
        print(f"{n}: rows/s ratio {med[n]['rows/s']/base['rows/s']:.2f}x")
    else:
        print(f"{n}: time ratio {med[n]['ns/op']/base['ns/op']:.3g}x")
