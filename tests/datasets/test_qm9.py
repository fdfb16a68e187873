"""The QM9 dataset builder (molgen.datasets.qm9) on the shipped sample of real QM9 rows: no full build."""

from __future__ import annotations

import ast
import csv
import json
from pathlib import Path

import numpy as np
import pytest
from rdkit import Chem

from molgen.datasets import qm9, split
from molgen.errors import InputError

# The shipped sample (tests/data/qm9_sample.csv, see tests/data/QM9_LICENSE.md): 50 real QM9 rows copied
# from qm9pack, among them the first 24 molecules, zwitterions ([NH3+]CCC([O-])=O is id 271) and a
# strained bicycle (C1C2CCC1O2, id 650) whose charges need the graph-match route.
SAMPLE_CSV = Path(__file__).resolve().parents[1] / "data" / "qm9_sample.csv"
ZWITTERION_ID = 271
BICYCLE_ID = 650
ZWITTERION_IDS = {271, 282, 1670, 22439}


def _read_sample() -> tuple[list[str], list[list[str]]]:
    with open(SAMPLE_CSV, newline="") as fh:
        reader = csv.reader(fh)
        return next(reader), list(reader)


@pytest.fixture(scope="module")
def qm9_rows() -> tuple[list[str], list[list[str]]]:
    """Header and rows of the shipped sample CSV."""
    return _read_sample()


KEEP_IDS = {int(r[1]) for r in _read_sample()[1]}


def _write_csv(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)
    return path


@pytest.fixture
def small_csv(tmp_path: Path, qm9_rows) -> Path:
    header, rows = qm9_rows
    # out of Index order on purpose: the builder sorts by Index
    return _write_csv(tmp_path / "qm9_small.csv", header, rows[::-1])


def _block(smiles: str) -> str:
    return split.inchikey_block(Chem.MolToInchiKey(Chem.MolFromSmiles(smiles)))


def _expected_ids(qm9_rows) -> dict[str, list[int]]:
    """QM9 ids of each split under the EDM rule, in stored (permutation) order."""
    ids = sorted(int(r[1]) for r in qm9_rows[1])
    return {s: [ids[i] for i in pos] for s, pos in qm9.edm_split_indices(len(ids)).items()}


def _build(tmp_path: Path, csv_path: Path, **kwargs) -> Path:
    return qm9.build_qm9(tmp_path / "cache", sources=[csv_path], **kwargs)


def _all_splits(tmp_path: Path) -> dict[str, qm9.QM9Split]:
    return {s: qm9.load_qm9_split(s, tmp_path / "cache") for s in split.SPLITS}


# ------------------------------------------------------------------------------------- the shipped sample
def test_shipped_sample_is_a_small_qm9_table(qm9_rows):
    header, rows = qm9_rows
    assert SAMPLE_CSV.stat().st_size < 150_000
    assert (SAMPLE_CSV.parent / "QM9_LICENSE.md").is_file()
    assert set(qm9.REQUIRED_COLUMNS) <= set(header) and header[:2] == ["XYZ_file", "Index"]
    ids = [int(r[1]) for r in rows]
    assert ids == sorted(ids) and len(set(ids)) == len(ids) == 50
    assert set(range(1, 25)) | {ZWITTERION_ID, BICYCLE_ID} <= set(ids)
    assert all(len(r) == len(header) for r in rows)
    assert all(r[0] == f"dsgdb9nsd_{int(r[1]):06d}.xyz" for r in rows)
    # every element of QM9, all of them kept by the builder (nothing held out)
    elements = {e.strip("'") for r in rows for e in r[6].strip("[]").split(",")}
    assert elements == {"H", "C", "N", "O", "F"}
    assert not any(split.is_heldout(_block(r[2])) for r in rows)


def test_shipped_sample_rows_are_the_package_rows():
    """Byte-for-byte copies of qm9pack's lines (needs the package, not installed in CI)."""
    try:
        sources = qm9.default_sources()
    except InputError:
        # qm9pack cannot be imported here (it needs pkg_resources), so importorskip would always skip:
        # the builder locates its data files without importing it, and so do the tests.
        pytest.skip("qm9pack (the QM9 source data) is not installed")
    with open(SAMPLE_CSV, "rb") as fh:
        header, *lines = fh.read().splitlines(keepends=True)
    wanted = {int(line.split(b",", 2)[1]): line for line in lines}
    found: dict[int, bytes] = {}
    last = max(wanted)
    for path in sources:
        with open(path, "rb") as fh:
            assert fh.readline() == header, path
            for line in fh:
                i = int(line.split(b",", 2)[1])
                if i in wanted:
                    found[i] = line
                if len(found) == len(wanted) or i > last:
                    break
        if len(found) == len(wanted):
            break
    assert found == wanted


# ---------------------------------------------------------------------------------------- split rule
def test_edm_split_rule_sizes_deterministic_and_disjoint():
    assert qm9.edm_split_sizes(130_831) == {"train": 100_000, "val": 17_748, "test": 13_083}
    a, b = qm9.edm_split_indices(130_831), qm9.edm_split_indices(130_831)
    for s in split.SPLITS:
        np.testing.assert_array_equal(a[s], b[s])
        assert len(a[s]) == qm9.edm_split_sizes(130_831)[s]
    allpos = np.concatenate([a[s] for s in split.SPLITS])
    assert len(np.unique(allpos)) == 130_831 and allpos.min() == 0 and allpos.max() == 130_830
    # literally EDM's/Cormorant's code: np.random.seed(0); np.random.permutation(Nmols); np.split
    state = np.random.get_state()
    try:
        np.random.seed(0)
        perm = np.random.permutation(130_831)
    finally:
        np.random.set_state(state)
    train, valid, test = np.split(perm, [100_000, 100_000 + 17_748])
    np.testing.assert_array_equal(a["train"], train)
    np.testing.assert_array_equal(a["val"], valid)
    np.testing.assert_array_equal(a["test"], test)


def test_small_split_sizes_cover_all_rows():
    for n in (0, 1, 10, 26, 1000):
        sizes = qm9.edm_split_sizes(n)
        assert sum(sizes.values()) == n and min(sizes.values()) >= 0


# ------------------------------------------------------------------------------------ build and load
def test_build_load_roundtrip(tmp_path, small_csv, qm9_rows):
    folder = _build(tmp_path, small_csv)
    assert folder == tmp_path / "cache" / "qm9"
    assert sorted(p.name for p in folder.iterdir()) == ["meta.json", "test.npz", "train.npz", "val.npz"]
    meta = json.loads((folder / "meta.json").read_text())
    assert meta["rows"] == len(KEEP_IDS) and sum(meta["counts"].values()) == len(KEEP_IDS)
    assert meta["assigned"] == qm9.edm_split_sizes(len(KEEP_IDS))
    assert meta["sources"][0]["sha256"] and meta["seed"] == 0

    splits = _all_splits(tmp_path)
    expected = _expected_ids(qm9_rows)
    for s, data in splits.items():
        assert data.index.tolist() == expected[s]  # EDM split and order
        assert len(data) == meta["counts"][s]
    ids = [set(d.index.tolist()) for d in splits.values()]
    assert not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2])

    by_id = {int(r[1]): r for r in qm9_rows[1]}
    for data in splits.values():
        for i in range(len(data)):
            mol = data.molecule(i)
            row = by_id[mol["index"]]
            xyz = np.array(ast.literal_eval(row[7]))
            np.testing.assert_allclose(mol["positions"], xyz, atol=1e-6)
            assert mol["positions"].dtype == np.float32 and mol["positions"].shape == (int(row[4]), 3)
            symbols = [s.strip("'") for s in row[6].strip("[]").split(",")]
            assert [Chem.GetPeriodicTable().GetElementSymbol(int(z)) for z in mol["atomic_numbers"]] == symbols
            assert mol["smiles"] == row[2]
            assert mol["canonical_smiles"] == Chem.MolToSmiles(Chem.MolFromSmiles(row[2]))
            assert mol["inchikey_block"] == _block(row[2])
            assert mol["num_heavy_atoms"] == sum(s != "H" for s in symbols)
            props = mol["properties"]
            assert props["gap"] == pytest.approx(float(row[17]) * qm9.HARTREE_TO_EV)  # Hartree -> eV
            assert props["homo"] == pytest.approx(float(row[15]) * qm9.HARTREE_TO_EV)
            assert props["alpha"] == pytest.approx(float(row[14]))  # Bohr^3
            assert props["mu"] == pytest.approx(float(row[13]))
            assert props["Cv"] == pytest.approx(float(row[-1]))
    methane = next(d.molecule(i) for d in splits.values() for i in range(len(d)) if d.index[i] == 1)
    assert methane["properties"]["gap"] == pytest.approx(13.736, abs=1e-3)


def test_second_call_returns_from_cache(tmp_path, small_csv, monkeypatch):
    folder = _build(tmp_path, small_csv)
    stamp = (folder / "meta.json").read_text()

    def boom(*args, **kwargs):
        raise AssertionError("rebuilt although the cache matches")

    monkeypatch.setattr(qm9, "_process_all", boom)
    assert _build(tmp_path, small_csv) == folder
    assert (folder / "meta.json").read_text() == stamp
    with pytest.raises(AssertionError, match="rebuilt"):
        _build(tmp_path, small_csv, force=True)
    # a different selection is a different cache
    with pytest.raises(AssertionError, match="rebuilt"):
        _build(tmp_path, small_csv, max_molecules=10)


def test_default_cache_dir_follows_molgen_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MOLGEN_CACHE", str(tmp_path / "c"))
    assert qm9.qm9_dir() == tmp_path / "c" / "qm9"
    assert qm9.qm9_dir(tmp_path / "x") == tmp_path / "x" / "qm9"


def test_max_molecules_takes_first_ids(tmp_path, small_csv):
    _build(tmp_path, small_csv, max_molecules=10)
    ids = sorted(i for d in _all_splits(tmp_path).values() for i in d.index.tolist())
    assert ids == list(range(1, 11))


# ---------------------------------------------------------------------------------------- held-out
def test_heldout_molecule_removed_from_every_split(tmp_path, small_csv, qm9_rows, monkeypatch):
    target = next(r for r in qm9_rows[1] if int(r[1]) == 7)  # ethane
    block = _block(target[2])
    assert not split.is_heldout(block)
    _build(tmp_path, small_csv)
    before = {s: d.index.tolist() for s, d in _all_splits(tmp_path).items()}
    home = next(s for s, ids in before.items() if 7 in ids)

    monkeypatch.setattr(split, "heldout_blocks", lambda path=None: frozenset({block, "AAAAAAAAAAAAAA"}))
    # the cache was built with another held-out list: loading it is refused, building rebuilds
    with pytest.raises(RuntimeError, match="held-out"):
        qm9.load_qm9_split(home, tmp_path / "cache")
    folder = _build(tmp_path, small_csv)
    meta = json.loads((folder / "meta.json").read_text())
    after = {s: d for s, d in _all_splits(tmp_path).items()}
    for s, d in after.items():
        assert block not in d.inchikey_block.tolist() and 7 not in d.index.tolist()
        # the other molecules keep their split and order: the filter runs after the split
        assert d.index.tolist() == [i for i in before[s] if i != 7]
        assert meta["heldout_removed"][s] == (1 if s == home else 0)
    assert meta["heldout_removed_by_check"][home] == {"smiles_block": 1}


def test_heldout_by_csv_inchi_column_too(tmp_path, qm9_rows, monkeypatch):
    header, rows = qm9_rows
    rows = [list(r) for r in rows]
    row = next(r for r in rows if int(r[1]) == 8)
    row[3] = "InChI=1S/C6H6/c1-2-4-6-5-3-1/h1-6H"  # benzene's InChI on another molecule's row
    monkeypatch.setattr(split, "heldout_blocks", lambda path=None: frozenset({"UHOVQNZJYSORNB"}))
    folder = _build(tmp_path, _write_csv(tmp_path / "inchi.csv", header, rows))
    meta = json.loads((folder / "meta.json").read_text())
    home = next(s for s, ids in _expected_ids(qm9_rows).items() if 8 in ids)
    assert meta["heldout_removed_by_check"][home] == {"inchi_column_block": 1}
    assert all(8 not in d.index.tolist() for d in _all_splits(tmp_path).values())


def test_worker_pool_gives_the_same_arrays(tmp_path, small_csv):
    one = qm9.build_qm9(tmp_path / "one", sources=[small_csv], workers=1)
    two = qm9.build_qm9(tmp_path / "two", sources=[small_csv], workers=2)
    assert one != two
    for s in split.SPLITS:
        with np.load(one / f"{s}.npz") as a, np.load(two / f"{s}.npz") as b:
            assert a.files == b.files
            for k in a.files:
                np.testing.assert_array_equal(a[k], b[k])


# ------------------------------------------------------------------------------ geometry and charges
def test_positions_in_angstrom_with_plausible_ch_bonds(tmp_path, small_csv):
    _build(tmp_path, small_csv)
    ch = []
    for data in _all_splits(tmp_path).values():
        for i in range(len(data)):
            mol = data.molecule(i)
            pos, z = mol["positions"].astype(np.float64), mol["atomic_numbers"]
            d = np.linalg.norm(pos[:, None] - pos[None], axis=-1)
            np.fill_diagonal(d, np.inf)
            for h in np.nonzero(z == 1)[0]:
                j = int(np.argmin(d[h]))
                if z[j] == 6:
                    ch.append(d[h, j])
    ch = np.array(ch)
    assert len(ch) > 40
    assert 1.08 < ch.mean() < 1.10 and ch.min() > 1.05 and ch.max() < 1.13


def test_formal_charges_aligned_with_xyz_order(tmp_path, small_csv):
    folder = _build(tmp_path, small_csv)
    meta = json.loads((folder / "meta.json").read_text())
    assert meta["charge_routes_total"].get("graph_match", 0) >= 1  # the bicycle
    mols = {d.index[i]: d.molecule(i) for d in _all_splits(tmp_path).values() for i in range(len(d))}
    zw = mols[ZWITTERION_ID]
    assert zw["charges_from_geometry"] and zw["formal_charges"].sum() == 0
    plus, minus = np.nonzero(zw["formal_charges"] == 1)[0], np.nonzero(zw["formal_charges"] == -1)[0]
    assert len(plus) == 1 and len(minus) == 1
    assert zw["atomic_numbers"][plus[0]] == 7 and zw["atomic_numbers"][minus[0]] == 8
    pos, z = zw["positions"], zw["atomic_numbers"]
    near_n = np.linalg.norm(pos - pos[plus[0]], axis=1)
    assert int(((near_n < 1.1) & (z == 1)).sum()) == 3  # NH3+
    assert mols[BICYCLE_ID]["charges_from_geometry"]
    assert all(m["charges_from_geometry"] for m in mols.values())
    for k, m in mols.items():
        # the charges are the SMILES' charges, now in XYZ order
        expected = sorted(a.GetFormalCharge() for a in Chem.AddHs(Chem.MolFromSmiles(m["smiles"])).GetAtoms())
        assert sorted(m["formal_charges"].tolist()) == expected, k
        assert m["formal_charges"].any() == (k in ZWITTERION_IDS) and m["formal_charges"].sum() == 0
    assert meta["molecules_with_formal_charges"] == {
        s: sum(int(i) in ZWITTERION_IDS for i in d.index) for s, d in _all_splits(tmp_path).items()
    }


def test_perceive_formal_charges_reports_disagreement():
    # methane's geometry against ethane's SMILES: different atoms, charges not trusted
    z = np.array([6, 1, 1, 1, 1], dtype=np.int8)
    pos = np.array([[0, 0, 0], [0.63, 0.63, 0.63], [-0.63, -0.63, 0.63], [-0.63, 0.63, -0.63], [0.63, -0.63, -0.63]])
    charges, route = qm9.perceive_formal_charges(z, pos, Chem.MolFromSmiles("CC"))
    assert charges is None and route == "formula_differs"
    charges, route = qm9.perceive_formal_charges(z, pos, Chem.MolFromSmiles("C"))
    assert route == "determine_bonds" and charges.tolist() == [0] * 5


def test_unparsable_smiles_is_dropped_and_counted(tmp_path, qm9_rows):
    header, rows = qm9_rows
    rows = [list(r) for r in rows]
    bad = next(r for r in rows if int(r[1]) == 12)
    bad[2] = "C1CC"  # unclosed ring
    folder = _build(tmp_path, _write_csv(tmp_path / "bad_smiles.csv", header, rows))
    meta = json.loads((folder / "meta.json").read_text())
    home = next(s for s, ids in _expected_ids(qm9_rows).items() if 12 in ids)
    assert meta["failures"][home] == {"smiles_unparsable": 1}
    assert sum(meta["counts"].values()) == len(KEEP_IDS) - 1


# ------------------------------------------------------------------------------- derived statistics
def test_atom_count_distribution_sums_to_one(tmp_path, small_csv):
    _build(tmp_path, small_csv)
    for s in split.SPLITS:
        dist = qm9.atom_count_distribution(s, tmp_path / "cache")
        assert sum(dist.values()) == pytest.approx(1.0)
        assert all(isinstance(k, int) and k > 0 for k in dist) and list(dist) == sorted(dist)
        data = qm9.load_qm9_split(s, tmp_path / "cache")
        assert qm9.atom_count_distribution(data) == dist
        for n, frac in dist.items():
            assert frac == pytest.approx(float(np.mean(data.num_atoms == n)))


def test_property_normalisation_from_train_only(tmp_path, small_csv):
    _build(tmp_path, small_csv)
    stats = qm9.property_normalisation(tmp_path / "cache")
    train = qm9.load_qm9_split("train", tmp_path / "cache")
    assert set(stats) == set(qm9.PROPERTIES)
    for name in qm9.PROPERTIES:
        v = train.properties[name]
        assert stats[name]["mean"] == pytest.approx(v.mean())
        assert stats[name]["mad"] == pytest.approx(np.abs(v - v.mean()).mean())


# -------------------------------------------------------------------------------------------- errors
def test_missing_csv_is_named(tmp_path):
    missing = tmp_path / "no_such_qm9.csv"
    with pytest.raises(InputError, match="no_such_qm9.csv"):
        qm9.build_qm9(tmp_path / "cache", sources=[missing])


@pytest.mark.parametrize("kind", ["header", "truncated", "coordinates", "empty"])
def test_corrupt_csv_is_named(tmp_path, qm9_rows, kind):
    header, rows = qm9_rows
    path = tmp_path / f"corrupt_{kind}.csv"
    if kind == "header":
        _write_csv(path, [h for h in header if h != "XYZ_Ang"], [r[:7] + r[8:] for r in rows])
    elif kind == "truncated":
        _write_csv(path, header, rows)
        text = path.read_text()
        path.write_text(text[: len(text) - 300])
    elif kind == "coordinates":
        rows = [list(r) for r in rows]
        rows[3][7] = "[[0.1,0.2],[0.3]]"
        _write_csv(path, header, rows)
    else:
        path.write_text("")
    with pytest.raises(InputError, match=f"corrupt_{kind}.csv"):
        qm9.build_qm9(tmp_path / "cache", sources=[path])


def test_unknown_split_and_unreadable_cache(tmp_path, small_csv):
    folder = _build(tmp_path, small_csv)
    with pytest.raises(InputError, match="unknown QM9 split"):
        qm9.load_qm9_split("validation", tmp_path / "cache")
    (folder / "val.npz").write_bytes(b"not a zip")
    with pytest.raises(InputError, match="val.npz"):
        qm9.load_qm9_split("val", tmp_path / "cache")


def test_cli_prints_summary(tmp_path, small_csv, capsys):
    qm9.main(["--cache", str(tmp_path / "cache"), "--source", str(small_csv)])
    out = json.loads(capsys.readouterr().out)
    assert out["cache"] == str(tmp_path / "cache" / "qm9")
    assert sum(out["counts"].values()) == len(KEEP_IDS)
    with pytest.raises(SystemExit):
        qm9.main(["--cache", str(tmp_path / "cache"), "--source", str(tmp_path / "missing.csv")])
    assert "missing.csv" in capsys.readouterr().err
