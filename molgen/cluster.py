"""What the process may use: CPU cores, its rank under torchrun / srun, its device.

One small adapter for clusters (as MACE's ``slurm_distributed`` does): under ``srun`` without torchrun,
``SLURM_PROCID``, ``SLURM_LOCALID`` and ``SLURM_NTASKS`` are mapped to torch's ``RANK``, ``LOCAL_RANK``
and ``WORLD_SIZE``; training (:mod:`molgen.training.distributed`) and batch generation
(:mod:`molgen.batch`) both read the rank from here. Nothing in this module imports torch at import time.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

__all__ = ["RankInfo", "available_cpus", "resolve_device", "slurm_to_torch_env"]


def slurm_to_torch_env(environ: dict[str, str] | None = None) -> None:
    """Fill ``RANK``/``LOCAL_RANK``/``WORLD_SIZE`` from SLURM variables when torchrun did not set them.

    Only a multi-task step (``SLURM_NTASKS > 1``) is mapped: a SLURM array task is a single task and
    takes its share of the input from ``SLURM_ARRAY_TASK_ID`` instead (:mod:`molgen.batch.sharding`).
    """
    env = os.environ if environ is None else environ
    if "RANK" not in env and "SLURM_PROCID" in env and int(env.get("SLURM_NTASKS", "1")) > 1:
        env["RANK"] = env["SLURM_PROCID"]
        env["LOCAL_RANK"] = env.get("SLURM_LOCALID", "0")
        env["WORLD_SIZE"] = env["SLURM_NTASKS"]


@dataclass(frozen=True)
class RankInfo:
    """This process's place among the processes of a torchrun / srun job (0 of 1 when alone)."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @staticmethod
    def from_env(environ: dict[str, str] | None = None) -> RankInfo:
        """Read ``RANK``/``LOCAL_RANK``/``WORLD_SIZE`` (after mapping SLURM's variables)."""
        env = dict(os.environ if environ is None else environ)
        slurm_to_torch_env(env)
        world = int(env.get("WORLD_SIZE", "1"))
        rank = int(env.get("RANK", "0"))
        if world < 1 or not 0 <= rank < world:
            raise ValueError(f"inconsistent RANK={rank} / WORLD_SIZE={world} in the environment")
        return RankInfo(rank, int(env.get("LOCAL_RANK", "0")), world)


def _cgroup_cpu_limit() -> float | None:
    """CPU quota of this process's cgroup (v2 ``cpu.max`` or v1 ``cfs_quota/period``), None if unlimited."""
    try:
        text = Path("/sys/fs/cgroup/cpu.max").read_text().split()
        if text and text[0] != "max":
            return int(text[0]) / int(text[1])
    except (OSError, ValueError, IndexError):
        pass
    try:
        quota = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us").read_text())
        period = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us").read_text())
        if quota > 0 and period > 0:
            return quota / period
    except (OSError, ValueError):
        pass
    return None


def available_cpus(environ: dict[str, str] | None = None) -> int:
    """Cores this process may use: the smallest of ``SLURM_CPUS_PER_TASK``, the CPU affinity mask and
    the cgroup CPU quota (rounded down, at least 1)."""
    env = os.environ if environ is None else environ
    counts: list[int] = []
    try:
        counts.append(len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        counts.append(os.cpu_count() or 1)
    slurm = env.get("SLURM_CPUS_PER_TASK")
    if slurm and slurm.strip().isdigit() and int(slurm) > 0:
        counts.append(int(slurm))
    quota = _cgroup_cpu_limit()
    if quota is not None:
        counts.append(max(1, int(quota)))
    return max(1, min(counts))


def resolve_device(requested: str, local_rank: int = 0) -> str:
    """``auto`` | ``cpu`` | ``cuda`` | ``cuda:N`` -> a concrete torch device string.

    ``auto`` is ``cuda`` when a GPU is visible, else ``cpu``; a bare ``cuda`` under torchrun / srun is
    the rank's own GPU, ``cuda:<LOCAL_RANK mod visible GPUs>``.

    Raises:
        ValueError: an unknown device, or CUDA asked for where none is visible.
    """
    text = requested.strip().lower()
    if text not in ("auto", "cpu", "cuda") and not (text.startswith("cuda:") and text[5:].isdigit()):
        raise ValueError(f"device must be auto, cpu, cuda or cuda:N, got {requested!r}")
    if text == "cpu":
        return "cpu"
    import torch

    n_gpu = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if text == "auto":
        if n_gpu == 0:
            return "cpu"
        text = "cuda"
    if n_gpu == 0:
        raise ValueError(f"device {requested!r} asked for, but no CUDA GPU is visible")
    if text == "cuda":
        return f"cuda:{local_rank % n_gpu}"
    index = int(text[5:])
    if index >= n_gpu:
        raise ValueError(f"device {requested!r} asked for, but only {n_gpu} GPU(s) are visible")
    return text
