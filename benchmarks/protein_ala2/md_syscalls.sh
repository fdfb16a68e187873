#!/usr/bin/env bash
# Why OpenMM's CPU platform spends most of an alanine-dipeptide run in the kernel (BENCHMARKS.md, issue 8):
# counts the system calls of 3,000 MD steps (6 ps) of the benchmark's setup (amber14 + OBC2, 1 thread) with
# strace, and times 5,000 steps on the CPU platform (1 thread) and the Reference platform. Needs strace.
set -euo pipefail
cd "$(dirname "$0")/../.."
PDB=tests/data/protein/alanine-dipeptide-implicit.pdb
python - "$PDB" <<'PY' > /tmp/molgen_md_timing.txt
import os, sys, time
from openmm import LangevinMiddleIntegrator, Platform, app, unit
pdb = app.PDBFile(sys.argv[1])
system = app.ForceField("amber14-all.xml", "implicit/obc2.xml").createSystem(
    pdb.topology, nonbondedMethod=app.NoCutoff, constraints=app.HBonds)
steps = int(os.environ.get("STEPS", "5000"))
for name, props in (("CPU", {"Threads": "1"}), ("Reference", {})):
    integ = LangevinMiddleIntegrator(300 * unit.kelvin, 1 / unit.picosecond, 0.002 * unit.picoseconds)
    sim = app.Simulation(pdb.topology, system, integ, Platform.getPlatformByName(name), props)
    sim.context.setPositions(pdb.positions)
    sim.step(100)
    t0, w0 = os.times(), time.perf_counter()
    sim.step(steps)
    t1, wall = os.times(), time.perf_counter() - w0
    print(f"{name} {props}: {steps} steps, wall {wall:.2f} s, user {t1.user - t0.user:.2f} s, "
          f"system {t1.system - t0.system:.2f} s, {steps * 0.002 / 1000 / wall * 86400:.0f} ns/day")
PY
cat /tmp/molgen_md_timing.txt
STEPS=3000 strace -f -c -o /tmp/molgen_md_strace.txt python - "$PDB" <<'PY' >/dev/null
import sys
from openmm import LangevinMiddleIntegrator, Platform, app, unit
pdb = app.PDBFile(sys.argv[1])
system = app.ForceField("amber14-all.xml", "implicit/obc2.xml").createSystem(
    pdb.topology, nonbondedMethod=app.NoCutoff, constraints=app.HBonds)
integ = LangevinMiddleIntegrator(300 * unit.kelvin, 1 / unit.picosecond, 0.002 * unit.picoseconds)
sim = app.Simulation(pdb.topology, system, integ, Platform.getPlatformByName("CPU"), {"Threads": "1"})
sim.context.setPositions(pdb.positions)
sim.step(3000)
PY
echo "system calls of 3,000 CPU-platform steps (strace -f -c), top 5:"
sed -n 1,7p /tmp/molgen_md_strace.txt
