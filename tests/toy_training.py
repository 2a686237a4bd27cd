"""A tiny denoising problem for the trainer and DDP tests: a module file, so that subprocesses (a run killed
mid-training, torchrun workers) build exactly what the test process builds. Those put this folder on sys.path."""
import torch
from torch import nn


class NoisyPatches(torch.utils.data.Dataset):
    """``n`` random (3, size, size) targets; the input adds noise drawn from the global RNGs (seeded per sample
    by the trainer), with a random horizontal flip of the pair."""

    def __init__(self, n: int = 10, size: int = 12) -> None:
        g = torch.Generator().manual_seed(1)
        self.gt = torch.rand(n, 3, size, size, generator=g)

    def __len__(self) -> int:
        return len(self.gt)

    def __getitem__(self, i):
        gt = self.gt[i]
        lq = gt + 0.1 * torch.randn_like(gt)
        if torch.rand(()) < 0.5:
            lq, gt = lq.flip(-1), gt.flip(-1)
        return {"lq": lq, "gt": gt}


class TinyNet(nn.Module):
    """x + conv(dropout(relu(conv(x)))): (Bt, 3, H, W) -> (Bt, 3, H, W)."""

    def __init__(self, dropout: float = 0.2) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.drop = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(8, 3, 3, padding=1)

    def forward(self, x):
        return x + self.conv2(self.drop(torch.relu(self.conv1(x))))


def make_model(dropout: float = 0.2) -> TinyNet:
    """A TinyNet with the same initial weights every call."""
    torch.manual_seed(0)
    return TinyNet(dropout)
