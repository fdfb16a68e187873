#!/usr/bin/env bash
# Merge per-shard SDF outputs (and failure lists) of cli/slurm_conformers_array.sh.
#   cli/merge_shards.sh out all_confs.sdf
set -euo pipefail
out=${1:?shard output folder}
merged=${2:?merged sdf}
tmp="$merged.tmp.$$"
cat "$out"/part_*.sdf > "$tmp" && mv "$tmp" "$merged"
if compgen -G "$out/part_*.failed.csv" > /dev/null; then
  { head -n 1 "$(ls "$out"/part_*.failed.csv | head -n 1)"; tail -q -n +2 "$out"/part_*.failed.csv; } > "${merged%.sdf}.failed.csv"
fi
echo "merged $(grep -c '^\$\$\$\$' "$merged") conformers into $merged"
