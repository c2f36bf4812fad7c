"""Models as tutorials write them: plain nn.Modules with named attributes, the oracles of
the importer's round trip (tests/test_import.py)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class PlainCNN(nn.Module):
    """Two conv-bn-relu-pool stages and a two-layer classifier; one pool module used twice,
    the batch kept by ``x.view(x.size(0), -1)``."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(16)
        self.conv2 = nn.Conv2d(16, 32, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(32)
        self.pool = nn.MaxPool2d(2, 2)
        self.fc1 = nn.Linear(32 * 8 * 8, 64)
        self.drop = nn.Dropout(0.5)
        self.fc2 = nn.Linear(64, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(F.relu(self.bn1(self.conv1(x))))  # (N, 16, 16, 16)
        x = self.pool(F.relu(self.bn2(self.conv2(x))))  # (N, 32, 8, 8)
        x = x.view(x.size(0), -1)  # (N, 2048)
        return self.fc2(self.drop(F.relu(self.fc1(x))))


class ResBlock(nn.Module):
    """A basic residual block whose projection shortcut is called ``shortcut``."""

    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out += self.shortcut(x)
        return F.relu(out)


class ResidualNet(nn.Module):
    """A stem whose residual 1x1 conv (with a bias) no auto projection builds, then three
    stages of ResBlocks."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 16, 3, padding=1, bias=False)
        self.proj = nn.Conv2d(3, 16, 1)
        self.bn = nn.BatchNorm2d(16)
        self.layer1 = nn.Sequential(ResBlock(16, 16), ResBlock(16, 16))
        self.layer2 = nn.Sequential(ResBlock(16, 32, 2), ResBlock(32, 32))
        self.layer3 = nn.Sequential(ResBlock(32, 64, 2), ResBlock(64, 64))
        self.linear = nn.Linear(64, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn(self.stem(x) + self.proj(x)))
        out = self.layer3(self.layer2(self.layer1(out)))
        out = F.adaptive_avg_pool2d(out, 1)
        return self.linear(torch.flatten(out, 1))


class DoubleConv(nn.Module):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(x)))


class Up(nn.Module):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.up = nn.ConvTranspose2d(cin, cin // 2, 2, stride=2)
        self.conv = DoubleConv(cin, cout)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = self.up(x)
        return self.conv(torch.cat([skip, x], dim=1))


class SmallUNet(nn.Module):
    """A three-level U-Net: double convs, max-pool down, transposed-conv up, concat skips."""

    def __init__(self, cin: int = 1, classes: int = 2, width: int = 8) -> None:
        super().__init__()
        self.inc = DoubleConv(cin, width)
        self.down1 = DoubleConv(width, 2 * width)
        self.down2 = DoubleConv(2 * width, 4 * width)
        self.up1 = Up(4 * width, 2 * width)
        self.up2 = Up(2 * width, width)
        self.outc = nn.Conv2d(width, classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1 = self.inc(x)  # (N, 8, H, W)
        x2 = self.down1(F.max_pool2d(x1, 2))  # (N, 16, H/2, W/2)
        x3 = self.down2(F.max_pool2d(x2, 2))  # (N, 32, H/4, W/4)
        x = self.up1(x3, x2)  # (N, 16, H/2, W/2)
        x = self.up2(x, x1)  # (N, 8, H, W)
        return self.outc(x)


class Softsign(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.softsign(x)


class WithSoftsign(nn.Module):
    """A custom module calling a function no built-in op maps."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.act = Softsign()
        self.head = nn.Conv2d(8, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.act(self.conv(x)))


class WithRMSNorm(nn.Module):
    """A torch module class no built-in op is: nn.RMSNorm."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(16, 16)
        self.norm = nn.RMSNorm(16)
        self.out = nn.Linear(16, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.norm(self.fc(x)))


# -- modules the importer refuses, each for one reason (tests/test_import.py) ------------------

class TwoInputs(nn.Module):
    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return x + y


class ExtraBuffer(nn.Module):
    """A batch norm holding one more buffer than nn.BatchNorm2d builds."""

    def __init__(self) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(3)
        self.bn.register_buffer("scale", torch.ones(3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(x)


class SharedConv(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(self.conv(x))


class SharedAcross(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.inner = nn.Sequential(nn.Conv2d(3, 3, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner[0](self.inner(x))


class OddName(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.add_module("my-conv", nn.Conv2d(3, 3, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return getattr(self, "my-conv")(x)


class ReturnsANumber(nn.Module):
    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, int]:
        return torch.relu(x), 3


class FlattensTheBatch(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x).view(-1)


class NewZeros(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + x.new_zeros(x.shape)


class OddPool(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.adaptive_avg_pool2d(x, (None, 2))


class SoftmaxDtype(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(x, 1, dtype=torch.float64)


class Chunks(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = x.chunk(2, 1)
        return a + b


class ValueBranch(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.sum() > 0:
            return torch.relu(x)
        return x
