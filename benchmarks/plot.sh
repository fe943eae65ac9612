#!/usr/bin/env bash
# benchmarks/plot.sh RESULTS.jsonl OUT.png: RTT p50 and 64-B throughput per
# system and transport, for both placements, from scripts/bench output.
set -euo pipefail
in="$1"
out="$2"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
# field NAME LINE: the value of a JSON field (strings unquoted).
extract() {
  awk -v want_case="$1" -v want_size="$2" -v metric="$3" '
    function field(name,   r) {
      if (match($0, "\"" name "\": \"?[^,\"}]*")) {
        r = substr($0, RSTART, RLENGTH); sub(/^[^:]*: "?/, "", r); return r
      }
      return ""
    }
    field("case") == want_case && field("size") == want_size {
      key = field("system") "/" field("transport")
      if (!(key in seen)) { seen[key] = 1; order[n++] = key }
      v[key, field("placement")] = field(metric)
    }
    END {
      for (i = 0; i < n; ++i) {
        k = order[i]
        one = v[k, "one_cpu"]; two = v[k, "two_cpus"]
        if (one == "" && two == "") { one = v[k, "one_process"]; two = one }
        print "\"" k "\"", (one == "" ? "NaN" : one), (two == "" ? "NaN" : two)
      }
    }' "$in"
}
extract rtt 64 p50_us > "$tmp/rtt.dat"
extract throughput 64 msgs_per_s > "$tmp/tput.dat"
gnuplot <<GP
set terminal pngcairo size 1400,900 font ",10" noenhanced
set output "$out"
set multiplot layout 2,1
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set xtics rotate by -35
set grid ytics
set key top left
set title "Round trip p50, 64 B (microseconds, log scale; lower is better)"
set logscale y
plot "$tmp/rtt.dat" using 2:xtic(1) title "one CPU", "" using 3 title "two CPUs"
set title "One-way throughput, 64 B (messages/s, log scale; higher is better)"
plot "$tmp/tput.dat" using 2:xtic(1) title "one CPU", "" using 3 title "two CPUs"
unset multiplot
GP
