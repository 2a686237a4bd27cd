"""Mamba's step-size bias: ``softplus(bias) = dt``, i.e. ``bias = dt + log(-expm1(-dt))`` (the inverse softplus),
shared by SS2D, CU-Mamba's channel SSM and the scan benchmark's inputs."""
from __future__ import annotations

import math
from typing import Union, overload

import torch
from torch import Tensor

__all__ = ["inverse_softplus"]


@overload
def inverse_softplus(dt: float) -> float: ...
@overload
def inverse_softplus(dt: Tensor) -> Tensor: ...


def inverse_softplus(dt: Union[float, Tensor]) -> Union[float, Tensor]:
    """``x`` with ``softplus(x) = dt`` (dt > 0): a tensor in its own dtype, a Python float in double precision."""
    if isinstance(dt, Tensor):
        return dt + torch.log(-torch.expm1(-dt))
    return dt + math.log(-math.expm1(-dt))
