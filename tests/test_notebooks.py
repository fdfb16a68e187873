"""Every notebook in notebooks/ runs top to bottom with the shipped model, on a small input.

The notebooks read ``MOLGEN_NOTEBOOK_N_MOLECULES``, ``MOLGEN_NOTEBOOK_N_CONFS`` and ``MOLGEN_NOTEBOOK_OUT``
in their ``parameters`` cell; here they run on 4 molecules with 3 conformers each and write into a
temporary folder (about 10-15 s per notebook on 2 cores).
"""

import sys
from pathlib import Path

import nbformat
import pandas as pd
import pytest
from nbclient import NotebookClient
from rdkit import Chem

NOTEBOOK_DIR = Path(__file__).resolve().parents[1] / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
N_MOLECULES, N_CONFS = 4, 3

SCREENING_COLUMNS = [
    "name", "smiles", "status", "n_conformers", "lowest_energy", "n_dropped", "drop_reasons",
    "strain", "npr1", "npr2", "npr_sum", "shape", "error",
]


def _cells_tagged(nb, tag):
    return [cell for cell in nb.cells if tag in cell.metadata.get("tags", [])]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_executes(path, tmp_path, monkeypatch):
    monkeypatch.setenv("MOLGEN_NOTEBOOK_N_MOLECULES", str(N_MOLECULES))
    monkeypatch.setenv("MOLGEN_NOTEBOOK_N_CONFS", str(N_CONFS))
    monkeypatch.setenv("MOLGEN_NOTEBOOK_OUT", str(tmp_path / "out"))
    nb = nbformat.read(path, as_version=4)
    # raises CellExecutionError (with the cell and traceback) if any cell fails
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors

    if path.name == "screening.ipynb":
        out = tmp_path / "out"
        table = pd.read_csv(out / "screening_results.csv", keep_default_na=False)
        assert list(table.columns) == SCREENING_COLUMNS
        assert len(table) == N_MOLECULES
        assert table.name.str.startswith("moses_screen_").all()
        ok = table[table.status == "ok"]
        assert len(ok) >= N_MOLECULES - 1  # drug-like molecules: at most one failure tolerated
        assert ok.n_conformers.between(1, N_CONFS).all()
        assert ok["shape"].isin(["rod", "disc", "sphere"]).all()
        npr1, npr2 = ok.npr1.astype(float), ok.npr2.astype(float)
        assert ((npr1 >= 0) & (npr1 <= npr2 + 1e-6) & (npr2 <= 1 + 1e-6) & (npr1 + npr2 >= 1 - 1e-3)).all()
        assert (ok.strain.astype(float) >= 0).all()

        sdf = out / "screening_selected.sdf"
        assert sdf.exists()
        mols = [m for m in Chem.SDMolSupplier(str(sdf), removeHs=False)]
        assert mols and all(m is not None for m in mols)
        assert all(m.GetNumConformers() == 1 and m.GetConformer().Is3D() for m in mols)
        assert all(m.HasProp("energy") for m in mols)
        assert {m.GetProp("_Name") for m in mols} <= set(ok.name)


def test_screening_notebook_is_stored_clean():
    nb = nbformat.read(NOTEBOOK_DIR / "screening.ipynb", as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(not c.outputs and c.execution_count is None for c in code), "clear the outputs before committing"
    params = _cells_tagged(nb, "parameters")
    assert params and params[0] is code[0]
    assert "MOLGEN_NOTEBOOK_N_MOLECULES" in params[0].source and "MOLGEN_NOTEBOOK_OUT" in params[0].source


def test_screening_viewer_without_py3dmol(monkeypatch, capsys):
    """The py3Dmol helper cell prints how to install py3Dmol instead of failing when it is missing."""
    nb = nbformat.read(NOTEBOOK_DIR / "screening.ipynb", as_version=4)
    (cell,) = _cells_tagged(nb, "py3dmol-helper")
    monkeypatch.setitem(sys.modules, "py3Dmol", None)  # makes `import py3Dmol` raise ImportError
    namespace = {"Chem": Chem}
    exec(compile(cell.source, "py3dmol-helper", "exec"), namespace)  # noqa: S102 (the notebook cell)
    mol = Chem.AddHs(Chem.MolFromSmiles("CCO"))
    assert namespace["show_conformers"](mol) is None
    assert "pip install py3Dmol" in capsys.readouterr().out
