# SPDX-License-Identifier: GPL-2.0-or-later
"""report.py - the results table (absolute values, ratios to kernel overlayfs, each goal of issue
10 marked met or not), the JSON beside it and the chart.

Input: run = {"rows": [(key, label)], "order": [target names], "results": {key: {target:
value}}, "errors": {key: {target: reason}}, ...}; a value is seconds for a workload row. A
goal compares plyfs' value; a failed comparison target (passthrough_ll with EMFILE) is skipped.
"""

import json
import os
import platform
import shutil
import subprocess
import time

from workloads import KERNEL_GOALS, NO_PASSTHROUGH_GOAL, RSS_GOAL_MIB

PT = "passthrough_ll"
FO = "fuse-overlayfs"
MET, NOT_MET, NA = "met", "**not met**", "—"
WHOLE_RUN = {"daemon CPU"}


def machine(scratch):
	model = "?"
	try:
		with open("/proc/cpuinfo") as f:
			model = next(line.split(":", 1)[1].strip() for line in f
				     if line.startswith("model name"))
	except (OSError, StopIteration):
		pass
	mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
	fs = subprocess.run(["findmnt", "-no", "FSTYPE", "-T", scratch], capture_output=True,
			    text=True).stdout
	return (f"{os.cpu_count()} x {model}, {mem:.0f} GiB, Linux {platform.release()}, "
		f"layers on {fs.strip()}")


def fmt(v, unit):
	if unit == "s":
		return f"{v * 1000:.1f} ms" if v < 1 else f"{v:.2f} s"
	return {"×": f"{v:.2f}×", "cpu": f"{v:.1f} s"}.get(unit, f"{v:.1f}")


def cell(run, key, tn, unit):
	v = run["results"].get(key, {}).get(tn)
	if v is None:
		why = run["errors"].get(key, {}).get(tn)
		return f"— ({why})" if why else "—"
	k = run["results"].get(key, {}).get("kernel")
	ratio = f" ({v / k:.2f}×)" if unit == "s" and k and tn != "kernel" else ""
	return fmt(v, unit) + ratio


def compare(run, key, other, lower_is_better=True, strict=True):
	"""plyfs against another target on one row: met, not met, or None where it cannot say."""
	row = run["results"].get(key, {})
	p, o = row.get("plyfs"), row.get(other)
	if other not in run["order"] or o is None or "plyfs" not in run["order"]:
		return None
	if key in WHOLE_RUN and ({other, "plyfs"} & set(run["incomplete"])):
		return None  # a target that failed cells did less work
	if p is None:
		return False
	if not lower_is_better:
		p, o = -p, -o
	return p < o if strict else p <= o


def mark(ok, detail=""):
	if ok is None:
		return NA
	return (MET if ok else NOT_MET) + (f" ({detail})" if detail else "")


def evaluate(run):
	"""Marks every goal: per row, and per goal of the issue. Returns (row marks, goal list)."""
	limits = {key: lim for _, goals in KERNEL_GOALS for key, lim in goals.items()}
	marks, fo_rows, pt_rows = {}, [], []
	for key, _, unit in run["table"]:
		row = run["results"].get(key, {})
		m = {}
		if key in limits:
			p, kv = row.get("plyfs"), row.get("kernel")
			ok = None if not kv or "plyfs" not in run["order"] else (
				p is not None and p / kv <= limits[key])
			m["kernel"] = (ok, f"≤ {limits[key]}×")
		if key == "two walkers speedup":
			p = row.get("plyfs")
			m["kernel"] = (None if "plyfs" not in run["order"] else (p is not None and p > 1),
				       "> 1")
		if key == "daemon RSS after walk":
			p = row.get("plyfs")
			m["kernel"] = (None if "plyfs" not in run["order"] else (
				p is not None and p <= RSS_GOAL_MIB), f"≤ {RSS_GOAL_MIB} MiB")
		if key in run["vs_others"]:
			better = key != "two walkers speedup"
			m[FO] = compare(run, key, FO, better)
			m[PT] = None if key in NO_PASSTHROUGH_GOAL else compare(run, key, PT, better, False)
			if m[FO] is not None:
				fo_rows.append((key, m[FO]))
			if m[PT] is not None:
				pt_rows.append((key, m[PT]))
		marks[key] = m
	labels = {key: label for key, label, _ in run["table"]}

	def group(text, pairs):
		bad = [labels[k] for k, ok in pairs if not ok]
		if not pairs:
			return (text, None, "not measured")
		return (text, not bad, "not met on: " + ", ".join(bad) if bad else
			f"all {len(pairs)} rows")
	goals = [group("faster than fuse-overlayfs on every row", fo_rows)]
	pt_failed = [labels[k] for k, _, _ in run["table"] if k in run["vs_others"] and
		     k not in NO_PASSTHROUGH_GOAL and PT in run["order"] and
		     run["results"].get(k, {}).get(PT) is None]
	g = group("at or below passthrough_ll on every row where it works", pt_rows)
	if pt_failed:
		g = (g[0], g[1], g[2] + "; passthrough_ll failed (skipped): " + ", ".join(pt_failed))
	goals.append(g)
	for text, keys in KERNEL_GOALS:
		goals.append(group(text, [(k, marks[k]["kernel"][0]) for k in keys
					  if marks.get(k, {}).get("kernel", (None,))[0] is not None]))
	goals.append(group("two walkers faster than one",
			   [(k, marks[k]["kernel"][0]) for k in ["two walkers speedup"]
			    if marks[k]["kernel"][0] is not None]))
	goals.append(group(f"daemon RSS after the walk ≤ {RSS_GOAL_MIB} MiB, caches dropped",
			   [(k, marks[k]["kernel"][0]) for k in ["daemon RSS after walk"]
			    if marks[k]["kernel"][0] is not None]))
	return marks, goals


def report(run, out):
	order = run["order"]
	marks, goals = evaluate(run)
	a = run["args"]
	lines = [f"# plyfs benchmark ({'quick' if a['quick'] else 'full'})", "",
		 f"Machine: {run['machine']}.  ",
		 f"Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; whole run "
		 f"{run['elapsed']:.0f} s (layers {run['phase_seconds'].get('layers', 0):.0f} s, " +
		 ", ".join(f"{tn} {run['phase_seconds'].get(tn, 0):.0f} s" for tn in order) +
		 f"); each cell the median of {a['reps']} runs; ratio = value / kernel overlayfs' "
		 "(lower is better).  ",
		 "Sizes: " + ", ".join(f"{k}={v}" for k, v in run["sizes"].items()) + ".  ",
		 f"{PT}: libfuse's low-level passthrough example (libfuse3-dev), `-o cache=always,"
		 "writeback` (passthrough_hp's defaults) over a plain copy of the merged tree: the cost "
		 "of FUSE itself; it keeps an fd per inode, so it fails (—, EMFILE) where the kernel "
		 "holds more inodes than the open-files limit, and goals skip those rows.", ""]
	hdr = ("| workload | " + " | ".join(order) +
	       f" | goal (plyfs) | < {FO} | ≤ {PT} |")
	lines += [hdr, "|" + "---|" * (len(order) + 4)]
	for key, label, unit in run["table"]:
		cells = [cell(run, key, tn, unit) for tn in order]
		m = marks[key]
		kg = m.get("kernel")
		goal = f"{kg[1]}: {mark(kg[0])}" if kg else ""
		fo = mark(m[FO]) if FO in m else ""
		pt = mark(m[PT]) if PT in m else ""
		lines.append(f"| {label} | " + " | ".join(cells) + f" | {goal} | {fo} | {pt} |")
	met = sum(1 for g in goals if g[1])
	lines += ["", f"## Goals of issue 10: {met} of {len(goals)} met", ""]
	for text, ok, detail in goals:
		lines.append(f"- {mark(ok)}: {text} ({detail})")
	lines.append("")
	with open(os.path.join(out, "latest.md"), "w") as f:
		f.write("\n".join(lines))
	with open(os.path.join(out, "latest.json"), "w") as f:
		json.dump(dict(run, goals=goals), f, indent=1, default=str)
	chart(run, out)
	print("\n".join(lines))


def chart(run, out):
	if not shutil.which("gnuplot"):
		print("gnuplot not installed: no chart")
		return
	others = [tn for tn in run["order"] if tn != "kernel"]
	dat = os.path.join(out, "latest.dat")
	with open(dat, "w") as f:
		f.write("workload " + " ".join(f'"{tn}"' for tn in others) + "\n")
		for key, label, unit in run["table"]:
			if unit != "s":
				continue
			row = run["results"].get(key, {})
			k = row.get("kernel")
			vals = [(row[tn] / k) if k and row.get(tn) else float("nan") for tn in others]
			f.write(f'"{key}" ' + " ".join(f"{v:.4f}" for v in vals) + "\n")
	script = f"""
set terminal svg size 1400,650 dynamic noenhanced font 'sans,11'
set output '{os.path.join(out, "latest.svg")}'
set title 'time relative to kernel overlayfs (1 = kernel; log scale; lower is better; a gap = failed)'
set style data histograms
set style histogram clustered gap 1
set style fill solid border -1
set logscale y
set yrange [0.1:*]
set xtics rotate by 30 right font ',10'
set key outside right top
set grid ytics
set bmargin 8
plot for [i=2:{len(others) + 1}] '{dat}' using i:xtic(1) title columnheader(i), 1 notitle lw 2 lc rgb 'black'
"""
	subprocess.run(["gnuplot"], input=script, text=True, check=False, timeout=60)
	os.unlink(dat)
