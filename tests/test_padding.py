"""pad_to_multiple: the one padding rule the models and tiled inference share."""
import pytest
import torch
import torch.nn.functional as F

from restore_core.layers.padding import pad_to_multiple


def test_reflects_at_bottom_right_to_the_multiple():
    x = torch.arange(5 * 7.0).view(1, 1, 5, 7)
    y = pad_to_multiple(x, 4)
    assert y.shape == (1, 1, 8, 8)
    assert torch.equal(y[..., :5, :7], x)
    assert torch.equal(y, F.pad(x, (0, 1, 0, 3), mode="reflect"))
    assert y[0, 0, 5, 0] == x[0, 0, 3, 0]  # row 5 mirrors row 3 (reflection excludes the edge row)


def test_replicates_when_the_image_is_too_small_to_reflect():
    x = torch.rand(2, 3, 1, 6)
    y = pad_to_multiple(x, 8)
    assert y.shape == (2, 3, 8, 8)
    assert torch.equal(y, F.pad(x, (0, 2, 0, 7), mode="replicate"))


def test_no_copy_when_already_a_multiple_and_bad_multiple_named():
    x = torch.rand(1, 1, 8, 16)
    assert pad_to_multiple(x, 8) is x
    with pytest.raises(ValueError, match="multiple must be >= 1"):
        pad_to_multiple(x, 0)
