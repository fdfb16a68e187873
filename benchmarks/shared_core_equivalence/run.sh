#!/usr/bin/env bash
# The torsion model keeps its numbers through the shared-diffusion-core refactor: conformers generated
# with the same seeds by the commit before it (10dbe32) and by the working tree, compared coordinate by
# coordinate. Usage: benchmarks/shared_core_equivalence/run.sh  (from the repository root)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
old=$(mktemp -d)/old
git -C "$root" worktree add -f "$old" 10dbe32 -q
trap 'git -C "$root" worktree remove --force "$old"' EXIT
cd "$(mktemp -d)"
python "$here/generate.py" "$old" old.pkl
python "$here/generate.py" "$root" new.pkl
python - <<'PY'
import pickle, numpy as np
a, b = pickle.load(open("old.pkl", "rb")), pickle.load(open("new.pkl", "rb"))
labels = [f"{s} {m}" for s in ["paracetamol", "benzocaine", "Ala-Phe-OEt", "decanoic acid"] for m in ("ode", "sde")]
print("| molecule, sampler | conformers x atoms | max |coordinate difference| (Å) |\n|---|---|---|")
for lab, x, y in zip(labels, a, b):
    print(f"| {lab} | {x.shape[0]} x {x.shape[1]} | {np.abs(x - y).max():.1e} |")
PY
