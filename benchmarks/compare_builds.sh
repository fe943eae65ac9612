#!/usr/bin/env bash
# Compares two builds of relay_bench side by side, interleaved, in one run:
#   benchmarks/compare_builds.sh OLD_BIN_DIR NEW_BIN_DIR [ROUNDS]
# Each round runs, for uds, shm and tcp, a 64 B RTT and a 64 B one-way
# throughput with the server on CPU 0 and the client on CPU 1, old then new.
# Prints one JSON line per measurement with "build": "old"|"new".
set -euo pipefail
old="$1" new="$2" rounds="${3:-3}"
work="$(mktemp -d)"
server_pid=""
cleanup() {
  [[ -n "$server_pid" ]] && { kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; }
  rm -rf "$work"
}
trap cleanup EXIT
(umask 077 && head -c 32 /dev/urandom | base64 > "$work/cookie")
opts=(--relay.cookie-file="$work/cookie")
for round in $(seq "$rounds"); do
  for t in uds shm tcp; do
    for build in old new; do
      bin="$old"; [[ "$build" == new ]] && bin="$new"
      case "$t" in
        tcp) where="tcp://127.0.0.1:0" ;;
        *) where="$t://$work/b.sock" ;;
      esac
      : > "$work/out"
      taskset -c 0 "$bin/relay_bench" serve "$where" "${opts[@]}" > "$work/out" 2> "$work/err" &
      server_pid=$!
      for _ in $(seq 200); do grep -q "^listening on " "$work/out" && break; sleep 0.05; done
      uri="$(sed -n 's/^listening on //p' "$work/out")"
      tag() { sed -u "s/^{/{\"build\": \"$build\", \"round\": $round, /"; }
      taskset -c 1 "$bin/relay_bench" rtt "$uri" --size 64 --count 20000 "${opts[@]}" | tag
      taskset -c 1 "$bin/relay_bench" throughput "$uri" --size 64 --count 500000 "${opts[@]}" | tag
      kill "$server_pid"; wait "$server_pid" 2>/dev/null || true; server_pid=""
    done
  done
done
