"""Triton kernels of the selective scan (imported lazily by :mod:`restore_core.ssm.triton_scan`; needs triton).

Gu & Dao, "Mamba: Linear-Time Sequence Modeling with Selective State Spaces", arXiv:2312.00752, Algorithm 2.
Our kernels, not mamba-ssm's: one program per (batch element, block of channels of one B/C group) keeps the state
h: (BLOCK_D, N) in float32 registers and steps through L; per step::

    Δ_t = softplus(δ_t + δ_bias)       Ā_t = exp(Δ_t A)       h_t = Ā_t ⊙ h_{t-1} + Δ_t B_t u_t        (eq. 2a)
    y_t = C_t · h_t + D u_t            out_t = y_t · SiLU(z_t)                                          (eq. 2b)

Layouts are time-major so that one step reads contiguous memory: u, Δ, z, out: (Bt, L, D); B, C: (Bt, L, G, N).
The forward stores h every T steps (``ckpt``: (Bt, L/T, D, N)); the backward walks the chunks last to first,
recomputes a chunk's states from its checkpoint into a per-program scratch buffer (T+1, BLOCK_D, N) and runs
the adjoint recurrence backwards through it::

    g_t = C_t dy_t + Ā_{t+1} ⊙ g_{t+1}      (g_L = dL/dh_L, the last state's gradient)
    dB_t = Σ_d g_t Δ_t u_t,  dC_t = Σ_d dy_t h_t  (summed over the group's channels: atomic adds),
    dΔ_t = Σ_n g_t (B_t u_t + A Ā_t h_{t-1}),  dA = Σ_t g_t Ā_t h_{t-1} Δ_t.

Memory beyond inputs and outputs: the checkpoints and the scratch, never a (Bt, D, L, N) tensor.
"""
import triton
import triton.language as tl


@triton.jit
def _softplus(x):
    # log(1 + e^x) without overflow; the series keeps precision where e^x is tiny (F.softplus uses log1p).
    e = tl.exp(tl.minimum(x, 20.0))
    return tl.where(x > 20.0, x, tl.where(e < 1e-4, e * (1.0 - 0.5 * e), tl.log(1.0 + e)))


@triton.jit
def scan_fwd_kernel(u_ptr, dt_ptr, A_ptr, B_ptr, C_ptr, D_ptr, z_ptr, bias_ptr,
                    out_ptr, last_ptr, ckpt_ptr,
                    L, Dc, G, N, n_chunks, ch_per_group,
                    T: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_N: tl.constexpr,
                    HAS_D: tl.constexpr, HAS_Z: tl.constexpr, HAS_BIAS: tl.constexpr,
                    SOFTPLUS: tl.constexpr, SAVE: tl.constexpr):
    b = tl.program_id(0).to(tl.int64)
    pd = tl.program_id(1)
    d = pd * BLOCK_D + tl.arange(0, BLOCK_D)          # this block's channels, all in group g
    g = (pd * BLOCK_D) // ch_per_group
    n = tl.arange(0, BLOCK_N)
    nmask = n < N
    dn_mask = (d[:, None] < Dc) & nmask[None, :]
    A = tl.load(A_ptr + d[:, None] * N + n[None, :], mask=dn_mask, other=0.0).to(tl.float32)  # (BLOCK_D, BLOCK_N)
    if HAS_D:
        Dv = tl.load(D_ptr + d).to(tl.float32)
    if HAS_BIAS:
        bias = tl.load(bias_ptr + d).to(tl.float32)
    row = b * L * Dc + d                              # u-like (Bt, L, D) base of this block
    bc = b * L * G * N + g * N + n                    # B/C (Bt, L, G, N) base of group g
    h = tl.zeros((BLOCK_D, BLOCK_N), dtype=tl.float32)
    for c in range(0, n_chunks):
        if SAVE:
            ck = ((b * n_chunks + c) * Dc + d[:, None]) * N + n[None, :]
            tl.store(ckpt_ptr + ck, h, mask=dn_mask)
        t_end = tl.minimum(c * T + T, L)
        for t in range(c * T, t_end):
            u = tl.load(u_ptr + row + t * Dc).to(tl.float32)
            dt = tl.load(dt_ptr + row + t * Dc).to(tl.float32)
            if HAS_BIAS:
                dt = dt + bias
            if SOFTPLUS:
                dt = _softplus(dt)
            Bt = tl.load(B_ptr + bc + t * G * N, mask=nmask, other=0.0).to(tl.float32)
            Ct = tl.load(C_ptr + bc + t * G * N, mask=nmask, other=0.0).to(tl.float32)
            h = tl.exp(dt[:, None] * A) * h + (dt * u)[:, None] * Bt[None, :]
            y = tl.sum(h * Ct[None, :], axis=1)
            if HAS_D:
                y = y + Dv * u
            if HAS_Z:
                zt = tl.load(z_ptr + row + t * Dc).to(tl.float32)
                y = y * zt * tl.sigmoid(zt)
            tl.store(out_ptr + row + t * Dc, y.to(out_ptr.dtype.element_ty))
    tl.store(last_ptr + (b * Dc + d[:, None]) * N + n[None, :], h, mask=dn_mask)


@triton.jit
def scan_bwd_kernel(u_ptr, dt_ptr, A_ptr, B_ptr, C_ptr, D_ptr, z_ptr, bias_ptr, dout_ptr, dlast_ptr, ckpt_ptr,
                    scratch_ptr,
                    du_ptr, ddt_ptr, dA_ptr, dB_ptr, dC_ptr, dD_ptr, dbias_ptr, dz_ptr,
                    L, Dc, G, N, n_chunks, ch_per_group,
                    T: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_N: tl.constexpr,
                    HAS_D: tl.constexpr, HAS_Z: tl.constexpr, HAS_BIAS: tl.constexpr,
                    SOFTPLUS: tl.constexpr, HAS_DLAST: tl.constexpr):
    b = tl.program_id(0).to(tl.int64)
    pd = tl.program_id(1)
    d = pd * BLOCK_D + tl.arange(0, BLOCK_D)
    g = (pd * BLOCK_D) // ch_per_group
    n = tl.arange(0, BLOCK_N)
    nmask = n < N
    dn_mask = (d[:, None] < Dc) & nmask[None, :]
    dn = d[:, None] * N + n[None, :]
    A = tl.load(A_ptr + dn, mask=dn_mask, other=0.0).to(tl.float32)
    Dv = tl.zeros((BLOCK_D,), dtype=tl.float32)
    if HAS_D:
        Dv = tl.load(D_ptr + d).to(tl.float32)
    if HAS_BIAS:
        bias = tl.load(bias_ptr + d).to(tl.float32)
    row = b * L * Dc + d
    bc = b * L * G * N + g * N + n
    # This program's scratch: slot 0 holds the chunk's initial state, slot i+1 the state after its step i.
    sc = scratch_ptr + (b * tl.num_programs(1) + pd) * (T + 1) * BLOCK_D * BLOCK_N \
        + tl.arange(0, BLOCK_D)[:, None] * BLOCK_N + n[None, :]
    gh = tl.zeros((BLOCK_D, BLOCK_N), dtype=tl.float32)  # dL/dh_t, carried backwards
    if HAS_DLAST:
        gh = tl.load(dlast_ptr + b * Dc * N + dn, mask=dn_mask, other=0.0).to(tl.float32)
    dA_acc = tl.zeros((BLOCK_D, BLOCK_N), dtype=tl.float32)
    dD_acc = tl.zeros((BLOCK_D,), dtype=tl.float32)
    dbias_acc = tl.zeros((BLOCK_D,), dtype=tl.float32)
    for ci in range(0, n_chunks):
        c = n_chunks - 1 - ci
        t0 = c * T
        t1 = tl.minimum(t0 + T, L)
        h = tl.load(ckpt_ptr + (b * n_chunks + c) * Dc * N + dn, mask=dn_mask, other=0.0)
        tl.store(sc, h)
        for t in range(t0, t1):                       # recompute the chunk's states
            u = tl.load(u_ptr + row + t * Dc).to(tl.float32)
            dt = tl.load(dt_ptr + row + t * Dc).to(tl.float32)
            if HAS_BIAS:
                dt = dt + bias
            if SOFTPLUS:
                dt = _softplus(dt)
            Bt = tl.load(B_ptr + bc + t * G * N, mask=nmask, other=0.0).to(tl.float32)
            h = tl.exp(dt[:, None] * A) * h + (dt * u)[:, None] * Bt[None, :]
            tl.store(sc + (t - t0 + 1) * BLOCK_D * BLOCK_N, h)
        tl.debug_barrier()
        for i in range(0, t1 - t0):                   # the adjoint recurrence, last step first
            t = t1 - 1 - i
            h_prev = tl.load(sc + (t - t0) * BLOCK_D * BLOCK_N)
            h_t = tl.load(sc + (t - t0 + 1) * BLOCK_D * BLOCK_N)
            u = tl.load(u_ptr + row + t * Dc).to(tl.float32)
            dt_raw = tl.load(dt_ptr + row + t * Dc).to(tl.float32)
            if HAS_BIAS:
                dt_raw = dt_raw + bias
            dt = dt_raw
            if SOFTPLUS:
                dt = _softplus(dt_raw)
            Bt = tl.load(B_ptr + bc + t * G * N, mask=nmask, other=0.0).to(tl.float32)
            Ct = tl.load(C_ptr + bc + t * G * N, mask=nmask, other=0.0).to(tl.float32)
            dy = tl.load(dout_ptr + row + t * Dc).to(tl.float32)
            if HAS_Z:
                zt = tl.load(z_ptr + row + t * Dc).to(tl.float32)
                sz = tl.sigmoid(zt)
                y = tl.sum(h_t * Ct[None, :], axis=1) + Dv * u
                tl.store(dz_ptr + row + t * Dc, dy * y * sz * (1.0 + zt * (1.0 - sz)))
                dy = dy * zt * sz
            dA_t = tl.exp(dt[:, None] * A)
            gh = gh + dy[:, None] * Ct[None, :]
            tl.atomic_add(dC_ptr + bc + t * G * N, tl.sum(dy[:, None] * h_t, axis=0), mask=nmask)
            tl.atomic_add(dB_ptr + bc + t * G * N, tl.sum(gh * (dt * u)[:, None], axis=0), mask=nmask)
            gdecay = gh * h_prev * dA_t                   # dL/dĀ_t ⊙ Ā_t
            du = dy * Dv + dt * tl.sum(gh * Bt[None, :], axis=1)
            d_dt = u * tl.sum(gh * Bt[None, :], axis=1) + tl.sum(gdecay * A, axis=1)
            dA_acc += gdecay * dt[:, None]
            dD_acc += dy * u
            if SOFTPLUS:
                d_dt = d_dt * tl.sigmoid(dt_raw)
            dbias_acc += d_dt
            tl.store(du_ptr + row + t * Dc, du)
            tl.store(ddt_ptr + row + t * Dc, d_dt)
            gh = gh * dA_t
        tl.debug_barrier()
    tl.store(dA_ptr + b * Dc * N + dn, dA_acc, mask=dn_mask)
    tl.store(dD_ptr + b * Dc + d, dD_acc)
    tl.store(dbias_ptr + b * Dc + d, dbias_acc)
