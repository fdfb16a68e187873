#!/usr/bin/env bash
# Submit the conformer array (cli/slurm_conformers_array.sh) and the merge (cli/slurm_merge.sh), which
# SLURM starts when every array task has succeeded:
#
#   cli/submit_conformers.sh INPUT OUT_DIR [TASKS [MERGED]] [-- molgen conformers options...]
#   cli/submit_conformers.sh big.smi out/ 64                    # -> out/shard-*-of-00064/, then out.sdf
#   N_CONFS=50 cli/submit_conformers.sh big.smi out/ 64 all.sdf -- --rms 0.5 --gzip
#
# Rerunning the same command after a timeout or a node failure resumes: finished chunks are skipped, the
# rest is redone, then the merge runs. Use the same TASKS and options as the first time.
#
# Dependency: afterok (default) starts the merge only when all tasks exited 0. The array script already
# maps molgen's exit code 1 (some molecules failed, listed in failures.csv) to 0, so failed molecules
# do not block the merge; a crashed or timed-out task does, and --kill-on-invalid-dep=yes then cancels
# the merge instead of leaving it pending forever. DEPENDENCY=afterany merges whatever happens: the
# merge checks the manifests itself and exits 1 naming the missing shards/chunks (unless --allow-missing),
# at the cost of a merge job that may run on incomplete work; it is also the choice if you remove the
# exit-code mapping from the array script (then any failed molecule would block an afterok merge).
set -euo pipefail

usage="usage: cli/submit_conformers.sh INPUT OUT_DIR [TASKS [MERGED]] [-- molgen conformers options...]"
positional=()
while [[ $# -gt 0 && $1 != "--" ]]; do
  positional+=("$1")
  shift
done
[[ $# -gt 0 ]] && shift  # the '--'
if [[ ${#positional[@]} -lt 2 || ${#positional[@]} -gt 4 ]]; then
  echo "$usage" >&2
  exit 2
fi
input=${positional[0]}
out=${positional[1]%/}
tasks=${positional[2]:-64}
merged=${positional[3]:-$out.sdf}
dependency=${DEPENDENCY:-afterok}
if ! [[ $tasks =~ ^[1-9][0-9]*$ ]]; then
  echo "TASKS must be a positive integer, got '$tasks'" >&2
  exit 2
fi
if [[ ! -e $input ]]; then
  echo "input $input not found (it must be on a file system the compute nodes see)" >&2
  exit 2
fi
case $dependency in
  afterok | afterany) ;;
  *) echo "DEPENDENCY must be afterok or afterany, got '$dependency'" >&2; exit 2 ;;
esac

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
mkdir -p logs "$out"  # SLURM opens logs/... before a job starts; a missing folder fails it silently

# --parsable prints "jobid" or "jobid;cluster"
array_id=$(sbatch --parsable --array="0-$((tasks - 1))" "$here/slurm_conformers_array.sh" "$input" "$out/" "$@")
array_id=${array_id%%;*}
merge_id=$(sbatch --parsable --dependency="$dependency:$array_id" --kill-on-invalid-dep=yes \
  "$here/slurm_merge.sh" "$out/" "$merged")
merge_id=${merge_id%%;*}
echo "submitted array job $array_id ($tasks tasks) -> $out/ and merge job $merge_id ($dependency) -> $merged"
echo "follow: squeue -j $array_id,$merge_id    afterwards: sacct -j $array_id --format=JobID,State,ExitCode,Elapsed,MaxRSS"
