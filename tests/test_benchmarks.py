"""The benchmark helpers (benchmarks/): distances, orders, the method-of-lines baseline, the dense
kernel, the brute-force kernel, and the README's headline table against the JSON results."""

import math
import re
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import ROOT

sys.path.insert(0, str(ROOT))

from benchmarks import accuracy, common, performance  # noqa: E402
from benchmarks.__main__ import headline_markdown  # noqa: E402
from benchmarks.common import fv_config  # noqa: E402
from meanfield_pde.activations import get_activation  # noqa: E402
from meanfield_pde.fv import lowrank, stepper1d  # noqa: E402
from meanfield_pde.fv.bundles import LowRank, Xi  # noqa: E402
from meanfield_pde.problems.gaussians import GaussiansProblem, radial_kernel, remap  # noqa: E402

EPS = np.finfo(float).eps


def test_readme_headline_is_the_generated_table():
    """README.md between <!-- headline --> and <!-- /headline --> is headline_markdown()."""
    text = (ROOT / "README.md").read_text()
    m = re.search(r"<!-- headline -->\n(.*?)<!-- /headline -->", text, re.S)
    if m is None:
        pytest.skip("README.md has no headline markers yet")
    assert m.group(1).strip() == headline_markdown().strip()


def test_headline_table_shape():
    lines = headline_markdown().strip().splitlines()
    assert lines[:2] == ["| benchmark | result |", "|---|---|"]
    assert all(line.startswith("| ") and line.endswith(" |") and line.count(" | ") == 1
               for line in lines[2:])


# ------------------------------------------------------------------------------ orders, W1, remap
def test_observed_orders_recover_a_power_law():
    h = [0.4, 0.2, 0.1, 0.05]
    p = common.observed_orders(h, [3.0 * x**1.5 for x in h])
    assert p == pytest.approx([1.5] * 3, abs=1e-12)
    assert common.observed_orders([0.2, 0.1], [1.0, 0.0]) == [None]
    assert common.loglog_slope(h, [2.0 * x**-1 for x in h]) == pytest.approx(-1.0, abs=1e-12)


def test_w1_of_a_shift_is_the_shift():
    """Uniform on [1, 2] against uniform on [1 + a, 2 + a]: W1 = a (also on different grids)."""
    e1 = np.linspace(0.0, 4.0, 41)
    e2 = np.linspace(0.0, 4.0, 97)
    for a in (0.25, 0.6):
        d1 = ((e1[:-1] >= 1.0 - 1e-12) & (e1[1:] <= 2.0 + 1e-12)).astype(float)
        d2 = accuracy.overlap_matrix(e1 + a, e2) @ d1  # exact cell averages of the shifted law
        assert accuracy.w1_cdf(e1, d1, e2, d2) == pytest.approx(a, rel=1e-12)
        assert accuracy.w1_cdf(e2, d2, e1, d1) == pytest.approx(a, rel=1e-12)


def test_w1_is_zero_for_the_same_function_on_a_refined_grid():
    rng = np.random.default_rng(0)
    coarse = np.linspace(0.0, 3.0, 31)
    fine = np.linspace(0.0, 3.0, 91)
    d = rng.random(30)
    # each CDF is a cumulative sum of up to n terms, integrated over an interval of length 3:
    # the difference is round-off of size (n_coarse + n_fine) eps x mass x length
    bound = (coarse.size + fine.size) * EPS * np.sum(d * np.diff(coarse)) * (coarse[-1] - coarse[0])
    assert accuracy.w1_cdf(coarse, d, fine, remap(coarse, d, fine)) <= bound


def test_overlap_matrix_is_the_package_remap_and_conserves_mass():
    rng = np.random.default_rng(1)
    src = np.sort(np.concatenate([[0.0, 5.0], rng.uniform(0, 5, 40)]))
    dst = np.linspace(0.0, 5.0, 17)
    d = rng.random(src.size - 1)
    out = accuracy.overlap_matrix(src, dst) @ d
    assert np.allclose(out, remap(src, d, dst), rtol=1e-13, atol=1e-15)
    assert np.sum(out * np.diff(dst)) == pytest.approx(np.sum(d * np.diff(src)), rel=1e-13)
    e = tuple(np.linspace(0, 1, n + 1) for n in (4, 6, 5))
    f = tuple(np.linspace(0, 1, 2 * n + 1) for n in (4, 6, 5))
    rho = rng.random((8, 12, 10))
    coarse = accuracy.remap3(rho, f, e)
    assert coarse.sum() * (1 / 120) == pytest.approx(rho.sum() / 960, rel=1e-13)
    # nested grids: a coarse cell average is the mean of its 2 × 2 × 2 fine cells
    assert coarse[1, 2, 3] == pytest.approx(rho[2:4, 4:6, 6:8].mean(), rel=1e-13)


# ------------------------------------------------------------------------------ method of lines
def test_centred_divergence_is_second_order():
    """(G_{i+1/2} − G_{i−1/2})/h with centred G = c ρ ∂ψ approximates ∂_r(c ρ ∂_r ψ) to O(h²):
    the error ratio under halving h tends to 4."""
    errs = []
    for n in (200, 400):
        h = 8.0 / n
        r = (np.arange(n) + 0.5) * h
        rho, psi = np.exp(-2 * (r - 4) ** 2), np.sin(r)
        exact = 1.5 * (-4 * (r - 4) * rho * np.cos(r) - rho * np.sin(r))
        errs.append(np.max(np.abs(performance.centred_divergence(rho, psi, h, 1.5) - exact)))
    assert 3.6 <= errs[0] / errs[1] <= 4.4


def _smooth_problem(n):
    return GaussiansProblem(fv_config("gaussians").with_overrides(
        [f"grid.n={n}", "grid.r_max=4", "init.kind='gaussian'", "init.mean=1.5",
         "init.std=0.3"]))


def test_mol_rhs_agrees_with_the_package_rhs_on_a_smooth_density():
    """Same ψ; the fluxes differ by O(h²) (reconstruction vs centred average) except at the
    density's maximum, where the limiter sets the slope to 0 and the difference of the
    divergences is O(h) on O(1) cells: max norm first order, L1 norm second order. The
    method-of-lines right-hand side also conserves mass to round-off."""
    mx, l1 = [], []
    for n in (400, 800):
        p = _smooth_problem(n)
        k, s = p.kernel, p.schedule
        rho = p.initial_state()
        out, psi, mom = np.empty(n), np.empty(n), np.empty(k.lam.size)
        stepper1d.rhs(rho, 0.0, p.h, LowRank.make(k.v, k.feats, k.lam), Xi.make(s.kind, s.params),
                      2.0, psi, mom, out)
        mol = performance.mol_rhs(rho, p.h, k.v, k.feats, k.lam, 2.0)
        assert abs(np.sum(mol)) * p.h <= 50 * n * EPS * np.max(np.abs(mol)) * p.h
        mx.append(np.max(np.abs(mol - out)) / np.max(np.abs(out)))
        l1.append(np.sum(np.abs(mol - out)) / np.sum(np.abs(out)))
    assert mx[1] < 0.05
    assert 1.8 <= mx[0] / mx[1] <= 2.2
    assert 3.6 <= l1[0] / l1[1] <= 4.4


def test_total_variation():
    assert performance.total_variation(np.array([0.0, 2.0, 1.0, 1.0, 3.0])) == 5.0


# ------------------------------------------------------------------------------ dense vs low-rank
def test_dense_potential_agrees_with_low_rank():
    """Both evaluate v_i + h Σ_j Σ_k λ_k f_k(r_i) f_k(r_j) ρ_j, in different orders: the
    difference is bounded by (n + K) eps times the sum of the absolute terms."""
    p = _smooth_problem(300)
    k = p.kernel
    rho = p.initial_state()
    psi, mom = np.empty(300), np.empty(k.lam.size)
    lowrank.potential(rho, p.h, k.v, k.feats, k.lam, psi, mom)
    u = performance.dense_kernel(k.feats, k.lam)
    # U_ij and U_ji are the same K products summed in other orders: (K + 1) eps x Σ|terms|
    absu = (np.abs(k.feats.T) * k.lam) @ np.abs(k.feats)
    assert np.all(np.abs(u - u.T) <= (k.lam.size + 1) * EPS * absu)
    dense = performance.dense_potential(u, k.v, rho, p.h)
    absolute = np.abs(k.v) + p.h * (
        (np.abs(k.feats.T) * k.lam) @ (np.abs(k.feats) @ rho))
    assert np.all(np.abs(dense - psi) <= 4 * (300 + k.lam.size) * EPS * absolute)


def test_bytes_per_cell_step_counts_the_feature_rows():
    assert performance.radial_bytes_per_cell_step(36) == 48 * 36 + 272


# ------------------------------------------------------------------------------ quadrature, kernel
def test_kink_aware_rule_matches_the_closed_form():
    """Gauss–Legendre on the pieces between the kinks is exact up to the polynomial degree of
    h_k φ on each piece: 64 nodes per piece reach round-off for k <= 20."""
    for name in ("relu", "ramp"):
        act = get_activation(name)
        for t in (0.5, 2.0):
            ref = act.hermite(t, 20)
            got = accuracy._alpha_kink_aware(act, t, 20, 64)
            assert np.max(np.abs(got - ref)) <= 1e-13 * np.max(np.abs(ref))


def test_pair_expectation_factorises_at_zero_correlation():
    """c = 0: X and Y independent, E[σ(aX)σ(bY)] = α_0(a) α_0(b) (closed forms)."""
    act = get_activation("ramp")
    a, b = 1.3, 0.7
    q = act.hermite(np.array([a, b]), 0)[0]
    assert accuracy.pair_expectation(a, b, 0.0, act.params) == pytest.approx(q[0] * q[1],
                                                                             rel=1e-13)


def test_brute_force_kernel_matches_the_series_at_d_40():
    """u_40 by quadrature over the angle against the converged Hermite series (tol 1e-14)."""
    act = get_activation("ramp")
    r = np.array([0.8, 2.0])
    k = radial_kernel(act, 0.8, 40, r, 1e-14, 4096)
    brute = accuracy.u_brute(0.8, 2.0, 40, 0.8, act.params, nodes=100)
    assert brute == pytest.approx(float(k.u(0, 1)), abs=1e-12 * math.fabs(brute))


# ------------------------------------------------------------------------- where a run writes
def _tree_hashes(*paths: Path) -> dict[str, str]:
    import hashlib

    out = {}
    for p in paths:
        for f in sorted(p.rglob("*")) if p.is_dir() else [p]:
            if f.is_file():
                out[str(f.relative_to(ROOT))] = hashlib.sha256(f.read_bytes()).hexdigest()
    return out


def test_a_quick_run_leaves_the_committed_results_alone(tmp_path, monkeypatch, capsys):
    """`python -m benchmarks --quick --only ...` (here a tiny suite made of the radial suite's
    grid-convergence code on small grids) writes its JSON, figure and RESULTS.md into the
    scratch folder: nothing under benchmarks/results/ nor benchmarks/RESULTS.md changes."""
    import benchmarks.__main__ as bm
    from benchmarks import radial

    class Tiny:
        @staticmethod
        def run(quick: bool = False) -> dict:
            assert quick
            return {"convergence": radial.convergence((64, 128, 256))}

        @staticmethod
        def render(data: dict) -> str:
            plt, path = common.figure("tiny")
            fig = plt.figure()
            plt.plot([r["n"] for r in data["convergence"]["rows"]], [1, 2, 3])
            fig.savefig(path)
            plt.close(fig)
            return "## tiny\n"

    committed = (ROOT / "benchmarks" / "results", ROOT / "benchmarks" / "RESULTS.md")
    before = _tree_hashes(*committed)
    assert before
    scratch = tmp_path / "scratch"
    monkeypatch.setattr(common, "SCRATCH", scratch)  # the default output folder
    monkeypatch.setattr(bm, "SUITES", {**bm.SUITES, "tiny": Tiny})
    try:
        bm.main(["--quick", "--only", "tiny"])
        bm.main(["--render"])  # re-rendering writes to the scratch folder too
    finally:
        common.set_output_root(common.HERE / "scratch")
    assert _tree_hashes(*committed) == before
    assert (scratch / "results" / "tiny.json").is_file()
    assert (scratch / "results" / "tiny.png").is_file()
    assert "## tiny" in (scratch / "RESULTS.md").read_text()
    assert str(scratch) in capsys.readouterr().out
