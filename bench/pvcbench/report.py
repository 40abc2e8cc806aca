"""Results: the rows of results.json, the Markdown table (absolute
figures and ratio to native), and the chart (gnuplot)."""

import json
import os
import statistics
import subprocess

from .workloads import HIGHER_IS_BETTER


class Results:
    """Measurements as they come, by (metric, direction, system)."""

    def __init__(self, systems):
        self.systems = systems        # names, in table order
        self.values = {}              # key -> [values]
        self.units = {}               # key -> unit
        self.errors = {}              # key -> [messages]
        self.order = []               # (metric, direction), first seen

    def _key(self, metric, direction, system):
        if (metric, direction) not in self.order:
            self.order.append((metric, direction))
        return (metric, direction, system)

    def add(self, metric, direction, system, value, unit):
        key = self._key(metric, direction, system)
        self.values.setdefault(key, []).append(value)
        self.units[key] = unit

    def fail(self, metric, direction, system, message):
        key = self._key(metric, direction, system)
        self.errors.setdefault(key, []).append(message)

    def rows(self):
        """results.json: value = median of the repeats that succeeded;
        a key with none has value null and the error."""
        out = []
        for metric, direction in self.order:
            for system in self.systems:
                key = (metric, direction, system)
                vals = self.values.get(key, [])
                errs = self.errors.get(key, [])
                if not vals and not errs:
                    continue
                row = {"workload": metric, "direction": direction,
                       "system": system,
                       "value": statistics.median(vals) if vals else None,
                       "unit": self.units.get(key) or self._unit(metric),
                       "repeats": len(vals),
                       "min": min(vals) if vals else None,
                       "max": max(vals) if vals else None}
                if errs:
                    row["error"] = errs[0]
                    row["failed_repeats"] = len(errs)
                out.append(row)
        return out

    def _unit(self, metric):
        for (m, _, _), unit in self.units.items():
            if m == metric:
                return unit
        return ""


def fmt(value):
    if value is None:
        return "-"
    if value == 0 or abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def ratio(row, native):
    if not native or native["value"] in (None, 0) or row["value"] is None:
        return None
    return row["value"] / native["value"]


def by_key(rows):
    return {(r["workload"], r["direction"], r["system"]): r for r in rows}


def cell(row, native):
    if row is None:
        return "not run"
    if row["value"] is None:
        return "n/a ¹" if row.get("error") else "n/a"
    text = fmt(row["value"])
    r = ratio(row, native)
    if r is not None and row["system"] != "native":
        text += f" ({r:.2f}×)"
    if row.get("error"):
        text += " ¹"
    return text


def markdown(rows, systems, meta):
    """The table: one line per workload metric and direction, one column
    per system: median (ratio to native); then the errors."""
    idx = by_key(rows)
    lines = [f"# make bench, {meta['started']}", "",
             f"{meta['repeats']} repeat(s), {meta['seconds']:g} s per run, "
             f"idle-10k: {meta['idle_conns']} connections, "
             f"{meta['idle_window_s']:g} s window; commit {meta['commit']}; "
             f"{meta['machine']}.", "",
             "Cells: median of the repeats (ratio to native).  Throughput "
             "and rates: higher is better; latency, memory and CPU: lower "
             "is better.", "",
             "| workload | direction | unit | " + " | ".join(systems) + " |",
             "|---|---|---|" + "---|" * len(systems)]
    seen = []
    for r in rows:
        key = (r["workload"], r["direction"])
        if key in seen:
            continue
        seen.append(key)
        native = idx.get(key + ("native",))
        cells = [cell(idx.get(key + (s,)), native) for s in systems]
        lines.append(f"| {key[0]} | {key[1]} | {r['unit']} | "
                     + " | ".join(cells) + " |")
    errs = [r for r in rows if r.get("error")]
    if errs:
        lines += ["", "¹ Errors (first message of each; n/a: no repeat "
                  "succeeded):", ""]
        for r in errs:
            lines.append(f"- {r['workload']}/{r['direction']} "
                         f"{r['system']} ({r['failed_repeats']} failed): "
                         f"{r['error']}")
    notes = meta.get("notes") or []
    if notes:
        lines += ["", "Notes:", ""] + [f"- {n}" for n in notes]
    return "\n".join(lines) + "\n"


def chart(rows, systems, outdir):
    """chart.png: grouped bars, one group per workload metric/direction,
    one bar per system, height = ratio to native on a log scale (ratios
    run from 0.05 to 1000).  Rows whose native value is 0 (idle CPU)
    have no ratio and are left out.  Returns an
    error message, or None."""
    idx = by_key(rows)
    others = [s for s in systems if s != "native"]
    groups = []
    for r in rows:
        key = (r["workload"], r["direction"])
        native = idx.get(key + ("native",))
        if key in [g[0] for g in groups] or not native or not native["value"]:
            continue
        ratios = [ratio(idx[key + (s,)], native) if key + (s,) in idx
                  else None for s in others]
        groups.append((key, ratios))
    if not any(v is not None for _, ratios in groups for v in ratios):
        return "no row with both a native value and another system's"
    data = os.path.join(outdir, "chart.dat")
    with open(data, "w") as f:
        for (metric, direction), ratios in groups:
            better = "↑" if idx[(metric, direction, "native")]["unit"] \
                in HIGHER_IS_BETTER else "↓"
            f.write(f'"{metric}/{direction} {better}" '
                    + " ".join("?" if v is None else f"{v:.4f}"
                               for v in ratios) + "\n")
    plots = ", ".join(
        f"'{data}' using {i + 2}:xtic(1) title '{s}'" if i == 0 else
        f"'' using {i + 2} title '{s}'" for i, s in enumerate(others))
    script = f"""
set terminal pngcairo size 1400,720 font 'sans,10'
set output '{os.path.join(outdir, "chart.png")}'
set title 'Ratio to native (↑ higher is better, ↓ lower is better)'
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set datafile missing '?'
set xtics rotate by 35 right scale 0
set bmargin 9
set ylabel 'ratio to native (log scale)'
set logscale y
set yrange [0.01:*]
set grid ytics mytics
set key top left
set arrow from graph 0, first 1 to graph 1, first 1 nohead dashtype 2 lw 2
plot {plots}
"""
    r = subprocess.run(["gnuplot"], input=script, text=True,
                       capture_output=True, timeout=60)
    os.unlink(data)
    if r.returncode != 0:
        return f"gnuplot failed: {r.stderr.strip()[-300:]}"
    return None


def write_all(results, meta, outdir):
    """results.json, meta.json, results.md, chart.png in outdir: the
    Markdown table (returned for printing)."""
    rows = results.rows()
    with open(os.path.join(outdir, "results.json"), "w") as f:
        json.dump(rows, f, indent=1, ensure_ascii=False)
        f.write("\n")
    err = chart(rows, results.systems, outdir)
    if err:
        meta.setdefault("notes", []).append(f"chart.png: {err}")
    with open(os.path.join(outdir, "meta.json"), "w") as f:
        json.dump(meta, f, indent=1, ensure_ascii=False)
        f.write("\n")
    table = markdown(rows, results.systems, meta)
    with open(os.path.join(outdir, "results.md"), "w") as f:
        f.write(table)
    return table
