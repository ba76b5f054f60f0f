#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The complete example of docs/scenarios.md (its first yaml block) runs and
# its expectations hold, so the documentation cannot drift from the tool.
# Usage: check_doc_example.sh CAPMEM DOCS_SCENARIOS_MD
set -euo pipefail
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
awk '/^```yaml/{f=1;next} /^```/{if(f){exit}} f' "$2" >"$tmp/budget.yaml"
[ -s "$tmp/budget.yaml" ] || { echo "no yaml block in $2"; exit 1; }
"$1" run "$tmp/budget.yaml"
