"""Continuous state-space models, their discretisation, and the recurrence <-> convolution equivalence.

Gu, Goel & Ré, "Efficiently Modeling Long Sequences with Structured State Spaces" (S4), arXiv:2111.00396,
eqs. (1)-(5); Gu & Dao, "Mamba: Linear-Time Sequence Modeling with Selective State Spaces",
arXiv:2312.00752, eq. (4) and Section 3.5 (ZOH for A, Euler for B in the selective scan).
Explained in the book chapter "SSM discretization" (book/01_ssm_discretization.ipynb).

The continuous linear time-invariant (LTI) single-input single-output SSM (state h, as in book/notation.md)::

    h'(t) = A h(t) + B u(t),     y(t) = C h(t) + D u(t)

    A: (N, N) dense, or (N,) for a diagonal A (as in S4D and Mamba)
    B: (N,)   C: (N,)   D: scalar (float or 0-d tensor)

Discretised with step Δ into ``h_k = Ā h_{k-1} + B̄ u_k``, ``y_k = C h_k + D u_k`` (h_{-1} = 0):

* ZOH (zero-order hold, exact when u is constant on each step): Ā = exp(ΔA), B̄ = (ΔA)^{-1}(exp(ΔA) - I) ΔB,
  computed without inverting A (block matrix exponential; for diagonal A the closed form with its limit ΔB
  at A -> 0).
* bilinear (Tustin, S4's choice): Ā = (I - Δ/2 A)^{-1}(I + Δ/2 A), B̄ = (I - Δ/2 A)^{-1} ΔB.
* Euler (forward): Ā = I + ΔA, B̄ = ΔB.

Sample convention (used by the exact-response helpers): step k covers the interval (kΔ, (k+1)Δ], the input
sample u_k is the value held there, and h_k approximates h((k+1)Δ). With this convention ZOH is exact for
piecewise-constant input, bilinear is second-order and Euler first-order accurate.

Unrolling the recurrence gives the convolution y = K̄ * u + D u with K̄ = (C B̄, C Ā B̄, ..., C Ā^{L-1} B̄)
(S4 eq. (4)-(5)). The selective (time-varying) variant discretises per step, with input-dependent Δ_t, B_t,
C_t: Ā_t = exp(Δ_t A), B̄_t = Δ_t B_t; :func:`selective_discretize` and :func:`time_varying_recurrence`
spell that out and equal :func:`restore_core.ssm.selective_scan`.

Differences from the official code: S4 computes K̄ for a diagonal-plus-low-rank A with a Cauchy kernel, S4D
and Mamba use (complex or real) diagonal A and, where K̄ is needed (S4D), a Vandermonde product; this module is a float64-friendly reference for one
real SISO system (time-invariant part) written for clarity, not speed.
"""
from __future__ import annotations

from typing import Callable, Dict, Optional, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor

Scalar = Union[float, Tensor]
DISCRETIZATIONS = ("zoh", "bilinear", "euler")


# ----------------------------------------------------------------------------------------------- checks
def _as_tensor(x: Scalar, like: Tensor) -> Tensor:
    return x if isinstance(x, Tensor) else torch.tensor(float(x), dtype=like.dtype, device=like.device)


def _check_system(A: Tensor, B: Tensor, C: Optional[Tensor] = None) -> int:
    """Validate A, B (and C) shapes; return N. Raises a ValueError naming the argument."""
    if not isinstance(A, Tensor) or A.dim() not in (1, 2) or (A.dim() == 2 and A.shape[0] != A.shape[1]):
        shape = tuple(A.shape) if isinstance(A, Tensor) else type(A).__name__
        raise ValueError(f"A must be a square (N, N) matrix or a diagonal (N,), got {shape}")
    n = A.shape[0]
    if n == 0:
        raise ValueError("A must have N >= 1 states, got N = 0")
    if B.dim() != 1 or B.shape[0] != n:
        raise ValueError(f"B must be (N={n},), got {tuple(B.shape)}")
    if C is not None and (C.dim() != 1 or C.shape[0] != n):
        raise ValueError(f"C must be (N={n},), got {tuple(C.shape)}")
    return n


def _check_delta(delta: Scalar) -> None:
    d = float(delta.detach()) if isinstance(delta, Tensor) and delta.numel() == 1 else delta
    if isinstance(d, Tensor):
        raise ValueError(f"delta must be a scalar step size, got a tensor of shape {tuple(d.shape)}")
    if not d > 0:
        raise ValueError(f"delta (the step size Δ) must be positive, got {d}")


def is_diagonal(A: Tensor) -> bool:
    """True when A is given as its diagonal (N,)."""
    return A.dim() == 1


# ------------------------------------------------------------------------------------- discretisations
def _phi1(x: Tensor) -> Tensor:
    """(exp(x) - 1) / x elementwise, with its limit 1 at x = 0 (and a Taylor series near 0, grad-safe)."""
    small = x.abs() < 1e-4
    x_safe = torch.where(small, torch.ones_like(x), x)
    series = 1 + x / 2 + x * x / 6 + x * x * x / 24
    return torch.where(small, series, torch.expm1(x_safe) / x_safe)


def _zoh_many(A: Tensor, B: Tensor, s: Tensor) -> Tuple[Tensor, Tensor]:
    """ZOH for many step lengths at once: s: (T,) -> exp(sA): (T, N, N) or (T, N), and B̄(s): (T, N)."""
    n = A.shape[0]
    if is_diagonal(A):
        sA = s[:, None] * A
        return torch.exp(sA), s[:, None] * _phi1(sA) * B
    M = torch.zeros(n + 1, n + 1, dtype=A.dtype, device=A.device)
    M = torch.cat([torch.cat([A, B[:, None]], dim=1), M[n:]], dim=0)  # (N+1, N+1)
    E = torch.linalg.matrix_exp(s[:, None, None] * M)                   # (T, N+1, N+1)
    return E[:, :n, :n], E[:, :n, n]


def discretize_zoh(A: Tensor, B: Tensor, delta: Scalar) -> Tuple[Tensor, Tensor]:
    """Zero-order hold: Ā = exp(ΔA), B̄ = (ΔA)^{-1}(exp(ΔA) - I) ΔB = ∫_0^Δ exp(sA) ds B.

    A: (N, N) or diagonal (N,); B: (N,); delta: positive scalar Δ.
    Returns Ā: A's shape, B̄: (N,). Dense A uses the block exponential
    exp(Δ [[A, B], [0, 0]]) = [[Ā, B̄], [0, 1]], which needs no inverse (A may be singular); diagonal A uses
    the closed form expm1(ΔA)/A · B with its limit ΔB where A -> 0.
    Explained in the book chapter "SSM discretization".
    """
    _check_system(A, B)
    _check_delta(delta)
    eA, phiB = _zoh_many(A, B, _as_tensor(delta, A).reshape(1))
    return eA[0], phiB[0]


def discretize_bilinear(A: Tensor, B: Tensor, delta: Scalar) -> Tuple[Tensor, Tensor]:
    """Bilinear (Tustin) transform, S4 eq. (3): Ā = (I - Δ/2 A)^{-1}(I + Δ/2 A), B̄ = (I - Δ/2 A)^{-1} ΔB.

    A: (N, N) or diagonal (N,); B: (N,); delta: positive scalar Δ. Returns Ā: A's shape, B̄: (N,).
    Explained in the book chapter "SSM discretization".
    """
    n = _check_system(A, B)
    _check_delta(delta)
    delta = _as_tensor(delta, A)
    if is_diagonal(A):
        den = 1 - delta / 2 * A
        return (1 + delta / 2 * A) / den, delta * B / den
    eye = torch.eye(n, dtype=A.dtype, device=A.device)
    lhs = eye - delta / 2 * A
    rhs = torch.cat([eye + delta / 2 * A, (delta * B)[:, None]], dim=1)  # (N, N+1)
    sol = torch.linalg.solve(lhs, rhs)
    return sol[:, :n], sol[:, n]


def discretize_euler(A: Tensor, B: Tensor, delta: Scalar) -> Tuple[Tensor, Tensor]:
    """Forward Euler: Ā = I + ΔA, B̄ = ΔB.

    A: (N, N) or diagonal (N,); B: (N,); delta: positive scalar Δ. Returns Ā: A's shape, B̄: (N,).
    Explained in the book chapter "SSM discretization".
    """
    n = _check_system(A, B)
    _check_delta(delta)
    delta = _as_tensor(delta, A)
    eye = torch.ones(n, dtype=A.dtype, device=A.device) if is_diagonal(A) else \
        torch.eye(n, dtype=A.dtype, device=A.device)
    return eye + delta * A, delta * B


_METHODS: Dict[str, Callable[[Tensor, Tensor, Scalar], Tuple[Tensor, Tensor]]] = {
    "zoh": discretize_zoh, "bilinear": discretize_bilinear, "euler": discretize_euler}


def discretize(A: Tensor, B: Tensor, delta: Scalar, method: str = "zoh") -> Tuple[Tensor, Tensor]:
    """Discretise (A, B) with step Δ by ``method`` in :data:`DISCRETIZATIONS` ("zoh", "bilinear", "euler").

    A: (N, N) or diagonal (N,); B: (N,). Returns (Ā, B̄) with Ā: A's shape, B̄: (N,).
    Explained in the book chapter "SSM discretization".
    """
    if method not in _METHODS:
        raise ValueError(f"unknown discretization method {method!r}; choose one of {DISCRETIZATIONS}")
    return _METHODS[method](A, B, delta)


def spectral_radius(dA: Tensor) -> float:
    """ρ(Ā) = the largest |eigenvalue| of Ā: (N, N) or diagonal (N,). The recurrence is stable iff ρ(Ā) < 1.
    Explained in the book chapter "SSM discretization".
    """
    lam = dA if is_diagonal(dA) else torch.linalg.eigvals(dA)
    return float(lam.abs().max())


def euler_max_step(A: Tensor) -> float:
    """The largest stable forward-Euler step: |1 + Δλ| < 1 for every eigenvalue λ of A iff Δ < min_λ 2|Re λ|/|λ|².

    A: (N, N) or diagonal (N,), with Re λ < 0 (a stable continuous system; raises otherwise).
    For a damped oscillator (λ = ω(-ζ ± i sqrt(1 - ζ²))) this is 2ζ/ω.
    Explained in the book chapter "SSM discretization".
    """
    lam = A.to(torch.complex128) if is_diagonal(A) else torch.linalg.eigvals(A).to(torch.complex128)
    if not bool((lam.real < 0).all()):
        raise ValueError("euler_max_step needs a stable A (every eigenvalue with negative real part)")
    return float((-2 * lam.real / lam.abs() ** 2).min())


# ------------------------------------------------------------------------ recurrence and convolution
def _apply_A(dA: Tensor, h: Tensor) -> Tensor:
    """Ā h for h: (..., N); Ā dense (N, N) or diagonal (N,)."""
    return dA * h if is_diagonal(dA) else h @ dA.T


def ssm_recurrence(dA: Tensor, dB: Tensor, C: Tensor, u: Tensor, D: Scalar = 0.0,
                   h0: Optional[Tensor] = None, return_states: bool = False):
    """Run the discrete LTI recurrence h_k = Ā h_{k-1} + B̄ u_k, y_k = C h_k + D u_k step by step.

    dA: (N, N) or diagonal (N,); dB, C: (N,); u: (..., L) (any leading batch axes); D: scalar;
    h0: (..., N) initial state h_{-1} (default zeros).
    Returns y: (..., L), and with ``return_states`` also the states h: (..., L, N).
    Explained in the book chapter "SSM discretization".
    """
    n = _check_system(dA, dB, C)
    if u.dim() < 1:
        raise ValueError(f"u must be (..., L) with L >= 1, got shape {tuple(u.shape)}")
    h = u.new_zeros(*u.shape[:-1], n) if h0 is None else h0
    if tuple(h.shape) != (*u.shape[:-1], n):
        raise ValueError(f"h0 must be {(*u.shape[:-1], n)}, got {tuple(h.shape)}")
    states = []
    for u_k in u.unbind(-1):
        h = _apply_A(dA, h) + dB * u_k[..., None]   # h_k = Ā h_{k-1} + B̄ u_k
        states.append(h)
    H = torch.stack(states, dim=-2)  # (..., L, N)
    y = H @ C + _as_tensor(D, u) * u
    return (y, H) if return_states else y


def ssm_kernel(dA: Tensor, dB: Tensor, C: Tensor, L: int) -> Tensor:
    """The SSM convolution kernel K̄ = (C B̄, C Ā B̄, ..., C Ā^{L-1} B̄) (S4 eq. (5)).

    dA: (N, N) or diagonal (N,); dB, C: (N,); L: kernel length >= 1. Returns K̄: (L,).
    Diagonal Ā uses the Vandermonde form K̄_k = Σ_n C_n B̄_n Ā_n^k; dense Ā repeated products.
    Explained in the book chapter "SSM discretization".
    """
    _check_system(dA, dB, C)
    if L < 1:
        raise ValueError(f"L (kernel length) must be >= 1, got {L}")
    if is_diagonal(dA):
        k = torch.arange(L, dtype=dA.dtype, device=dA.device)
        V = dA[:, None] ** k  # (N, L) Vandermonde matrix Ā_n^k
        return (C * dB) @ V
    out, v = [], dB
    for _ in range(L):
        out.append(C @ v)
        v = dA @ v
    return torch.stack(out)


def causal_conv(u: Tensor, K: Tensor, D: Scalar = 0.0, method: str = "fft") -> Tensor:
    """Causal convolution y_t = Σ_{k=0}^{t} K̄_k u_{t-k} + D u_t along the last axis.

    u: (..., L); K: (L,) (a longer kernel is cut to L; a shorter one is zero-padded); D: scalar;
    method: "fft" (O(L log L), zero-padded to 2L so nothing wraps around) or "direct" (O(L^2)).
    Returns y: (..., L). Explained in the book chapter "SSM discretization".
    """
    if u.dim() < 1 or K.dim() != 1:
        raise ValueError(f"u must be (..., L) and K must be (L,), got u {tuple(u.shape)}, K {tuple(K.shape)}")
    L = u.shape[-1]
    K = K[:L] if K.shape[0] >= L else F.pad(K, (0, L - K.shape[0]))
    if method == "fft":
        n = 2 * L
        y = torch.fft.irfft(torch.fft.rfft(u, n=n) * torch.fft.rfft(K, n=n), n=n)[..., :L]
    elif method == "direct":
        # Toeplitz matrix T[t, s] = K̄_{t-s} for s <= t.
        idx = torch.arange(L, device=u.device)
        lag = idx[:, None] - idx[None, :]  # (L, L)
        T = torch.where(lag >= 0, K[lag.clamp(min=0)], K.new_zeros(()))
        y = u @ T.T
    else:
        raise ValueError(f"unknown convolution method {method!r}; choose 'fft' or 'direct'")
    return y + _as_tensor(D, u) * u


def ssm_convolution(dA: Tensor, dB: Tensor, C: Tensor, u: Tensor, D: Scalar = 0.0, method: str = "fft") -> Tensor:
    """The convolutional view of :func:`ssm_recurrence` (h_{-1} = 0): y = K̄ * u + D u.

    dA: (N, N) or (N,); dB, C: (N,); u: (..., L). Returns y: (..., L).
    Explained in the book chapter "SSM discretization".
    """
    return causal_conv(u, ssm_kernel(dA, dB, C, u.shape[-1]), D, method=method)


# --------------------------------------------------------------------- exact continuous responses
def step_response(A: Tensor, B: Tensor, C: Tensor, D: Scalar, t: Tensor) -> Tensor:
    """Exact continuous response to the unit step u(t) = 1 (t > 0), x(0) = 0.

    y(t) = C A^{-1}(exp(tA) - I) B + D, computed as C (∫_0^t exp(sA) ds) B + D without inverting A.
    A: (N, N) or (N,); B, C: (N,); t: (T,) times > 0. Returns y: (T,).
    Explained in the book chapter "SSM discretization".
    """
    return piecewise_constant_response(A, B, C, D, levels=t.new_ones(1), hold=float("inf"), t=t)


def piecewise_constant_response(A: Tensor, B: Tensor, C: Tensor, D: Scalar, levels: Tensor, hold: float,
                                t: Tensor) -> Tensor:
    """Exact continuous response to u(t) = levels[j] on (j·hold, (j+1)·hold], x(0) = 0.

    The last level is held beyond the last interval (hold = inf gives a step of height levels[0]).
    A: (N, N) or (N,); B, C: (N,); levels: (J,); t: (T,) evaluation times > 0, in any order.
    Returns y(t): (T,), with y(t) = C h(t) + D u(t). The state is propagated exactly interval by interval,
    x(τ + s) = exp(sA) x(τ) + ∫_0^s exp(rA) dr B u, with the matrix exponential (no time stepping).
    Explained in the book chapter "SSM discretization".
    """
    _check_system(A, B, C)
    if levels.dim() != 1 or levels.numel() == 0:
        raise ValueError(f"levels must be (J,) with J >= 1, got shape {tuple(levels.shape)}")
    if t.dim() != 1 or (t <= 0).any():
        raise ValueError("t must be a 1-D tensor of positive times")
    if not hold > 0:
        raise ValueError(f"hold must be positive, got {hold}")
    J = levels.numel()
    # Interval index of every time, and the time elapsed inside that interval.
    if hold == float("inf"):
        j = torch.zeros_like(t, dtype=torch.long)
    else:
        j = (torch.ceil(t / hold - 1e-9).long() - 1).clamp(0, J - 1)  # right-closed intervals
    start = j.to(t.dtype) * (0.0 if hold == float("inf") else hold)
    s = t - start
    # States at the interval starts: x_0 = 0, x_{j+1} = exact propagation over one full interval.
    n = A.shape[0]
    x_starts = [A.new_zeros(n)]
    if hold != float("inf"):
        fA, fB = discretize_zoh(A, B, hold) if J > 1 else (None, None)
        for lev in levels[:-1]:
            x_starts.append(_apply_A(fA, x_starts[-1]) + fB * lev)
    X = torch.stack(x_starts)  # (J', N)
    eA, phiB = _zoh_many(A, B, s)   # exp(sA): (T, N, N) or (T, N); ∫_0^s exp(rA) dr B: (T, N)
    x0 = X[j]                        # (T, N) state at the start of each time's interval
    x = (eA * x0 if is_diagonal(A) else torch.einsum("tij,tj->ti", eA, x0)) + phiB * levels[j][:, None]
    return x @ C + _as_tensor(D, t) * levels[j]


def discrete_step_response(A: Tensor, B: Tensor, C: Tensor, D: Scalar, delta: float, L: int,
                           method: str = "zoh") -> Tuple[Tensor, Tensor]:
    """Discretise with ``method`` and step Δ, feed L unit samples; return (t_k, y_k), t_k = (k+1)Δ: (L,) each.

    A: (N, N) or (N,); B, C: (N,). Compare with :func:`step_response` at the same times.
    Explained in the book chapter "SSM discretization".
    """
    dA, dB = discretize(A, B, delta, method)
    u = A.new_ones(L)
    t = (torch.arange(L, dtype=A.dtype, device=A.device) + 1) * delta
    return t, ssm_recurrence(dA, dB, C, u, D)


def step_error(A: Tensor, B: Tensor, C: Tensor, D: Scalar, delta: float, T: float, method: str) -> float:
    """Max |y_k - y(t_k)| over t_k = (k+1)Δ <= T between the discretised and the exact step response.

    A: (N, N) or (N,); B, C: (N,); T must be a multiple of Δ (so every method ends at the same time).
    Explained in the book chapter "SSM discretization" (error vs step size on log-log axes).
    """
    L = int(round(T / delta))
    if L < 1 or abs(L * delta - T) > 1e-9 * T:
        raise ValueError(f"T={T} must be a positive multiple of delta={delta}")
    t, y = discrete_step_response(A, B, C, D, delta, L, method)
    return (y - step_response(A, B, C, D, t)).abs().max().item()


def convergence_order(deltas: Tensor, errors: Tensor) -> float:
    """Least-squares slope of log(error) against log(Δ): the empirical order of accuracy.

    deltas, errors: (M,) positive. Explained in the book chapter "SSM discretization".
    """
    x, y = torch.log(deltas.double()), torch.log(errors.double())
    x, y = x - x.mean(), y - y.mean()
    return float((x * y).sum() / (x * x).sum())


# ------------------------------------------------------------------- the selective (Mamba) variant
def selective_discretize(delta: Tensor, A: Tensor, B: Tensor, b_method: str = "euler") -> Tuple[Tensor, Tensor]:
    """Per-step discretisation of the selective SSM (Mamba Section 3.5): Ā_t = exp(Δ_t A), B̄_t = Δ_t B_t.

    delta: (Bt, E, L) step sizes Δ_t (already softplus-ed); A: (E, N) diagonal per channel;
    B: (Bt, N, L) or grouped (Bt, G, N, L) with E divisible by G.
    b_method: "euler" (Mamba's choice, B̄_t = Δ_t B_t) or "zoh" (B̄_t = (Δ_t A)^{-1}(exp(Δ_t A) - 1) Δ_t B_t).
    Returns Ā: (Bt, E, L, N) and B̄: (Bt, E, L, N).
    Explained in the book chapter "SSM discretization".
    """
    if delta.dim() != 3:
        raise ValueError(f"delta must be (Bt, E, L), got shape {tuple(delta.shape)}")
    nb, e, L = delta.shape
    if A.dim() != 2 or A.shape[0] != e:
        raise ValueError(f"A must be (E={e}, N), got {tuple(A.shape)}")
    Bx = _expand_groups(B, "B", nb, e, A.shape[1], L)  # (Bt, E or 1, N, L)
    dtA = torch.einsum("bel,en->beln", delta, A)
    dA = torch.exp(dtA)
    dB = torch.einsum("bel,benl->beln", delta, Bx)
    if b_method == "zoh":
        dB = dB * _phi1(dtA)
    elif b_method != "euler":
        raise ValueError(f"unknown b_method {b_method!r}; choose 'euler' (Mamba) or 'zoh'")
    return dA, dB


def _expand_groups(M: Tensor, name: str, nb: int, e: int, n: int, L: int) -> Tensor:
    """(Bt, N, L) -> (Bt, 1, N, L); grouped (Bt, G, N, L) -> (Bt, E, N, L) (group of channel i: i // (E/G))."""
    if M.dim() == 3 and tuple(M.shape) == (nb, n, L):
        return M[:, None]
    if M.dim() == 4 and M.shape[0] == nb and M.shape[2:] == (n, L) and M.shape[1] > 0 and e % M.shape[1] == 0:
        return M.repeat_interleave(e // M.shape[1], dim=1)
    raise ValueError(f"{name} must be (Bt={nb}, N={n}, L={L}) or grouped (Bt, G, N, L) with E={e} divisible "
                     f"by G, got {tuple(M.shape)}")


def time_varying_recurrence(dA: Tensor, dB: Tensor, C: Tensor, u: Tensor, D: Optional[Tensor] = None,
                            return_last_state: bool = False):
    """The time-varying recurrence h_t = Ā_t ⊙ h_{t-1} + B̄_t u_t, y_t = C_t · h_t + D u_t (h_{-1} = 0).

    dA, dB: (Bt, E, L, N) from :func:`selective_discretize`; C: (Bt, N, L) or grouped (Bt, G, N, L);
    u: (Bt, E, L); D: (E,) or None. Returns y: (Bt, E, L) (and h_L: (Bt, E, N) with return_last_state).
    With dA, dB from :func:`selective_discretize` this equals :func:`restore_core.ssm.selective_scan`
    without the gate z. Explained in the book chapter "SSM discretization".
    """
    if u.dim() != 3:
        raise ValueError(f"u must be (Bt, E, L), got shape {tuple(u.shape)}")
    nb, e, L = u.shape
    if dA.shape != dB.shape or dA.dim() != 4 or tuple(dA.shape[:3]) != (nb, e, L):
        raise ValueError(f"dA and dB must both be (Bt={nb}, E={e}, L={L}, N), got {tuple(dA.shape)} and "
                         f"{tuple(dB.shape)}")
    Cx = _expand_groups(C, "C", nb, e, dA.shape[3], L)
    h = u.new_zeros(nb, e, dA.shape[3])
    ys = []
    for t in range(L):
        h = dA[:, :, t] * h + dB[:, :, t] * u[:, :, t, None]   # h_t = Ā_t h_{t-1} + B̄_t u_t
        ys.append((h * Cx[:, :, :, t]).sum(-1))                 # y_t = C_t · h_t
    y = torch.stack(ys, dim=-1)
    if D is not None:
        y = y + D[:, None] * u
    return (y, h) if return_last_state else y


__all__ = ["DISCRETIZATIONS", "discretize", "discretize_zoh", "discretize_bilinear", "discretize_euler",
           "ssm_recurrence", "ssm_kernel", "causal_conv", "ssm_convolution", "step_response",
           "piecewise_constant_response", "discrete_step_response", "step_error", "convergence_order",
           "selective_discretize", "time_varying_recurrence", "is_diagonal"]
