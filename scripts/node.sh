#!/usr/bin/env bash
# Node.js and npm for the identity harness (tests/identity): the machine's own, or Debian's packages.
set -euo pipefail

need_packages=()
command -v node >/dev/null 2>&1 || need_packages+=(nodejs)
command -v npm >/dev/null 2>&1 || need_packages+=(npm)
if ((${#need_packages[@]})); then
  echo "node: installing ${need_packages[*]}"
  if [[ $(id -u) -ne 0 ]]; then
    echo "node: need root to apt-get install ${need_packages[*]}" >&2
    exit 1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_packages[@]}" >/dev/null
fi

major="$(node -p 'process.versions.node.split(".")[0]')"
if ((major < 18)); then
  echo "node: Node.js $(node --version) is too old for better-auth (18 or later; tested with 20)" >&2
  exit 1
fi
echo "node: Node.js $(node --version), npm $(npm --version)"
