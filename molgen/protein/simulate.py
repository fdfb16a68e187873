"""Reference molecular dynamics with OpenMM: Langevin MD in implicit solvent, resumable, in segments.

The trajectories that protein models learn from and are judged against are made here, reproducibly:

* system: amber14 (``amber14-all.xml``) with OBC2 implicit solvent (``implicit/obc2.xml``) from a PDB, or
  the force field of an Amber ``prmtop`` with OBC2 (``implicitSolvent=OBC2``); hydrogen bonds constrained,
  no cutoff (``NoCutoff``, the usual choice for small implicit-solvent systems);
* dynamics: ``LangevinMiddleIntegrator`` at ``temperature_k`` (K) with ``friction_per_ps`` (1/ps) and a
  ``timestep_fs`` (fs) step, after an energy minimisation and ``equilibration_ps`` (ps) of unrecorded MD;
* output: the run folder holds ``settings.json``, ``topology.pdb`` (the starting structure, hydrogens
  as in the input) and ``segments/seg_<k>.xtc``: segment ``k`` holds the frames of
  ``[k, k + 1) * segment_ns`` (ns), one every ``frame_ps`` (ps); after each segment the state (positions,
  velocities, box; OpenMM XML, portable across platforms) and ``progress.json`` are saved.

Resuming: :func:`run_md` on an existing folder checks that the settings match, loads the last saved state
and continues with the next segment. A segment is written under a temporary name and renamed only when it
is complete and its end state is saved, so a killed run loses at most the segment in progress, and
nothing already written is ever overwritten with something shorter.

OpenMM is an optional dependency (``pip install molgen[md]``).
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from molgen.atomic import atomic_path, open_atomic
from molgen.errors import InputError

__all__ = ["MDProgress", "MDSettings", "load_progress", "run_md", "segment_paths", "trajectory_of"]

SETTINGS_FILE = "settings.json"
PROGRESS_FILE = "progress.json"
STATE_FILE = "state.xml"
TOPOLOGY_FILE = "topology.pdb"
SEGMENT_DIR = "segments"


@dataclass(frozen=True)
class MDSettings:
    """One MD run (every field is stored in ``settings.json`` and must match on resume).

    Attributes:
        structure: path of the starting PDB (amber14 + OBC2), or of the Amber coordinates/PDB that goes
            with ``prmtop``.
        prmtop: Amber topology (its own force field, with OBC2), or None to parametrise the PDB with amber14.
        total_ns: length of the recorded trajectory (ns).
        seed: seed of the initial velocities and of the Langevin noise (nonzero; replicas differ by seed).
        temperature_k: bath temperature (K).
        friction_per_ps: Langevin friction (1/ps).
        timestep_fs: integration step (fs).
        frame_ps: interval between recorded frames (ps).
        segment_ns: length of one XTC segment and checkpoint interval (ns).
        equilibration_ps: unrecorded MD after minimisation (ps).
    """

    structure: str
    prmtop: str | None = None
    total_ns: float = 20.0
    seed: int = 1
    temperature_k: float = 300.0
    friction_per_ps: float = 1.0
    timestep_fs: float = 2.0
    frame_ps: float = 1.0
    segment_ns: float = 1.0
    equilibration_ps: float = 100.0
    forcefield: tuple[str, ...] = field(default=("amber14-all.xml", "implicit/obc2.xml"))

    def __post_init__(self) -> None:
        for name in ("total_ns", "temperature_k", "friction_per_ps", "timestep_fs", "frame_ps", "segment_ns"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise InputError(f"MD setting {name}={value!r}: must be a positive number")
        if self.equilibration_ps < 0:
            raise InputError(f"MD setting equilibration_ps={self.equilibration_ps!r}: must be >= 0")
        if int(self.seed) == 0:
            raise InputError("MD setting seed=0: OpenMM treats seed 0 as 'pick a random seed'; use a nonzero seed")
        if self.steps_per_frame < 1 or abs(self.steps_per_frame * self.timestep_fs - self.frame_ps * 1000) > 1e-6:
            raise InputError(f"frame_ps={self.frame_ps} is not a whole number of {self.timestep_fs} fs steps")
        if self.frames_per_segment < 1 or abs(self.frames_per_segment * self.frame_ps - self.segment_ns * 1000) > 1e-6:
            raise InputError(f"segment_ns={self.segment_ns} is not a whole number of {self.frame_ps} ps frames")

    @property
    def steps_per_frame(self) -> int:
        """Integration steps between recorded frames."""
        return int(round(self.frame_ps * 1000.0 / self.timestep_fs))

    @property
    def frames_per_segment(self) -> int:
        """Frames in one XTC segment."""
        return int(round(self.segment_ns * 1000.0 / self.frame_ps))

    @property
    def num_segments(self) -> int:
        """Segments of the whole run (the last one may run past ``total_ns`` to complete it)."""
        return int(math.ceil(self.total_ns / self.segment_ns - 1e-9))

    def record(self) -> dict[str, Any]:
        """JSON-able form; the input paths are stored resolved, with their sizes."""
        out = asdict(self)
        out["forcefield"] = list(self.forcefield) if self.prmtop is None else ["prmtop", "implicit OBC2"]
        return out

    def identity(self) -> dict[str, Any]:
        """The fields a resumed run must share with the stored one (everything but ``total_ns``)."""
        out = self.record()
        out.pop("total_ns")
        out["structure"] = Path(self.structure).name
        out["prmtop"] = Path(self.prmtop).name if self.prmtop else None
        return out


@dataclass
class MDProgress:
    """What a run folder holds: ``segments_done`` complete segments (``ns_done`` ns) and the speed."""

    segments_done: int = 0
    ns_done: float = 0.0
    wall_seconds: float = 0.0
    ns_per_day: float | None = None
    platform: str | None = None
    threads: int | None = None
    history: list[dict[str, Any]] = field(default_factory=list)


def load_progress(out: str | Path) -> MDProgress:
    """The progress stored in a run folder (an empty one when there is none)."""
    path = Path(out) / PROGRESS_FILE
    if not path.is_file():
        return MDProgress()
    return MDProgress(**json.loads(path.read_text()))


def segment_paths(out: str | Path) -> list[Path]:
    """The complete XTC segments of a run folder, in time order."""
    n = load_progress(out).segments_done
    return [Path(out) / SEGMENT_DIR / f"seg_{k:05d}.xtc" for k in range(n)]


def trajectory_of(out: str | Path, stride: int = 1) -> Any:
    """The recorded frames of a run folder as one ``mdtraj.Trajectory`` (every ``stride``-th frame)."""
    import mdtraj as md

    paths = segment_paths(out)
    if not paths:
        raise InputError(f"MD run folder {out}: no complete segment yet")
    return md.load([str(p) for p in paths], top=str(Path(out) / TOPOLOGY_FILE), stride=stride)


def export_run(out: str | Path, dest: str | Path, *, stride: int = 1) -> dict[str, Any]:
    """Copy a run's recorded frames into ``dest``: ``trajectory.xtc`` (segments joined, every ``stride``-th frame),
    ``topology.pdb``, ``settings.json`` and ``progress.json`` (written under temporary names, then renamed).

    Returns the facts of the export (frames, ns, frame spacing in ps).
    """
    import shutil

    out, dest = Path(out), Path(dest)
    traj = trajectory_of(out, stride=stride)
    with atomic_path(dest / "trajectory.xtc", suffix=".xtc") as tmp:
        traj.save_xtc(str(tmp))
    for name in (TOPOLOGY_FILE, SETTINGS_FILE, PROGRESS_FILE):
        with atomic_path(dest / name) as tmp:
            shutil.copyfile(out / name, tmp)
    settings = json.loads((out / SETTINGS_FILE).read_text())
    return {"frames": int(traj.n_frames), "ns": load_progress(out).ns_done,
            "frame_ps": float(settings["frame_ps"]) * stride}


def _system(settings: MDSettings) -> tuple[Any, Any, Any]:
    """``(topology, positions, system)`` of the settings' input."""
    from openmm import app

    structure = Path(settings.structure)
    if not structure.is_file():
        raise InputError(f"MD input {structure}: file not found")
    if settings.prmtop is not None:
        prmtop_path = Path(settings.prmtop)
        if not prmtop_path.is_file():
            raise InputError(f"MD topology {prmtop_path}: file not found")
        prmtop = app.AmberPrmtopFile(str(prmtop_path))
        coords = app.PDBFile(str(structure)) if structure.suffix.lower() == ".pdb" else app.AmberInpcrdFile(str(structure))
        system = prmtop.createSystem(nonbondedMethod=app.NoCutoff, constraints=app.HBonds, implicitSolvent=app.OBC2)
        if prmtop.topology.getNumAtoms() != len(coords.positions):
            raise InputError(f"MD input {structure}: {len(coords.positions)} atoms, but {prmtop_path} has "
                             f"{prmtop.topology.getNumAtoms()}")
        return prmtop.topology, coords.positions, system
    try:
        pdb = app.PDBFile(str(structure))
    except Exception as exc:  # noqa: BLE001 - OpenMM's parser raises many types
        raise InputError(f"MD input {structure}: not a readable PDB ({exc})") from None
    forcefield = app.ForceField(*settings.forcefield)
    try:
        system = forcefield.createSystem(pdb.topology, nonbondedMethod=app.NoCutoff, constraints=app.HBonds)
    except ValueError as exc:
        raise InputError(f"MD input {structure}: {' + '.join(settings.forcefield)} cannot parametrise it ({exc}); "
                         "add missing hydrogens and terminal caps (e.g. with pdbfixer) or pass an Amber prmtop") from None
    return pdb.topology, pdb.positions, system


def _platform(threads: int | None) -> tuple[Any, dict[str, str]]:
    from openmm import Platform

    names = [Platform.getPlatform(i).getName() for i in range(Platform.getNumPlatforms())]
    for name in ("CUDA", "OpenCL"):
        if name in names and os.environ.get("MOLGEN_MD_PLATFORM", name) == name:
            return Platform.getPlatformByName(name), {}
    props = {"Threads": str(threads)} if threads else {}
    return Platform.getPlatformByName("CPU"), props


def run_md(
    settings: MDSettings,
    out: str | Path,
    *,
    threads: int | None = None,
    max_minutes: float | None = None,
    log: Callable[[str], None] = print,
) -> MDProgress:
    """Run (or resume) the MD of ``settings`` in folder ``out`` until ``total_ns`` or ``max_minutes``.

    Returns the progress after the last complete segment. Raises :class:`~molgen.errors.InputError` when
    ``out`` holds a run with other settings, or for unreadable inputs.
    """
    import openmm
    from openmm import app, unit

    for label, path in (("input", settings.structure), ("topology", settings.prmtop)):
        if path is not None and not Path(path).is_file():
            raise InputError(f"MD {label} {path}: file not found")
    out = Path(out)
    (out / SEGMENT_DIR).mkdir(parents=True, exist_ok=True)
    settings_path = out / SETTINGS_FILE
    if settings_path.is_file():
        stored = json.loads(settings_path.read_text())
        stored_settings = MDSettings(**{**stored, "forcefield": tuple(settings.forcefield)})
        if stored_settings.identity() != settings.identity():
            raise InputError(f"MD run folder {out} holds a run with other settings ({settings_path}); "
                             "use a new --out or the same settings")
    with open_atomic(settings_path) as fh:
        fh.write(json.dumps(settings.record(), indent=1))
    progress = load_progress(out)
    if progress.segments_done >= settings.num_segments:
        log(f"{out}: complete ({progress.ns_done:g} ns)")
        return progress

    topology, positions, system = _system(settings)
    integrator = openmm.LangevinMiddleIntegrator(settings.temperature_k * unit.kelvin,
                                                 settings.friction_per_ps / unit.picosecond,
                                                 settings.timestep_fs * unit.femtoseconds)
    integrator.setRandomNumberSeed(int(settings.seed))
    platform, props = _platform(threads)
    simulation = app.Simulation(topology, system, integrator, platform, props)
    state_path = out / STATE_FILE
    if progress.segments_done > 0 and state_path.is_file():
        simulation.loadState(str(state_path))
        log(f"{out}: resuming after segment {progress.segments_done} ({progress.ns_done:g} ns)")
    else:
        progress = MDProgress()
        simulation.context.setPositions(positions)
        simulation.minimizeEnergy()
        simulation.context.setVelocitiesToTemperature(settings.temperature_k * unit.kelvin, int(settings.seed))
        simulation.step(int(round(settings.equilibration_ps * 1000.0 / settings.timestep_fs)))
        with open_atomic(out / TOPOLOGY_FILE) as fh:
            app.PDBFile.writeFile(topology, positions, fh, keepIds=True)
    progress.platform = platform.getName()
    progress.threads = threads
    started = time.perf_counter()
    deadline = None if max_minutes is None else started + 60.0 * max_minutes
    while progress.segments_done < settings.num_segments:
        k = progress.segments_done
        t0 = time.perf_counter()
        # the segment appears complete or not at all, then its end state; a crash in between redoes segment k
        with atomic_path(out / SEGMENT_DIR / f"seg_{k:05d}.xtc", suffix=".xtc") as part:
            simulation.reporters = [app.XTCReporter(str(part), settings.steps_per_frame)]
            simulation.step(settings.steps_per_frame * settings.frames_per_segment)
            simulation.reporters = []  # drops the reporter, which closes the file
        seconds = time.perf_counter() - t0
        with atomic_path(state_path) as tmp:
            simulation.saveState(str(tmp))
        progress.segments_done = k + 1
        progress.ns_done = round((k + 1) * settings.segment_ns, 9)
        progress.wall_seconds += seconds
        progress.ns_per_day = settings.segment_ns / seconds * 86400.0
        progress.history.append({"segment": k, "seconds": round(seconds, 2), "ns_per_day": round(progress.ns_per_day, 1),
                                 "date": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
        with open_atomic(out / PROGRESS_FILE) as fh:
            fh.write(json.dumps(asdict(progress), indent=1))
        log(f"{out}: segment {k + 1}/{settings.num_segments} done, {progress.ns_done:g} ns, "
            f"{progress.ns_per_day:.0f} ns/day")
        if deadline is not None and time.perf_counter() > deadline:
            log(f"{out}: time budget reached; rerun the same command to resume")
            break
    return progress
