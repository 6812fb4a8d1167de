#!/usr/bin/env bash
# Cold start to node Ready, idle RSS after 60 s, and binary size of a release `k3rs server`
# (built-in agent on, its own containerd). Needs root, kubectl, containerd, runc.
#   cargo build --release && sudo examples/startup_rss.sh [path/to/k3rs]
set -euo pipefail
bin=${1:-target/release/k3rs}
d=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$d"' EXIT
awk '{printf "binary %.1f MiB\n", $1/1048576}' < <(stat -c %s "$bin")
start=$(date +%s.%N)
"$bin" server -d "$d/data" -o "$d/kc.yaml" --https-listen-port 26443 \
  --etcd-listen-address 127.0.0.1:22379 --raft-listen-port 22380 \
  --agent-endpoint 127.0.0.1:20250 >"$d/log" 2>&1 &
pid=$!
jsonpath='{.items[0].status.conditions[?(@.type=="Ready")].status}'
until [ -f "$d/kc.yaml" ] && KUBECONFIG="$d/kc.yaml" kubectl get nodes -o jsonpath="$jsonpath" 2>/dev/null | grep -q True; do
  sleep 0.02
done
end=$(date +%s.%N)
echo "start -> Ready (incl. one kubectl run): $(echo "$end - $start" | bc) s"
sleep 60
grep VmRSS "/proc/$pid/status"
cpid=$(pgrep -P "$pid" containerd | head -1 || true)
if [ -n "$cpid" ]; then sed 's/^/containerd /' < <(grep VmRSS "/proc/$cpid/status"); fi
