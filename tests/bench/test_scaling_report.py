"""The training-steps scaling report of issue 7: power-law fit, extrapolation and the table from bench JSON."""

import json

import numpy as np
import pytest

from molgen.bench.scaling_report import fit_power_law, load_points, main, steps_for


def test_power_law_fit_recovers_exact_law_and_extrapolates():
    steps = np.array([1e3, 4e3, 1.6e4])
    failure = 2.0 * steps**-0.5
    a, b = fit_power_law(steps, failure)
    assert a == pytest.approx(2.0, rel=1e-9) and b == pytest.approx(0.5, rel=1e-9)
    # failure 0.01 when 2 * s^-0.5 = 0.01, i.e. s = 200^2
    assert steps_for(0.99, (a, b)) == pytest.approx(40000.0, rel=1e-9)


def test_power_law_needs_two_positive_points_and_a_falling_trend():
    assert fit_power_law(np.array([1e3, 2e3]), np.array([0.0, 0.1])) is None
    assert steps_for(0.9, (0.5, -0.1)) is None
    assert steps_for(0.9, None) is None


def _report(atom: float, mol: float, valid: float) -> dict:
    gen = {"method": "ddim", "steps": 100, "n_samples": 10, "atom_stability": atom, "mol_stability": mol,
           "validity": valid, "valid_and_connected": valid, "uniqueness": 1.0}
    data = {"n_samples": 20, "atom_stability": 0.99, "mol_stability": 0.95, "validity": 0.95,
            "valid_and_connected": 0.95, "uniqueness": 1.0}
    return {"date": "2026-12-03", "machine": "test", "command": "x", "rows": [data, gen]}


def test_report_reads_bench_json_sorted_by_steps_and_writes_table_and_plot(tmp_path):
    for steps, atom in ((4000, 0.6), (1000, 0.2)):
        (tmp_path / f"steps_{steps}").mkdir()
        (tmp_path / f"steps_{steps}" / "molecules.json").write_text(json.dumps(_report(atom, 0.01, 0.1)))
    points = load_points(tmp_path)
    assert [p["steps"] for p in points] == [1000, 4000]
    text = main([str(tmp_path), "--seconds-per-step", "0.5", "--runs", str(tmp_path)])
    assert "| 1,000 | 10 | 20.0 |" in text and "| 4,000 | 10 | 60.0 |" in text
    assert (tmp_path / "scaling.md").read_text().endswith(text.split("\n\n", 1)[1])
    assert (tmp_path / "scaling.png").stat().st_size > 0


def test_report_without_runs_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="steps_"):
        load_points(tmp_path)
