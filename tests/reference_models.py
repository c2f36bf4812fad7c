"""Hand-written reference networks for the zoo entries that have no torchvision
counterpart (specs/zoo.yaml, ``reference:``). Each is written the way the papers' own
code writes it; tests/test_zoo.py loads its state_dict into the compiled spec with
strict=True and asks for torch.equal outputs.

The constructors take the zoo entry's params, so one function serves a whole family.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
import torchvision
from torch import nn


class CifarBasicBlock(nn.Module):
    """Two 3x3 conv-bn pairs; option-A shortcut: sub-sample by ``stride``, then append
    zero channels (the paper's "extra zero entries padded for increasing dimensions").
    ``residual=False`` is the plain block of the degradation experiment."""

    def __init__(self, cin: int, cout: int, stride: int, residual: bool) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.stride, self.extra, self.residual = stride, cout - cin, residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.residual:
            skip = x[:, :, :: self.stride, :: self.stride] if self.stride > 1 else x
            if self.extra:
                skip = F.pad(skip, (0, 0, 0, 0, 0, self.extra))
            out = out + skip
        return F.relu(out)


class CifarResNet(nn.Module):
    """He et al. (2015), section 4.2: 6n+2 layers on 32x32 inputs, 16/32/64 channels."""

    def __init__(self, n: int = 3, residual: bool = True, width: int = 16, num_classes: int = 10) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        cin = width
        for s, mult in enumerate((1, 2, 4)):
            cout = width * mult
            blocks = []
            for i in range(n):
                blocks.append(CifarBasicBlock(cin, cout, 2 if s > 0 and i == 0 else 1, residual))
                cin = cout
            self.add_module(f"layer{s + 1}", nn.Sequential(*blocks))
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        x = torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)
        return self.fc(x)


def resnet_cifar(n: int = 3, residual: bool = True, width: int = 16, num_classes: int = 10) -> nn.Module:
    return CifarResNet(n, residual, width, num_classes)


def densenet_cifar(depth: int = 100, growth: int = 12, num_classes: int = 10, bn_size: int = 4) -> nn.Module:
    """DenseNet-BC for CIFAR (Huang et al., 2017): torchvision's DenseNet with three
    dense blocks of (depth-4)/6 bottleneck layers and the CIFAR stem — a single 3x3
    conv to 2*growth channels, no norm/relu/max-pool before the first dense block."""
    n = (depth - 4) // 6
    model = torchvision.models.DenseNet(growth_rate=growth, block_config=(n, n, n), num_init_features=2 * growth,
                                        bn_size=bn_size, num_classes=num_classes)
    model.features.conv0 = nn.Conv2d(3, 2 * growth, 3, 1, 1, bias=False)
    del model.features.norm0, model.features.relu0, model.features.pool0
    return model


class PlainBlock(nn.Module):
    """ResNet-18's basic block with its skip removed."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x))))))


class Plain18(nn.Module):
    """The plain 18-layer net of the ResNet paper: torchvision's ResNet-18 without skips."""

    def __init__(self, num_classes: int = 1000, width: int = 64) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        cin = width
        for s in range(4):
            cout = width * 2**s
            self.add_module(f"layer{s + 1}", nn.Sequential(PlainBlock(cin, cout, 2 if s else 1),
                                                           PlainBlock(cout, cout, 1)))
            cin = cout
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 3, 2, 1)
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


def plain18(num_classes: int = 1000, width: int = 64) -> nn.Module:
    return Plain18(num_classes, width)


def resnet18_cifar(num_classes: int = 10) -> nn.Module:
    return CifarResNet18(num_classes)  # defined below; also the core tests' reference


REFERENCES = {"resnet_cifar": resnet_cifar, "densenet_cifar": densenet_cifar, "plain18": plain18,
              "resnet18_cifar": resnet18_cifar}


class ProjectedBasicBlock(nn.Module):
    """ResNet-18's basic block with a 1x1-conv+BN projection (option B) where shapes change."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample: nn.Module | None = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        skip = x if self.downsample is None else self.downsample(x)
        return F.relu(out + skip)


class CifarResNet18(nn.Module):
    """The classic CIFAR ResNet-18 (3x3 stem, no max-pool): the reference of
    specs/resnet18_cifar.yaml."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        cin = 64
        for k, (cout, stride) in enumerate([(64, 1), (128, 2), (256, 2), (512, 2)], start=1):
            layer = nn.Sequential(ProjectedBasicBlock(cin, cout, stride), ProjectedBasicBlock(cout, cout, 1))
            setattr(self, f"layer{k}", layer)
            cin = cout
        self.fc = nn.Linear(512, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))  # (N, 64, 32, 32)
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))  # (N, 512, 4, 4)
        x = torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)  # (N, 512)
        return self.fc(x)
