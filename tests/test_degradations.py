"""Degradations: MATLAB bicubic imresize (hand-derived values, an independent implementation, torch == numpy),
AWGN seeds, JPEG, Bayer GRBG mosaic, blur kernels and convolution."""
import hashlib
import io

import numpy as np
import pytest
import torch
from PIL import Image
from scipy import ndimage

from restore_core.data.degradations import (add_gaussian_noise, bayer_mosaic, bicubic_downsample, blur,
                                            gaussian_kernel, image_seed, jpeg_compress, mod_crop, motion_kernel,
                                            parse_degradation)
from restore_core.data.imresize import contributions, cubic, imresize, imresize_np, output_size, resize_matrix


# --- MATLAB imresize -------------------------------------------------------------------------------------------
def test_cubic_kernel_values():
    # Keys a = -0.5: 1.5|x|^3 - 2.5|x|^2 + 1 on [0, 1]; -0.5|x|^3 + 2.5|x|^2 - 4|x| + 2 on (1, 2]
    x = np.array([0, 0.25, 0.75, 1, 1.25, 1.75, 2, 2.5])
    np.testing.assert_array_equal(cubic(x), [1, 0.8671875, 0.2265625, 0, -0.0703125, -0.0234375, 0, 0])


def test_upscale_by_hand():
    # MATLAB imresize(1:4, [1 8]): u = x/2 + 1/4; first sample u = 0.75 has taps at -1, 0, 1, 2 with weights
    # cubic(1.75, 0.75, -0.25, -1.25); mirrored positions -1 -> 2, 0 -> 1: 2*(-0.0234375 - 0.0703125)
    # + 1*(0.2265625 + 0.8671875) = 0.90625. The whole row (MATLAB prints 0.9063 1.1797 1.7266 2.2500 ...):
    want = [0.90625, 1.1796875, 1.7265625, 2.25, 2.75, 3.2734375, 3.8203125, 4.09375]
    np.testing.assert_array_equal(imresize_np(np.arange(1.0, 5.0)[None, :], size=(1, 8))[0], want)


def test_downscale_by_hand():
    # imresize(1:16, 0.5): antialiased kernel 0.5*cubic(0.5 d), width 8; first output u = 1.5, taps -2..5 with
    # weights [-0.01171875, -0.03515625, 0.11328125, 0.43359375] mirrored about 1.5; positions -2, -1, 0 mirror
    # to 3, 2, 1: -0.01171875*3 - 0.03515625*2 + 0.11328125*1 + 0.43359375*(1 + 2) + 0.11328125*3
    # - 0.03515625*4 - 0.01171875*5 = 1.44921875. Outputs whose taps stay inside reproduce the ramp exactly.
    out = imresize_np(np.arange(1.0, 17.0)[None, :], scale=0.5)[0]
    assert out[0] == 1.44921875
    np.testing.assert_array_equal(out[2:6], [5.5, 7.5, 9.5, 11.5])
    assert out[-1] == pytest.approx(17 - 1.44921875, abs=1e-14)  # symmetric at the other border
    assert out[1] != 3.5  # its taps reach the mirrored border


def test_contributions_are_normalised_and_mirrored():
    for n_in, n_out in [(7, 3), (10, 5), (5, 17), (1, 4)]:
        w, idx = contributions(n_in, n_out, n_out / n_in)
        np.testing.assert_allclose(w.sum(axis=1), 1.0, atol=1e-12)
        assert idx.min() >= 0 and idx.max() < n_in


def test_resize_matrix_is_the_same_operator():
    x = np.random.default_rng(7).random((13, 5))
    np.testing.assert_allclose(resize_matrix(13, 4, 4 / 13) @ x, imresize_np(x, size=(4, 5)), atol=1e-13)


def test_output_size_rules():
    assert output_size((37, 41), 0.5, None)[0] == (19, 21)  # ceil(in * scale)
    assert output_size((37, 41), None, (10, 50))[1] == (10 / 37, 50 / 41)
    with pytest.raises(ValueError, match="exactly one"):
        output_size((4, 4), 0.5, (2, 2))


def test_constant_image_stays_constant():
    x = np.full((9, 11, 3), 0.3)
    np.testing.assert_allclose(imresize_np(x, scale=1 / 3), 0.3, atol=1e-14)
    np.testing.assert_allclose(imresize_np(x, scale=2.5), 0.3, atol=1e-14)


def test_uint8_in_uint8_out_rounded():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (16, 12, 3), dtype=np.uint8)
    got = imresize_np(x, scale=0.5)
    assert got.dtype == np.uint8
    ref = np.floor(np.clip(imresize_np(x.astype(np.float64), scale=0.5), 0, 255) + 0.5).astype(np.uint8)
    assert np.array_equal(got, ref)
    # an exact tie: the 6th sample of this row upscaled x2 is 108.5 (dyadic weights); MATLAB's uint8 conversion
    # rounds it up to 109 (numpy's round-half-even would give 108); negative results clip to 0
    row = np.array([[100, 219, 141, 8]])
    assert imresize_np(row.astype(np.float64), size=(1, 8))[0, 5] == 108.5
    assert imresize_np(row.astype(np.uint8), size=(1, 8)).tolist() == [[89, 126, 200, 215, 169, 109, 33, 0]]


@pytest.mark.parametrize("scale", [0.5, 0.25, 1 / 3, 2, 3, 4])
def test_matches_resize_right(scale):
    """ResizeRight (Shocher et al., pip `resize-right`) implements MATLAB's imresize independently; with its
    symmetric padding it must agree to float rounding on sizes divisible by the scale (as in SR data)."""
    rr = pytest.importorskip("resize_right", reason="resize-right (independent reference) not installed")
    from resize_right import interp_methods

    x = np.random.default_rng(1).random((48, 36, 3))
    ours = imresize_np(x, scale=scale)
    theirs = rr.resize(x, scale_factors=[scale, scale, 1], interp_method=interp_methods.cubic,
                       pad_mode="symmetric")
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-12)


@pytest.mark.parametrize("size", [(19, 21), (10, 11), (50, 30)])
def test_matches_resize_right_odd_output_sizes(size):
    rr = pytest.importorskip("resize_right", reason="resize-right (independent reference) not installed")
    from resize_right import interp_methods

    x = np.random.default_rng(2).random((37, 41))
    theirs = rr.resize(x, out_shape=size, interp_method=interp_methods.cubic, pad_mode="symmetric")
    np.testing.assert_allclose(imresize_np(x, size=size), theirs, rtol=0, atol=1e-12)


@pytest.mark.parametrize("scale,size", [(0.25, None), (1 / 3, None), (2, None), (None, (7, 30))])
def test_torch_matches_numpy(scale, size):
    x = np.random.default_rng(3).random((2, 3, 23, 29))
    want = np.stack([np.stack([imresize_np(c, scale=scale, size=size) for c in im]) for im in x])
    got = imresize(torch.from_numpy(x), scale=scale, size=size)
    np.testing.assert_allclose(got.numpy(), want, rtol=0, atol=1e-13)
    got32 = imresize(torch.from_numpy(x).float(), scale=scale, size=size)
    assert got32.dtype == torch.float32
    np.testing.assert_allclose(got32.numpy(), want, atol=2e-6)


def test_torch_imresize_gradcheck():
    x = torch.rand(1, 1, 6, 5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: imresize(t, scale=0.5), (x,))


def test_imresize_bad_input():
    with pytest.raises(ValueError, match="float tensor"):
        imresize(torch.zeros(4, 4, dtype=torch.uint8), scale=0.5)
    with pytest.raises(ValueError, match="uint8 or float"):
        imresize_np(np.zeros((4, 4), dtype=np.int32), scale=0.5)


def test_pillow_bicubic_is_not_matlab():
    """The reason for our own imresize: Pillow's BICUBIC differs from MATLAB's (documented, measured)."""
    x = (np.random.default_rng(4).random((64, 64)) * 255).astype(np.uint8)
    pil = np.asarray(Image.fromarray(x).resize((16, 16), Image.BICUBIC)).astype(np.float64)
    ours = imresize_np(x, scale=0.25).astype(np.float64)
    assert np.abs(pil - ours).max() >= 1


# --- SR -----------------------------------------------------------------------------------------------------------
def test_bicubic_downsample_needs_mod_crop_and_quantizes():
    hq = torch.rand(3, 26, 27)
    with pytest.raises(ValueError, match="mod_crop"):
        bicubic_downsample(hq, 4)
    hq = mod_crop(hq, 4)
    assert hq.shape == (3, 24, 24)
    lq = bicubic_downsample(hq, 4)
    assert lq.shape == (3, 6, 6)
    assert torch.equal(lq, torch.round(lq * 255) / 255) and lq.min() >= 0 and lq.max() <= 1
    with pytest.raises(ValueError, match="smaller than the scale"):
        mod_crop(torch.rand(3, 2, 9), 3)


# --- noise --------------------------------------------------------------------------------------------------------
def test_awgn_seeded_float_unclipped():
    x = torch.full((3, 64, 64), 0.5)
    a, b = add_gaussian_noise(x, 50, seed=7), add_gaussian_noise(x, 50, seed=7)
    assert torch.equal(a, b)
    assert not torch.equal(a, add_gaussian_noise(x, 50, seed=8))
    assert abs(float((a - x).std()) - 50 / 255) < 0.01
    assert a.max() > 1 and a.min() < 0  # sigma 50 around 0.5 leaves [0, 1]: not clipped
    assert not torch.equal(a, torch.round(a * 255) / 255)  # not rounded


def test_image_seed_stable_and_distinct():
    assert image_seed(0, "baby") == image_seed(0, "baby")
    assert len({image_seed(0, "baby"), image_seed(1, "baby"), image_seed(0, "bird")}) == 3
    digest = hashlib.sha256(b"0:baby").digest()  # the definition: no Python hash(), same on every platform
    assert image_seed(0, "baby") == int.from_bytes(digest[:8], "little") & (2 ** 63 - 1)


# --- JPEG ---------------------------------------------------------------------------------------------------------
def test_jpeg_matches_pillow_encode_decode():
    rgb = (np.random.default_rng(5).random((24, 40, 3)) * 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=20)
    want = np.asarray(Image.open(io.BytesIO(buf.getvalue()))).transpose(2, 0, 1) / 255.0
    got = jpeg_compress(torch.from_numpy(rgb.transpose(2, 0, 1) / 255.0).float(), 20)
    np.testing.assert_allclose(got.numpy(), want, atol=1e-7)


def test_jpeg_gray_and_quality_order():
    g = torch.from_numpy(np.asarray(Image.fromarray(
        (np.random.default_rng(6).random((32, 32)) * 255).astype(np.uint8)).resize((64, 64))) / 255.0).float()[None]
    errs = [float(((jpeg_compress(g, q) - g) ** 2).mean()) for q in (10, 40, 90)]
    assert jpeg_compress(g, 10).shape == (1, 64, 64)
    assert errs[0] > errs[1] > errs[2] > 0
    with pytest.raises(ValueError, match="quality"):
        jpeg_compress(g, 0)


# --- mosaic -------------------------------------------------------------------------------------------------------
def test_bayer_grbg_positions_odd_size():
    x = torch.rand(3, 5, 7)
    m = bayer_mosaic(x)
    assert m.shape == (3, 5, 7)
    # GRBG: (even row, even col) G, (even, odd) R, (odd, even) B, (odd, odd) G
    assert torch.equal(m[1, 0::2, 0::2], x[1, 0::2, 0::2]) and torch.equal(m[1, 1::2, 1::2], x[1, 1::2, 1::2])
    assert torch.equal(m[0, 0::2, 1::2], x[0, 0::2, 1::2]) and torch.equal(m[2, 1::2, 0::2], x[2, 1::2, 0::2])
    assert int((m != 0).sum()) == 5 * 7  # one sample per pixel, the rest zero-filled
    assert torch.equal((m != 0).sum(0), torch.ones(5, 7, dtype=torch.long))
    with pytest.raises(ValueError, match="RGB"):
        bayer_mosaic(torch.rand(1, 4, 4))


# --- blur ---------------------------------------------------------------------------------------------------------
def test_kernels():
    g = gaussian_kernel(7, 1.2)
    assert g.shape == (7, 7) and abs(float(g.sum()) - 1) < 1e-6 and torch.equal(g, g.T)
    assert int(g.argmax()) == 24
    m = motion_kernel(5, 0)  # horizontal segment through the centre
    assert abs(float(m.sum()) - 1) < 1e-6
    c = m.shape[0] // 2
    assert float(m[c].sum()) == pytest.approx(1.0, abs=1e-6)
    m90 = motion_kernel(5, 90)
    assert torch.allclose(m90, m.T, atol=1e-6)
    with pytest.raises(ValueError, match="odd"):
        gaussian_kernel(4, 1.0)


def test_blur_matches_scipy_convolution():
    x = torch.rand(3, 20, 17, dtype=torch.float64)
    k = motion_kernel(6, 30).double()
    got = blur(x, k, padding="reflect")
    for c in range(3):  # torch 'reflect' (d c b | a b c d) == scipy 'mirror'
        want = ndimage.convolve(x[c].numpy(), k.numpy(), mode="mirror")
        np.testing.assert_allclose(got[c].numpy(), want, atol=1e-12)
    assert torch.allclose(blur(torch.full((1, 9, 9), 0.4), gaussian_kernel(5, 1.0)), torch.tensor(0.4))
    with pytest.raises(ValueError, match="too small"):
        blur(torch.rand(1, 3, 3), gaussian_kernel(9, 2.0))


# --- specs --------------------------------------------------------------------------------------------------------
def test_parse_degradation():
    for spec in ["sr_x4", "awgn_25", "jpeg_10", "mosaic", "gblur_1.6", "mblur_15_-30"]:
        d = parse_degradation(spec)
        assert parse_degradation(d.name) == d
    assert parse_degradation("sr_x3").scale == 3 and parse_degradation("awgn_15").sigma == 15
    for bad in ["sr_x1", "jpeg_0", "noise", "awgn_"]:
        with pytest.raises(ValueError):
            parse_degradation(bad)
