"""The make bench harness: runs each workload through each system,
interleaved, and writes results.json, results.md and chart.png.

See bench/README.md.  Debian's python3 only (no pip)."""
