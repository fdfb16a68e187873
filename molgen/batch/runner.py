"""The one batch runner: a stream of input records in, conformer files out, on all the cores.

``molgen conformers`` (one SMILES, a file into one output file, or a file into a folder of chunks) and
the cluster templates all run :func:`run_batch`:

1. the input is read as a stream of raw records (:func:`molgen.chem.readers.iter_raw_records`); the
   molecules of other shards are skipped by the hash of their ID, duplicate IDs are reported, and in
   folder mode the chunks already finished (manifest) are skipped without parsing;
2. the rest is cut into units of a few molecules that are parsed, sampled (their denoiser calls packed
   together) and formatted in worker processes (:func:`molgen.batch.work.run_unit`): one process per
   core, each with one torch thread, forked after the model is loaded so that they share it; with one
   thread, or on a GPU, the work runs in this process;
3. results are collected in input order and written chunk by chunk (:mod:`molgen.batch.output`), with a
   bounded number of units in flight, so memory does not grow with the input.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from molgen.batch.output import FileSink, FolderSink, is_folder_output
from molgen.batch.progress import Progress, peak_rss_mib
from molgen.batch.sharding import ShardSpec, stable_hash
from molgen.batch.work import MoleculeOutcome, WorkConfig, run_unit
from molgen.chem.readers import RawRecord, iter_raw_records
from molgen.cluster import RankInfo, available_cpus, resolve_device
from molgen.errors import InputError
from molgen.sampling.options import SamplingOptions

__all__ = ["BatchAborted", "BatchConfig", "default_threads", "run_batch"]

#: heavy atoms of one denoiser call on a GPU (on the CPU: the sampler's default)
DEFAULT_GPU_BATCH_ATOMS = 32768
#: heavy atoms assumed per molecule when sizing units before parsing (drug-like average)
_HEAVY_ATOMS_GUESS = 25
#: seconds between checks that the worker processes are alive while waiting for a result
_WORKER_CHECK_S = 1.0
#: seconds between a worker's checks that the main process is alive
_PARENT_CHECK_S = 1.0
#: seconds that closing or terminating the worker pool may take before its workers are killed
_POOL_STOP_S = 20.0


class BatchAborted(Exception):
    """The run could not go on (a worker process died, e.g. killed for memory); the chunks finished so
    far are kept and a rerun resumes. ``summary`` is the run's summary (``interrupted`` says why)."""

    def __init__(self, message: str, summary: dict[str, Any]) -> None:
        super().__init__(message)
        self.summary = summary


@dataclass
class BatchConfig:
    """A batch run. Paths are as given by the user; ``threads``/``batch_atoms`` None = automatic.

    Attributes:
        input: a SMILES string or a molecule file (.smi, .csv, .sdf, optionally .gz).
        output: a file (.sdf, .sdf.gz, .xyz, .pdb) or a folder (chunked, resumable; see
            :func:`molgen.batch.output.is_folder_output`).
        options: sampling options.
        model: checkpoint path, or None for the shipped model.
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
        threads: worker processes (default: the cores this process may use, divided among the
            torchrun ranks of a node).
        batch_atoms: heavy-atom budget of one denoiser call.
        chunk_size: molecules per chunk in folder mode.
        shard_index, num_shards: this run's share of the input (default: SLURM array, else all).
        seed: the global seed (``options.seed``).
    """

    input: str
    output: Path
    options: SamplingOptions = field(default_factory=SamplingOptions)
    model: str | None = None
    device: str = "auto"
    smiles_col: str = "smiles"
    id_col: str | None = None
    threads: int | None = None
    batch_atoms: int | None = None
    chunk_size: int = 1000
    gzip: bool = False
    shard_index: int | None = None
    num_shards: int | None = None
    overwrite: bool = False
    failed: Path | None = None
    max_heavy_atoms: int = 250
    keep_salts: bool = False
    progress: bool = False
    log_every: float = 30.0
    quiet: bool = False
    verbose: bool = False


def default_threads(environ: dict[str, str] | None = None) -> int:
    """All cores this process may use, shared among the ranks torchrun started on this node."""
    env = os.environ if environ is None else environ
    local_world = int(env.get("LOCAL_WORLD_SIZE", "1") or 1)
    return max(1, available_cpus(env) // max(1, local_world))


# --------------------------------------------------------------------------- worker side

_WORK: WorkConfig | None = None
_SEED = 0


def _init_worker(config: WorkConfig, seed: int, parent: int) -> None:
    global _WORK, _SEED
    _WORK, _SEED = config, seed
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides what an interrupt means
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    _die_with_parent(parent)
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:  # pragma: no cover
        pass


def _die_with_parent(parent: int) -> None:
    """End this worker within a second of the main process's death, even by SIGKILL (otherwise it would
    finish its unit, then fail to send it back).

    A watching thread, not the kernel's PR_SET_PDEATHSIG: that fires when the parent *thread* ends, and a
    worker that the pool starts to replace a dead one is forked by the pool's handler thread, which ends
    at shutdown, killing the worker while it may hold the pool's task-pipe lock.
    """

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(_PARENT_CHECK_S)
        os._exit(1)

    threading.Thread(target=watch, name="molgen-parent-watch", daemon=True).start()


def _work(records: list[RawRecord]) -> list[MoleculeOutcome]:
    assert _WORK is not None
    return run_unit(_WORK, records, _SEED)


# --------------------------------------------------------------------------- main side


@dataclass
class _Unit:
    chunk: int
    outcomes: list[MoleculeOutcome] | None = None  # ready (duplicates) or filled from the future
    future: Any = None
    records: list[RawRecord] = field(default_factory=list)
    last: bool = False  # holds the last record of its chunk: the chunk is written once this is back


class _Terminated(BaseException):
    """SIGTERM, raised wherever the main process is; not an Exception, so that no ``except Exception``
    around one molecule's work (which runs in this process with one thread or a GPU) swallows it."""


class _WorkerDied(Exception):
    pass


def _count_records(path: Path) -> int | None:
    """A quick estimate of the records in an input file (for the ETA), or None."""
    from molgen.chem.readers import CSV_SUFFIXES, SDF_SUFFIXES, SMILES_SUFFIXES

    suffixes = [s.lower() for s in path.suffixes]
    gz = bool(suffixes) and suffixes[-1] == ".gz"
    base = (suffixes[-2] if gz and len(suffixes) > 1 else "") if gz else (suffixes[-1] if suffixes else "")
    try:
        import gzip

        opener = gzip.open if gz else open
        with opener(path, "rb") as fh:  # type: ignore[operator]
            if base in SDF_SUFFIXES:
                return sum(1 for line in fh if line.startswith(b"$$$$"))
            lines = sum(1 for line in fh if line.strip() and not line.startswith(b"#"))
            return max(0, lines - 1) if base in CSV_SUFFIXES else lines if base in SMILES_SUFFIXES else None
    except OSError:
        return None


def _fingerprint(config: BatchConfig, shard: ShardSpec, model_name: str) -> dict[str, Any]:
    src = Path(config.input)
    return {
        "input": str(src.resolve()) if src.exists() else config.input,
        "smiles_col": config.smiles_col,
        "id_col": config.id_col,
        "options": config.options.to_dict(),
        "model": model_name,
        "chunk_size": config.chunk_size,
        "num_shards": shard.count,
        "gzip": config.gzip,
        "max_heavy_atoms": config.max_heavy_atoms,
        "keep_salts": config.keep_salts,
    }


def run_batch(config: BatchConfig, say: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run a batch and return its summary (also written as ``summary.json`` in folder mode).

    Args:
        config: the run.
        say: where messages go (default: stderr).

    Returns:
        ``{"input", "output", "shard", "molecules_ok", "molecules_failed", "molecules_skipped", "chunks"
        (the shard's chunk count; None when interrupted), "conformers_written", "conformers_dropped",
        "failed_file", "wall_time_s", "molecules_per_s", "conformers_per_s", "peak_rss_mib", "threads",
        "device", "interrupted"}``.

    Raises:
        InputError: problems with the input as a whole, the output (one file written by several torchrun /
            srun ranks), the options or the model.
    """
    say = say or (lambda m: print(m, file=sys.stderr, flush=True))
    from molgen.api import load_model

    if config.chunk_size < 1:
        raise InputError(f"--chunk-size must be a positive integer, got {config.chunk_size}")
    rank = RankInfo.from_env()
    shard = ShardSpec.resolve(config.shard_index, config.num_shards, rank)
    threads = config.threads or default_threads()
    try:
        device = resolve_device(config.device, rank.local_rank)
    except ValueError as exc:
        raise InputError(str(exc)) from None
    records = iter_raw_records(config.input, smiles_col=config.smiles_col, id_col=config.id_col)
    on_gpu = device.startswith("cuda")
    use_pool = threads > 1
    # Check the model before any work. With GPU workers the main process loads it on the CPU only: CUDA
    # must not be initialised before the workers start, and each worker loads it on the GPU itself.
    loaded = load_model(config.model, "cpu" if on_gpu and use_pool else device)
    folder = is_folder_output(config.output)
    if folder:
        if config.failed is not None:
            raise InputError("--failed applies to a single output file; a folder keeps failures.csv per shard")
        sink: FileSink | FolderSink = FolderSink(
            Path(config.output), shard.label, _fingerprint(config, shard, loaded.name), gzip=config.gzip,
            overwrite=config.overwrite,
        )
    else:
        if rank.world_size > 1:
            raise InputError(
                f"{rank.world_size} ranks (torchrun / srun) would all write {config.output}: give a folder as "
                "output (-o out/), each rank writes its own shard of it"
            )
        if config.gzip and not str(config.output).endswith(".gz"):
            raise InputError("--gzip applies to folder output; for one file name it .sdf.gz")
        sink = FileSink(Path(config.output), config.failed)
    batch_atoms = config.batch_atoms or (DEFAULT_GPU_BATCH_ATOMS if on_gpu else None)
    work = WorkConfig(config.options, config.model, device, sink.fmt, batch_atoms,
                      config.max_heavy_atoms, config.keep_salts)
    total = None
    if Path(config.input).is_file():
        count = _count_records(Path(config.input))
        if count is not None:
            total = -(-count // shard.count)
    progress = Progress(bar=config.progress, total=total, say=say, log_every=config.log_every, quiet=config.quiet)
    per_unit = max(1, min(512, (batch_atoms or 4096) // (config.options.n * _HEAVY_ATOMS_GUESS)))
    if total and use_pool:  # small inputs: at least 4 units per worker, so no worker idles at the end
        per_unit = max(1, min(per_unit, -(-total // (4 * threads))))
    done_chunks = sink.done_chunks()
    stats = {"skipped": 0, "drops": {}}
    interrupted = aborted = None

    def on_term(signum: int, frame: Any) -> None:
        raise _Terminated(signal.Signals(signum).name)

    main_thread = threading.current_thread() is threading.main_thread()  # signals go to the main thread only
    old_term = signal.signal(signal.SIGTERM, on_term) if main_thread else None
    pool = None
    ok = False
    try:
        if use_pool:
            # fork shares the loaded CPU model with the workers; GPU workers start afresh (spawn)
            ctx = mp.get_context("fork" if sys.platform.startswith("linux") and not on_gpu else "spawn")
            pool = ctx.Pool(threads, initializer=_init_worker, initargs=(work, config.options.seed, os.getpid()))
        else:
            _init_local(work, config.options.seed)
        units = _units(records, shard, config.chunk_size, per_unit, done_chunks, stats)
        _drive(units, pool, sink, progress, stats, max_in_flight=2 * threads if pool else 1,
               verbose=config.verbose)
        ok = True
    except (_Terminated, KeyboardInterrupt) as exc:
        interrupted = str(exc) or "KeyboardInterrupt"
    except _WorkerDied as exc:
        interrupted = aborted = str(exc)
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, old_term)
        if pool is not None:
            _stop_pool(pool, ok)
        progress.close()
        sink.close(ok)
    wall = progress.elapsed
    summary = {
        "input": config.input,
        "output": sink.where,
        "shard": {"index": shard.index, "count": shard.count},
        "molecules_ok": progress.ok,
        "molecules_failed": progress.failed,
        "molecules_skipped": stats["skipped"],
        "chunks": stats.get("chunks") if ok else None,
        "conformers_requested": config.options.n,
        "conformers_written": progress.conformers,
        "conformers_dropped": dict(sorted(stats["drops"].items())),
        "failed_file": sink.failed_file,
        "wall_time_s": round(wall, 3),
        "molecules_per_s": round(progress.done / wall, 3) if wall > 0 else None,
        "conformers_per_s": round(progress.conformers / wall, 3) if wall > 0 else None,
        "peak_rss_mib": peak_rss_mib(),
        "threads": threads,
        "device": device,
        "model": loaded.name,
        "interrupted": interrupted,
    }
    if isinstance(sink, FolderSink):
        sink.write_summary(summary)
    if aborted:
        raise BatchAborted(aborted, summary)
    if interrupted:
        raise KeyboardInterrupt(summary)
    return summary


def _stop_pool(pool: Any, finished: bool) -> None:
    """Close (all work done) or terminate the pool, in bounded time.

    Both wait on the pool's task-pipe lock, which an idle worker holds while it waits for a task: one
    killed from outside meanwhile (the OOM killer, a SIGTERM to every process of a job) holds it forever.
    After ``_POOL_STOP_S`` the workers are killed instead and the stuck shutdown is left behind (also a
    ``terminate()``, so that the pool's exit handler does not get stuck in it again at interpreter exit).
    """

    def stop() -> None:
        if finished:
            pool.close()
        else:
            pool.terminate()
        pool.join()

    stopper = threading.Thread(target=stop, name="molgen-pool-stop", daemon=True)
    stopper.start()
    stopper.join(_POOL_STOP_S)
    if stopper.is_alive():
        if finished:
            threading.Thread(target=pool.terminate, name="molgen-pool-stop", daemon=True).start()
        for worker in list(getattr(pool, "_pool", [])):
            if worker.exitcode is None:
                worker.kill()


def _init_local(work: WorkConfig, seed: int) -> None:
    global _WORK, _SEED
    _WORK, _SEED = work, seed


def _units(records: Iterator[RawRecord], shard: ShardSpec, chunk_size: int, per_unit: int,
           done_chunks: set[int], stats: dict[str, Any]) -> Iterator[_Unit]:
    """Cut the shard's records into units (never spanning two chunks; the unit that ends a chunk is marked
    ``last``); duplicates become ready units."""
    seen: dict[int, str] = {}
    position = 0
    current: _Unit | None = None
    for raw in records:
        if not shard.owns(raw.name):
            continue
        chunk = position // chunk_size
        position += 1
        ends_chunk = position % chunk_size == 0
        key = stable_hash(raw.name)
        first = seen.get(key)
        if first is None:
            seen[key] = raw.source
        if chunk in done_chunks:
            stats["skipped"] += 1
            continue
        if current is not None and (current.chunk != chunk or len(current.records) >= per_unit):
            yield current
            current = None
        if first is not None:
            if current is not None:
                yield current
                current = None
            dup = MoleculeOutcome(raw.name, raw.source, raw.text if raw.kind != "sdf" else "",
                                  error=f"duplicate ID {raw.name!r} (first at {first}); skipped")
            yield _Unit(chunk, outcomes=[dup], last=ends_chunk)
            continue
        if current is None:
            current = _Unit(chunk)
        current.records.append(raw)
        if ends_chunk:
            current.last = True
            yield current
            current = None
    if current is not None:
        yield current
    stats["chunks"] = -(-position // chunk_size)


def _exit_reason(code: int) -> str:
    """``killed by SIGKILL, out of memory?`` / ``exit code 3``."""
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"killed by {name}" + (", out of memory?" if -code == signal.SIGKILL else "")
    return f"exit code {code}"


def _drive(units: Iterator[_Unit], pool: Any, sink: FileSink | FolderSink, progress: Progress,
           stats: dict[str, Any], *, max_in_flight: int, verbose: bool) -> None:
    """Submit units with a bounded number in flight; write each chunk as soon as all its units are back."""
    pending: deque[_Unit] = deque()
    chunk_index: int | None = None
    chunk_outcomes: list[MoleculeOutcome] = []
    workers = list(getattr(pool, "_pool", []))  # the processes; a dead one would never send its unit back

    def result(unit: _Unit) -> list[MoleculeOutcome]:
        while True:
            try:
                return unit.future.get(timeout=_WORKER_CHECK_S)
            except mp.TimeoutError:
                codes = [w.exitcode for w in workers if w.exitcode is not None]
                if codes:
                    raise _WorkerDied(
                        f"a worker process died ({_exit_reason(codes[0])}) during chunk {unit.chunk}; the chunks "
                        "finished so far are kept, rerun the same command to resume (with fewer --threads, a "
                        "smaller --batch-atoms or --max-heavy-atoms if memory ran out)"
                    ) from None

    def collect(unit: _Unit) -> None:
        nonlocal chunk_index, chunk_outcomes
        outcomes = unit.outcomes if unit.outcomes is not None else result(unit)
        if chunk_index is not None and unit.chunk != chunk_index:
            sink.write_chunk(chunk_index, chunk_outcomes)
            chunk_outcomes = []
        chunk_index = unit.chunk
        chunk_outcomes.extend(outcomes)
        for o in outcomes:
            for k, v in o.drops.items():
                stats["drops"][k] = stats["drops"].get(k, 0) + v
            if not o.ok:
                progress.write(f"FAILED {o.source} ({o.name}): {o.error}")
            elif verbose:
                note = f"; {o.note}" if o.note else ""
                progress.write(f"ok {o.source} ({o.name}): {o.n_conformers} conformers{note}")
        progress.update(sum(o.ok for o in outcomes), sum(not o.ok for o in outcomes),
                        sum(o.n_conformers for o in outcomes))
        if unit.last:
            sink.write_chunk(unit.chunk, chunk_outcomes)
            chunk_index, chunk_outcomes = None, []

    for unit in units:
        if unit.outcomes is None:
            if pool is not None:
                unit.future = pool.apply_async(_work, (unit.records,))
            else:
                unit.outcomes = _work(unit.records)
            unit.records = []
        pending.append(unit)
        while len(pending) > max_in_flight or (pending and pending[0].outcomes is not None and pool is None):
            collect(pending.popleft())
    while pending:
        collect(pending.popleft())
    if chunk_index is not None:
        sink.write_chunk(chunk_index, chunk_outcomes)
