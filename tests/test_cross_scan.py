"""2-D scan orders: explicit paths, exact inverses, odd sizes."""
import pytest
import torch

from restore_core.ssm.cross_scan import (ScanOrder, cross_merge, cross_scan, get_scan_order, list_scan_orders,
                                         register_scan_order)

SIZES = [(5, 7), (4, 6), (1, 9), (37, 53), (2, 2), (3, 1)]


def _grid(Bt=2, C=3, H=5, W=7, dtype=torch.float64):
    return torch.randn(Bt, C, H, W, dtype=dtype, generator=torch.Generator().manual_seed(H * 100 + W))


def test_registry_lists_the_orders():
    assert list_scan_orders() == ["1d", "2d", "4d", "channel", "es2d"]
    assert [get_scan_order(n).directions for n in ("1d", "2d", "4d", "es2d", "channel")] == [1, 2, 4, 4, 1]
    o = get_scan_order("4d")
    assert get_scan_order(o) is o
    with pytest.raises(ValueError, match="unknown scan order 'diag'.*known: 1d, 2d, 4d"):
        cross_scan(_grid(), "diag")
    with pytest.raises(KeyError, match="already registered"):
        register_scan_order(get_scan_order("1d"))


def test_4d_paths_are_vmamba_order():
    """k=0 row-major, k=1 column-major, k=2/k=3 their reversals (MambaIR's xs layout)."""
    x = _grid(H=5, W=7)
    xs = cross_scan(x, "4d")
    assert xs.shape == (2, 4, 3, 35)
    row = x.flatten(2)
    col = x.transpose(2, 3).flatten(2)
    torch.testing.assert_close(xs[:, 0], row, rtol=0, atol=0)
    torch.testing.assert_close(xs[:, 1], col, rtol=0, atol=0)
    torch.testing.assert_close(xs[:, 2], row.flip(-1), rtol=0, atol=0)
    torch.testing.assert_close(xs[:, 3], col.flip(-1), rtol=0, atol=0)
    torch.testing.assert_close(cross_scan(x, "2d"), xs[:, :2], rtol=0, atol=0)
    torch.testing.assert_close(cross_scan(x, "1d"), xs[:, :1], rtol=0, atol=0)


@pytest.mark.parametrize("H,W", SIZES)
@pytest.mark.parametrize("name,k", [("1d", 1), ("2d", 2), ("4d", 4)])
def test_full_coverage_round_trip(name, k, H, W):
    x = _grid(H=H, W=W)
    xs = cross_scan(x, name)
    assert xs.shape == (2, k, 3, H * W)
    torch.testing.assert_close(cross_merge(xs, name, H, W), k * x, rtol=0, atol=0)
    assert get_scan_order(name).exact_multiplicity == k


@pytest.mark.parametrize("H,W", SIZES)
def test_merge_undoes_each_direction(H, W):
    """Merging a tensor whose only non-zero direction is k gives x back exactly: each inverse is exact."""
    x = _grid(H=H, W=W)
    xs = cross_scan(x, "4d")
    for k in range(4):
        only_k = torch.zeros_like(xs)
        only_k[:, k] = xs[:, k]
        torch.testing.assert_close(cross_merge(only_k, "4d", H, W), x, rtol=0, atol=0)


def test_es2d_subgrids_even():
    x = _grid(H=4, W=6)
    xs = cross_scan(x, "es2d")
    assert xs.shape == (2, 4, 3, 6)
    torch.testing.assert_close(xs[:, 0], x[:, :, 0::2, 0::2].flatten(2), rtol=0, atol=0)
    torch.testing.assert_close(xs[:, 1], x[:, :, 1::2, 0::2].transpose(2, 3).flatten(2), rtol=0, atol=0)
    torch.testing.assert_close(xs[:, 2], x[:, :, 0::2, 1::2].flatten(2), rtol=0, atol=0)
    torch.testing.assert_close(xs[:, 3], x[:, :, 1::2, 1::2].transpose(2, 3).flatten(2), rtol=0, atol=0)


@pytest.mark.parametrize("H,W", SIZES)
def test_es2d_exact_inverse_and_padding(H, W):
    """Each pixel is in exactly one sub-grid; odd sizes are zero-padded bottom/right and cropped back."""
    x = _grid(H=H, W=W)
    xs = cross_scan(x, "es2d")
    Hp, Wp = H + H % 2, W + W % 2
    assert xs.shape == (2, 4, 3, Hp * Wp // 4)
    torch.testing.assert_close(cross_merge(xs, "es2d", H, W), x, rtol=0, atol=0)
    # the tokens hold every original pixel once plus (Hp*Wp - H*W) zero padding tokens
    vals = torch.sort(xs[0, :, 0].reshape(-1)).values
    expect = torch.sort(torch.cat([x[0, 0].reshape(-1), x.new_zeros(Hp * Wp - H * W)])).values
    torch.testing.assert_close(vals, expect, rtol=0, atol=0)
    assert get_scan_order("es2d").exact_multiplicity == 1


def test_es2d_odd_padding_position():
    """For odd H the padded row is the last one: sub-grid k=1 (odd rows) ends with zero tokens."""
    x = torch.arange(1.0, 1 + 3 * 3).view(1, 1, 3, 3)
    xs = cross_scan(x, "es2d")  # padded to 4x4, L = 4
    assert xs[0, 0, 0].tolist() == [1.0, 3.0, 7.0, 9.0]      # rows 0,2 cols 0,2 row-major
    assert xs[0, 1, 0].tolist() == [4.0, 0.0, 6.0, 0.0]      # rows 1,3 cols 0,2 column-major (row 3 padded)
    assert xs[0, 2, 0].tolist() == [2.0, 0.0, 8.0, 0.0]      # rows 0,2 cols 1,3 row-major (col 3 padded)
    assert xs[0, 3, 0].tolist() == [5.0, 0.0, 0.0, 0.0]      # rows 1,3 cols 1,3 column-major


@pytest.mark.parametrize("H,W", [(5, 7), (1, 1)])
def test_channel_scan_convention(H, W):
    x = _grid(H=H, W=W)
    xs = cross_scan(x, "channel")
    assert xs.shape == (2, 1, H * W, 3)
    h, w = H - 1, W // 2
    torch.testing.assert_close(xs[:, 0, h * W + w, :], x[:, :, h, w], rtol=0, atol=0)  # token c = channel c
    torch.testing.assert_close(xs[:, 0].transpose(1, 2), x.flatten(2), rtol=0, atol=0)
    torch.testing.assert_close(cross_merge(xs, "channel", H, W), x, rtol=0, atol=0)


def test_merge_rejects_wrong_shape():
    with pytest.raises(ValueError, match="expects y: \\(Bt, K=4, C, L=35\\)"):
        cross_merge(torch.zeros(1, 4, 3, 34), "4d", 5, 7)
    with pytest.raises(ValueError, match="expects x: \\(Bt, C, H, W\\)"):
        cross_scan(torch.zeros(3, 5, 7), "2d")


@pytest.mark.parametrize("name", ["1d", "2d", "4d", "es2d", "channel"])
def test_gradients_are_adjoint(name):
    """<scan(x), y> == <x, merge(y)>: the merge is the adjoint of the scan (paths are permutations/selections)."""
    H, W = 5, 7
    x = _grid(H=H, W=W)
    y = torch.randn_like(cross_scan(x, name))
    lhs = (cross_scan(x, name) * y).sum()
    rhs = (x * cross_merge(y, name, H, W)).sum()
    torch.testing.assert_close(lhs, rhs)
    xr = x.clone().requires_grad_(True)
    (cross_scan(xr, name) * y).sum().backward()
    torch.testing.assert_close(xr.grad, cross_merge(y, name, H, W))


def test_scan_order_objects_are_scan_orders():
    for name in list_scan_orders():
        assert isinstance(get_scan_order(name), ScanOrder)
        assert get_scan_order(name).description


@pytest.mark.parametrize("name", ["4d", "es2d", "2d"])
def test_gradcheck_and_double_backward(name):
    H, W = 3, 5
    x = torch.randn(1, 2, H, W, dtype=torch.float64, requires_grad=True)
    y = torch.randn_like(cross_scan(x.detach(), name)).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda t: cross_scan(t, name), (x,))
    assert torch.autograd.gradcheck(lambda t: cross_merge(t, name, H, W), (y,))
    assert torch.autograd.gradgradcheck(lambda t: cross_scan(t, name) ** 2, (x,))
    assert torch.autograd.gradgradcheck(lambda t: cross_merge(t, name, H, W) ** 2, (y,))


@pytest.mark.parametrize("name", ["1d", "2d", "4d", "es2d"])
@pytest.mark.parametrize("H,W", [(5, 7), (4, 6), (1, 1)])
def test_paths_equal_index_tables(name, H, W):
    """The strided-view scan equals a gather with the order's index table on the zero-padded grid."""
    order = get_scan_order(name)
    x = _grid(H=H, W=W)
    Hp, Wp = order.padded_size(H, W)
    padded = torch.nn.functional.pad(x, (0, Wp - W, 0, Hp - H))
    expect = padded.flatten(2)[:, :, order.index(H, W)].transpose(1, 2)
    torch.testing.assert_close(cross_scan(x, name), expect, rtol=0, atol=0)


def test_uneven_paths_are_rejected():
    from restore_core.ssm.cross_scan import PathScanOrder
    with pytest.raises(ValueError, match="does not visit every pixel equally often"):
        PathScanOrder("quarter", [(0, 0, 2, False, False)], "one sub-grid only")
    with pytest.raises(ValueError, match="same step"):
        PathScanOrder("mixed", [(0, 0, 1, False, False), (0, 0, 2, False, False)], "mixed steps")
    custom = PathScanOrder("rows_twice", [(0, 0, 1, False, False), (0, 0, 1, False, True)], "row-major both ways")
    x = _grid(H=3, W=4)
    assert custom.exact_multiplicity == 2
    torch.testing.assert_close(cross_merge(cross_scan(x, custom), custom, 3, 4), 2 * x, rtol=0, atol=0)
