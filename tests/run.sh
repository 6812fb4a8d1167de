#!/usr/bin/env bash
# The whole test suite, from a fresh Debian machine: installs what the tests need, builds
# k3rs once, then runs every test against that one build.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages the build and the tests need (installed only when missing).
packages=(protobuf-compiler containerd runc containernetworking-plugins etcd-client
          etcd-server busybox-static skopeo iproute2 iptables shellcheck curl
          docker-registry apache2-utils)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}"
  if [ "$(id -u)" -ne 0 ]; then sudo=sudo; else sudo=; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
command -v kubectl >/dev/null || { echo "kubectl is required on PATH" >&2; exit 1; }
# The Python client test builds a virtualenv (pip from PyPI) once per target dir.
if ! python3 -m venv --help >/dev/null 2>&1; then
  if [ "$(id -u)" -ne 0 ]; then sudo=sudo; else sudo=; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends python3-venv >/dev/null
fi

export CARGO_TERM_COLOR=never
cargo fmt --check
cargo clippy --all-targets -- -D warnings
# One build (dev profile) shared by every test; the integration tests drive that build's
# `k3rs` binary. The heavy end-to-end files (containerd, network namespaces) start one server
# for all their scenarios. Optimised builds are for benchmarks (BENCHMARKS.md), not for this
# suite: on 2 cores they would cost more compile time than they save in test time.
cargo test --all-targets --no-fail-fast -- --test-threads=2
