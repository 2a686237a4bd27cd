"""restore_core.ssm.discretize: ZOH / bilinear / Euler, orders of accuracy, recurrence == convolution.

References: scipy.linalg.expm and torch.linalg.matrix_exp for ZOH, hand-computed 1x1 cases for bilinear and
Euler, scipy.integrate.solve_ivp (rtol 1e-12) for the exact continuous responses. Tolerances: float64 1e-10
unless a line says otherwise.
"""
import math

import numpy as np
import pytest
import scipy.integrate
import scipy.linalg
import torch

from restore_core.ssm import discretize as dz

f64 = torch.float64


def dense_system(n=4, seed=0):
    """A stable dense A (eigenvalues with negative real part, some complex), B, C."""
    g = torch.Generator().manual_seed(seed)
    M = torch.randn(n, n, generator=g, dtype=f64)
    A = M - M.T - torch.eye(n, dtype=f64) * 0.7 + 0.2 * torch.randn(n, n, generator=g, dtype=f64)
    B = torch.randn(n, generator=g, dtype=f64)
    C = torch.randn(n, generator=g, dtype=f64)
    assert torch.linalg.eigvals(A).real.max() < 0
    return A, B, C


def diag_system():
    A = torch.tensor([-1.0, -0.25, -3.0, 0.0], dtype=f64)  # includes A = 0 (pure integrator)
    B = torch.tensor([1.0, 0.5, -2.0, 0.3], dtype=f64)
    C = torch.tensor([0.7, -1.0, 0.4, 1.5], dtype=f64)
    return A, B, C


# ------------------------------------------------------------------------------------------ ZOH
@pytest.mark.parametrize("delta", [1e-3, 0.1, 0.7, 2.5])
def test_zoh_dense_matches_scipy_expm(delta):
    A, B, _ = dense_system()
    dA, dB = dz.discretize_zoh(A, B, delta)
    Ea = scipy.linalg.expm(delta * A.numpy())
    np.testing.assert_allclose(dA.numpy(), Ea, rtol=0, atol=1e-12)
    # B̄ = A^{-1} (exp(ΔA) - I) B, A invertible here
    want_B = np.linalg.solve(A.numpy(), (Ea - np.eye(4)) @ B.numpy())
    np.testing.assert_allclose(dB.numpy(), want_B, rtol=0, atol=1e-11)


def test_zoh_dense_singular_A_is_integral_of_exp():
    """A singular (no inverse): B̄ = ∫_0^Δ exp(sA) ds B, checked with scipy quadrature."""
    A = torch.tensor([[0.0, 1.0], [0.0, 0.0]], dtype=f64)  # double integrator
    B = torch.tensor([0.0, 1.0], dtype=f64)
    dA, dB = dz.discretize_zoh(A, B, 0.5)
    np.testing.assert_allclose(dA.numpy(), [[1.0, 0.5], [0.0, 1.0]], atol=1e-14)
    np.testing.assert_allclose(dB.numpy(), [0.125, 0.5], atol=1e-14)  # (Δ²/2, Δ)
    A2, B2, _ = dense_system(3, seed=3)  # a generic A, against quadrature of the integral
    want = scipy.integrate.quad_vec(lambda s: scipy.linalg.expm(s * A2.numpy()) @ B2.numpy(), 0, 0.4,
                                    epsabs=1e-13)[0]
    np.testing.assert_allclose(dz.discretize_zoh(A2, B2, 0.4)[1].numpy(), want, atol=1e-11)


@pytest.mark.parametrize("delta", [1e-3, 0.1, 2.5])
def test_zoh_diagonal_matches_dense_matrix_exp(delta):
    A, B, _ = diag_system()
    dA, dB = dz.discretize_zoh(A, B, delta)
    dA_dense, dB_dense = dz.discretize_zoh(torch.diag(A), B, delta)
    torch.testing.assert_close(torch.diag(dA), dA_dense, rtol=0, atol=1e-12)
    torch.testing.assert_close(dA, torch.diagonal(torch.linalg.matrix_exp(delta * torch.diag(A))), rtol=0,
                               atol=1e-12)
    torch.testing.assert_close(dB, dB_dense, rtol=0, atol=1e-12)
    assert dB[3].item() == pytest.approx(delta * 0.3, abs=1e-15)  # limit ΔB at A = 0


def test_zoh_diagonal_limit_near_zero_is_smooth_and_differentiable():
    """(exp(ΔA) - 1)/A · B around A = 0: continuous across the series/expm1 switch, finite gradient."""
    a = torch.tensor([-1e-3, -1.0001e-4, -0.9999e-4, -1e-8, 0.0, 1e-8, 1e-3], dtype=f64, requires_grad=True)
    B = torch.ones(7, dtype=f64)
    _, dB = dz.discretize_zoh(a, B, 0.5)
    want = torch.tensor([0.5 * math.expm1(0.5 * x) / (0.5 * x) if x != 0 else 0.5 for x in a.tolist()],
                        dtype=f64)
    torch.testing.assert_close(dB.detach(), want, rtol=1e-15, atol=1e-15)
    (g,) = torch.autograd.grad(dB.sum(), a)
    # d/da [(e^{Δa} - 1)/a] at a = 0 is Δ²/2
    assert torch.isfinite(g).all()
    assert g[4].item() == pytest.approx(0.125, rel=1e-12)


def test_zoh_gradcheck_dense_and_diagonal():
    A, B, _ = dense_system(3)
    delta = torch.tensor(0.3, dtype=f64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b, d: dz.discretize_zoh(a, b, d),
                                    (A.requires_grad_(), B.requires_grad_(), delta))
    Ad, Bd, _ = diag_system()
    assert torch.autograd.gradcheck(lambda a, b, d: dz.discretize_zoh(a, b, d),
                                    (Ad.requires_grad_(), Bd.requires_grad_(), delta))


# --------------------------------------------------------------------------- bilinear and Euler
def test_bilinear_and_euler_scalar_by_hand():
    A, B, delta = torch.tensor([-2.0], dtype=f64), torch.tensor([3.0], dtype=f64), 0.5
    # bilinear: Ā = (1 + Δa/2)/(1 - Δa/2) = 0.5/1.5, B̄ = Δb/(1 - Δa/2) = 1.5/1.5
    dA, dB = dz.discretize_bilinear(A, B, delta)
    assert dA.item() == pytest.approx(1 / 3, abs=1e-15) and dB.item() == pytest.approx(1.0, abs=1e-15)
    # Euler: Ā = 1 + Δa = 0, B̄ = Δb = 1.5
    dA, dB = dz.discretize_euler(A, B, delta)
    assert dA.item() == pytest.approx(0.0, abs=1e-15) and dB.item() == pytest.approx(1.5, abs=1e-15)
    # ZOH: Ā = e^{-1}, B̄ = (e^{-1} - 1)/(-2) * 3
    dA, dB = dz.discretize_zoh(A, B, delta)
    assert dA.item() == pytest.approx(math.exp(-1), abs=1e-15)
    assert dB.item() == pytest.approx(1.5 * (1 - math.exp(-1)), abs=1e-15)
    # The same 1x1 system given dense gives the same numbers
    for m in dz.DISCRETIZATIONS:
        a1, b1 = dz.discretize(A, B, delta, m)
        a2, b2 = dz.discretize(A[:, None], B, delta, m)
        assert abs(a1.item() - a2.item()) < 1e-14 and abs(b1.item() - b2.item()) < 1e-14, m


def test_bilinear_dense_matches_formula():
    A, B, _ = dense_system()
    I = np.eye(4)
    Ph = np.linalg.inv(I - 0.15 * A.numpy())
    dA, dB = dz.discretize_bilinear(A, B, 0.3)
    np.testing.assert_allclose(dA.numpy(), Ph @ (I + 0.15 * A.numpy()), atol=1e-12)
    np.testing.assert_allclose(dB.numpy(), Ph @ (0.3 * B.numpy()), atol=1e-12)
    dA, dB = dz.discretize_euler(A, B, 0.3)
    np.testing.assert_allclose(dA.numpy(), I + 0.3 * A.numpy(), atol=1e-15)


def test_methods_agree_to_their_order_for_small_step():
    """All three are consistent: Ā = exp(ΔA) + O(Δ²) (Euler) / O(Δ³) (bilinear)."""
    A, B, _ = dense_system()
    for delta in (1e-2, 1e-3):
        zA, _ = dz.discretize_zoh(A, B, delta)
        eA, _ = dz.discretize_euler(A, B, delta)
        bA, _ = dz.discretize_bilinear(A, B, delta)
        scale = float(torch.linalg.matrix_norm(A, ord=2)) ** 2
        assert (zA - eA).abs().max() < scale * delta ** 2
        assert (zA - bA).abs().max() < scale ** 1.5 * delta ** 3
        assert (zA - bA).abs().max() > 1e-3 * delta ** 3  # not identical: the bound is meaningful


# -------------------------------------------------------------- exact responses and error orders
def _ode_reference(A, B, C, D, u_fn, t_eval):
    An, Bn = A.numpy() if A.dim() == 2 else np.diag(A.numpy()), B.numpy()
    sol = scipy.integrate.solve_ivp(lambda t, x: An @ x + Bn * u_fn(t), (0, float(t_eval.max())),
                                    np.zeros(len(Bn)), t_eval=t_eval.numpy(), rtol=1e-12, atol=1e-13,
                                    method="DOP853", max_step=0.05)
    return C.numpy() @ sol.y + D * np.array([u_fn(t) for t in t_eval.numpy()])


@pytest.mark.parametrize("system", ["dense", "diagonal"])
def test_step_response_matches_ode_solver(system):
    A, B, C = dense_system() if system == "dense" else diag_system()
    t = torch.linspace(0.05, 3.0, 13, dtype=f64)
    got = dz.step_response(A, B, C, 0.4, t)
    want = _ode_reference(A, B, C, 0.4, lambda s: 1.0, t)
    np.testing.assert_allclose(got.numpy(), want, atol=1e-9)


def test_piecewise_constant_response_matches_ode_solver():
    A, B, C = dense_system()
    levels = torch.tensor([1.0, -0.5, 2.0, 0.0, 0.7], dtype=f64)
    hold = 0.4
    t = torch.tensor([0.1, 0.4, 0.55, 0.83, 1.2, 1.61, 1.95, 2.6], dtype=f64)  # last: past the final level
    got = dz.piecewise_constant_response(A, B, C, 0.0, levels, hold, t)

    def u_fn(s):
        return float(levels[min(max(math.ceil(s / hold) - 1, 0), len(levels) - 1)])

    # integrate interval by interval so the solver never steps over a jump
    want, x = [], np.zeros(4)
    An, Bn = A.numpy(), B.numpy()
    edges = [j * hold for j in range(len(levels))] + [3.0]
    for j in range(len(levels)):
        a, b = edges[j], edges[j + 1]
        ts = [s for s in t.tolist() if a < s <= b]
        sol = scipy.integrate.solve_ivp(lambda s, y, lev=float(levels[j]): An @ y + Bn * lev, (a, b), x,
                                        t_eval=ts if ts and ts[-1] == b else ts + [b], rtol=1e-12, atol=1e-13, method="DOP853")
        want += list(C.numpy() @ sol.y[:, :len(ts)])
        x = sol.y[:, -1]
    np.testing.assert_allclose(got.numpy(), want, atol=1e-9)


@pytest.mark.parametrize("system", ["dense", "diagonal"])
def test_zoh_is_exact_for_piecewise_constant_input(system):
    A, B, C = dense_system() if system == "dense" else diag_system()
    delta = 0.25
    u = torch.randn(20, dtype=f64)
    dA, dB = dz.discretize_zoh(A, B, delta)
    y = dz.ssm_recurrence(dA, dB, C, u, D=0.0)
    t = (torch.arange(20, dtype=f64) + 1) * delta
    exact = dz.piecewise_constant_response(A, B, C, 0.0, u, delta, t)
    torch.testing.assert_close(y, exact, rtol=0, atol=1e-11)
    # ... and bilinear / Euler are not (their error is far above round-off)
    for m in ("bilinear", "euler"):
        a, b = dz.discretize(A, B, delta, m)
        assert (dz.ssm_recurrence(a, b, C, u) - exact).abs().max() > 1e-4, m


@pytest.mark.parametrize("system", ["dense", "diagonal"])
def test_error_orders_euler_1_bilinear_2_zoh_exact(system):
    A, B, C = dense_system() if system == "dense" else diag_system()
    deltas = torch.tensor([0.04, 0.02, 0.01, 0.005], dtype=f64)
    slopes, errs = {}, {}
    for m in dz.DISCRETIZATIONS:
        e = torch.tensor([dz.step_error(A, B, C, 0.3, float(d), 2.0, m) for d in deltas], dtype=f64)
        errs[m] = e
        if m != "zoh":
            slopes[m] = dz.convergence_order(deltas, e)
    assert slopes["euler"] == pytest.approx(1.0, abs=0.15)
    assert slopes["bilinear"] == pytest.approx(2.0, abs=0.15)
    assert errs["zoh"].max() < 1e-9  # round-off accumulated over 400 steps
    assert (errs["bilinear"] < errs["euler"]).all()


def test_convergence_order_of_exact_power_law():
    d = torch.tensor([0.1, 0.05, 0.01], dtype=f64)
    assert dz.convergence_order(d, 3 * d ** 1.5) == pytest.approx(1.5, abs=1e-12)


# -------------------------------------------------------------- recurrence == convolution kernel
@pytest.mark.parametrize("system", ["dense", "diagonal"])
@pytest.mark.parametrize("method", dz.DISCRETIZATIONS)
@pytest.mark.parametrize("L", [1, 7, 33])
def test_recurrence_equals_convolution(system, method, L):
    A, B, C = dense_system() if system == "dense" else diag_system()
    dA, dB = dz.discretize(A, B, 0.3, method)
    u = torch.randn(2, 3, L, dtype=f64)
    y_rec = dz.ssm_recurrence(dA, dB, C, u, D=0.8)
    for conv in ("fft", "direct"):
        y_conv = dz.ssm_convolution(dA, dB, C, u, D=0.8, method=conv)
        torch.testing.assert_close(y_conv, y_rec, rtol=0, atol=1e-10)


def test_kernel_is_impulse_response_and_matches_powers():
    A, B, C = dense_system()
    dA, dB = dz.discretize_zoh(A, B, 0.2)
    K = dz.ssm_kernel(dA, dB, C, 9)
    want = torch.stack([C @ torch.linalg.matrix_power(dA, k) @ dB for k in range(9)])
    torch.testing.assert_close(K, want, rtol=0, atol=1e-12)
    impulse = torch.zeros(9, dtype=f64)
    impulse[0] = 1.0
    torch.testing.assert_close(dz.ssm_recurrence(dA, dB, C, impulse), K, rtol=0, atol=1e-12)
    # diagonal (Vandermonde) kernel with a negative Ā (Euler with a large step) keeps the sign pattern
    Ad, Bd, Cd = diag_system()
    a, b = dz.discretize_euler(Ad, Bd, 0.5)  # Ā contains 1 - 1.5 = -0.5
    torch.testing.assert_close(dz.ssm_kernel(a, b, Cd, 6), dz.ssm_kernel(torch.diag(a), b, Cd, 6), rtol=0,
                               atol=1e-14)


def test_causal_conv_hand_case_and_kernel_padding():
    u = torch.tensor([1.0, 2.0, 3.0], dtype=f64)
    K = torch.tensor([1.0, 10.0], dtype=f64)  # shorter than L: zero-padded
    for m in ("fft", "direct"):
        torch.testing.assert_close(dz.causal_conv(u, K, D=0.5, method=m),
                                   torch.tensor([1.5, 13.0, 24.5], dtype=f64), rtol=0, atol=1e-12)


def test_recurrence_gradcheck():
    A, B, C = dense_system(3)
    u = torch.randn(5, dtype=f64, requires_grad=True)
    args = [t.clone().requires_grad_() for t in (A, B, C)]

    def f(a, b, c, x):
        dA, dB = dz.discretize_bilinear(a, b, 0.4)
        return dz.ssm_recurrence(dA, dB, c, x, D=0.2), dz.ssm_convolution(dA, dB, c, x, D=0.2)

    assert torch.autograd.gradcheck(f, (*args, u))


# ------------------------------------------------------------------------------------- errors
def test_bad_arguments_name_the_problem():
    A, B, C = diag_system()
    with pytest.raises(ValueError, match="unknown discretization method 'rk4'"):
        dz.discretize(A, B, 0.1, "rk4")
    with pytest.raises(ValueError, match=r"A must be a square \(N, N\)"):
        dz.discretize_zoh(torch.zeros(3, 4, dtype=f64), B, 0.1)
    with pytest.raises(ValueError, match=r"B must be \(N=4,\)"):
        dz.discretize_bilinear(A, B[:3], 0.1)
    with pytest.raises(ValueError, match=r"C must be \(N=4,\)"):
        dz.ssm_recurrence(A, B, C[:2], torch.zeros(3, dtype=f64))
    with pytest.raises(ValueError, match="delta .* must be positive"):
        dz.discretize_euler(A, B, 0.0)
    with pytest.raises(ValueError, match="L \\(kernel length\\) must be >= 1"):
        dz.ssm_kernel(A, B, C, 0)
    with pytest.raises(ValueError, match="unknown convolution method 'fir'"):
        dz.causal_conv(torch.zeros(3, dtype=f64), torch.zeros(3, dtype=f64), method="fir")
    with pytest.raises(ValueError, match="must be a positive multiple of delta"):
        dz.step_error(A, B, C, 0.0, 0.3, 1.0, "zoh")


def test_euler_max_step_is_the_stability_edge():
    omega, zeta = 2.0, 0.3
    A = torch.tensor([[0.0, 1.0], [-omega ** 2, -2 * zeta * omega]], dtype=torch.float64)
    B = torch.tensor([0.0, omega ** 2], dtype=torch.float64)
    limit = dz.euler_max_step(A)
    assert abs(limit - 2 * zeta / omega) < 1e-12
    assert dz.spectral_radius(dz.discretize_euler(A, B, 0.999 * limit)[0]) < 1
    assert dz.spectral_radius(dz.discretize_euler(A, B, 1.001 * limit)[0]) > 1
    a = -torch.tensor([1.0, 16.0], dtype=torch.float64)  # diagonal: Δ < 2/|a|
    assert abs(dz.euler_max_step(a) - 2 / 16) < 1e-12
    assert abs(dz.spectral_radius(a) - 16) < 1e-12
    with pytest.raises(ValueError):
        dz.euler_max_step(torch.tensor([1.0, -1.0]))
