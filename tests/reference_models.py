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


# -- pre-activation ResNets (He et al., 2016, "Identity Mappings in Deep Residual Networks") --

class PreActBlock(nn.Module):
    """The pre-activation basic block as the widely used CIFAR code writes it: bn-relu
    first, and where the shape changes the shortcut is a bare 1x1 conv that reads the
    pre-activated input; elsewhere the shortcut is the block input. (That code wraps the
    conv in an nn.Sequential, ``shortcut.0``; here it is the module ``shortcut``.)"""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        if stride != 1 or cin != cout:
            self.shortcut = nn.Conv2d(cin, cout, 1, stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(x))
        shortcut = self.shortcut(out) if hasattr(self, "shortcut") else x
        out = self.conv1(out)
        out = self.conv2(F.relu(self.bn2(out)))
        return out + shortcut


class PreActResNet18(nn.Module):
    """PreAct-ResNet-18 for 32x32 inputs: a 3x3 stem, four stages of two pre-activation
    blocks (64-512 channels), 4x4 average pooling and a linear head (``linear``). Like
    the popular CIFAR code it has no bn-relu after the last stage."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
        cin = 64
        for k, (cout, stride) in enumerate([(64, 1), (128, 2), (256, 2), (512, 2)], start=1):
            setattr(self, f"layer{k}", nn.Sequential(PreActBlock(cin, cout, stride), PreActBlock(cout, cout, 1)))
            cin = cout
        self.linear = nn.Linear(512, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(x)  # (N, 64, 32, 32)
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))  # (N, 512, 4, 4)
        out = F.avg_pool2d(out, 4).view(out.size(0), -1)  # (N, 512)
        return self.linear(out)


def preact_resnet18(num_classes: int = 10) -> nn.Module:
    return PreActResNet18(num_classes)


class WideBasic(nn.Module):
    """The Wide ResNet block (Zagoruyko & Komodakis, 2016) as its popular PyTorch port
    writes it: bn-relu-conv3x3 twice; where the width changes, the pre-activated input
    goes through a bare 1x1 conv (``convShortcut``), else the input is added as it is."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.equal_in_out = cin == cout
        self.convShortcut = None if self.equal_in_out else nn.Conv2d(cin, cout, 1, stride, 0, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.equal_in_out:
            out = self.relu1(self.bn1(x))
        else:
            x = out = self.relu1(self.bn1(x))
        out = self.relu2(self.bn2(self.conv1(out)))
        out = self.conv2(out)
        shortcut = x if self.convShortcut is None else self.convShortcut(x)
        return torch.add(shortcut, out)


class NetworkBlock(nn.Module):
    def __init__(self, n: int, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.layer = nn.Sequential(*[WideBasic(cin if i == 0 else cout, cout, stride if i == 0 else 1)
                                     for i in range(n)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer(x)


class WideResNet(nn.Module):
    """WRN-depth-k for CIFAR: (depth-4)/6 blocks per stage, widths 16k, 32k, 64k; a final
    bn-relu, 8x8 average pooling and a linear head. WRN-28-10 has 36,479,194 parameters
    for 10 classes (36.5M in the paper's Table 2)."""

    def __init__(self, depth: int = 28, widen: int = 10, num_classes: int = 10) -> None:
        super().__init__()
        n = (depth - 4) // 6
        widths = [16, 16 * widen, 32 * widen, 64 * widen]
        self.conv1 = nn.Conv2d(3, widths[0], 3, 1, 1, bias=False)
        self.block1 = NetworkBlock(n, widths[0], widths[1], 1)
        self.block2 = NetworkBlock(n, widths[1], widths[2], 2)
        self.block3 = NetworkBlock(n, widths[2], widths[3], 2)
        self.bn1 = nn.BatchNorm2d(widths[3])
        self.relu = nn.ReLU(inplace=True)
        self.fc = nn.Linear(widths[3], num_classes)
        self.width = widths[3]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.block3(self.block2(self.block1(self.conv1(x))))  # (N, 64k, 8, 8)
        out = self.relu(self.bn1(out))
        out = F.avg_pool2d(out, 8).view(-1, self.width)  # (N, 64k)
        return self.fc(out)


def wide_resnet(depth: int = 28, widen: int = 10, num_classes: int = 10) -> nn.Module:
    return WideResNet(depth, widen, num_classes)


# -- squeeze-and-excitation (Hu et al., 2018) ---------------------------------------------------

class SELayer(nn.Module):
    """Squeeze (global average pool) and excite (FC C -> C/r, relu, FC C/r -> C, sigmoid),
    then scale each channel: the SE module of the paper, with bias-free FCs as in the
    popular PyTorch code."""

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Sequential(nn.Linear(channels, channels // reduction, bias=False), nn.ReLU(inplace=True),
                                nn.Linear(channels // reduction, channels, bias=False), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, _, _ = x.size()
        y = self.avg_pool(x).view(b, c)  # (N, C)
        y = self.fc(y).view(b, c, 1, 1)  # (N, C, 1, 1)
        return x * y.expand_as(x)


class SEBasicBlock(nn.Module):
    """torchvision's basic block with an SE module on the residual branch, before the add."""

    def __init__(self, cin: int, planes: int, stride: int = 1, reduction: int = 16) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.se = SELayer(planes, reduction)
        self.downsample: nn.Module | None = None
        if stride != 1 or cin != planes:
            self.downsample = nn.Sequential(nn.Conv2d(cin, planes, 1, stride, bias=False), nn.BatchNorm2d(planes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.se(self.bn2(self.conv2(out)))
        residual = x if self.downsample is None else self.downsample(x)
        return self.relu(out + residual)


class SEResNet18(nn.Module):
    """SE-ResNet-18: torchvision's ResNet-18 layout (7x7 stem, max-pool, 64-512 channels)
    with SE basic blocks."""

    def __init__(self, num_classes: int = 1000, width: int = 64, reduction: int = 16) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        cin = width
        for s in range(4):
            cout = width * 2**s
            setattr(self, f"layer{s + 1}", nn.Sequential(SEBasicBlock(cin, cout, 2 if s else 1, reduction),
                                                         SEBasicBlock(cout, cout, 1, reduction)))
            cin = cout
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def se_resnet18(num_classes: int = 1000, width: int = 64, reduction: int = 16) -> nn.Module:
    return SEResNet18(num_classes, width, reduction)


# -- U-Net variants ------------------------------------------------------------------------------

class ConvBlock(nn.Module):
    """Two conv3x3(bias)-bn-relu as one nn.Sequential (``conv.0`` ... ``conv.5``)."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv = nn.Sequential(nn.Conv2d(cin, cout, 3, 1, 1, bias=True), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
                                  nn.Conv2d(cout, cout, 3, 1, 1, bias=True), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class UpConv(nn.Module):
    """Nearest 2x up-sampling, then conv3x3(bias)-bn-relu (``up.1`` ... ``up.3``)."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.up = nn.Sequential(nn.Upsample(scale_factor=2), nn.Conv2d(cin, cout, 3, 1, 1, bias=True),
                                nn.BatchNorm2d(cout), nn.ReLU(inplace=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.up(x)


class AttentionGate(nn.Module):
    """The additive attention gate of Oktay et al. (2018): the decoder signal g and the
    skip x are each projected to F_int channels (1x1 conv + bn), summed, relu'd, and
    mapped to one sigmoid coefficient per pixel that scales the skip."""

    def __init__(self, f_g: int, f_l: int, f_int: int) -> None:
        super().__init__()
        self.W_g = nn.Sequential(nn.Conv2d(f_g, f_int, 1, 1, 0, bias=True), nn.BatchNorm2d(f_int))
        self.W_x = nn.Sequential(nn.Conv2d(f_l, f_int, 1, 1, 0, bias=True), nn.BatchNorm2d(f_int))
        self.psi = nn.Sequential(nn.Conv2d(f_int, 1, 1, 1, 0, bias=True), nn.BatchNorm2d(1), nn.Sigmoid())
        self.relu = nn.ReLU(inplace=True)

    def forward(self, g: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        psi = self.relu(self.W_g(g) + self.W_x(x))
        psi = self.psi(psi)  # (N, 1, H, W)
        return x * psi


class AttentionUNet(nn.Module):
    """Attention U-Net (Oktay et al., 2018) as its popular PyTorch code writes it: five
    conv blocks of 64-1024 channels, up-convolutions, an attention gate on every skip,
    concat [gated skip, up-sampled], and a 1x1 head."""

    def __init__(self, in_channels: int = 3, num_classes: int = 1, base: int = 64) -> None:
        super().__init__()
        c = [base * 2**k for k in range(5)]
        self.Maxpool = nn.MaxPool2d(2, 2)
        self.Conv1 = ConvBlock(in_channels, c[0])
        self.Conv2 = ConvBlock(c[0], c[1])
        self.Conv3 = ConvBlock(c[1], c[2])
        self.Conv4 = ConvBlock(c[2], c[3])
        self.Conv5 = ConvBlock(c[3], c[4])
        for k in (5, 4, 3, 2):
            setattr(self, f"Up{k}", UpConv(c[k - 1], c[k - 2]))
            setattr(self, f"Att{k}", AttentionGate(c[k - 2], c[k - 2], c[k - 2] // 2))
            setattr(self, f"Up_conv{k}", ConvBlock(c[k - 1], c[k - 2]))
        self.Conv_1x1 = nn.Conv2d(c[0], num_classes, 1, 1, 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1 = self.Conv1(x)
        x2 = self.Conv2(self.Maxpool(x1))
        x3 = self.Conv3(self.Maxpool(x2))
        x4 = self.Conv4(self.Maxpool(x3))
        d = self.Conv5(self.Maxpool(x4))
        for k, skip in zip((5, 4, 3, 2), (x4, x3, x2, x1), strict=True):
            d = getattr(self, f"Up{k}")(d)
            gated = getattr(self, f"Att{k}")(g=d, x=skip)
            d = getattr(self, f"Up_conv{k}")(torch.cat((gated, d), dim=1))
        return self.Conv_1x1(d)


def attention_unet(in_channels: int = 3, num_classes: int = 1, base: int = 64, **_: object) -> nn.Module:
    return AttentionUNet(in_channels, num_classes, base)


class VGGBlock(nn.Module):
    def __init__(self, cin: int, mid: int, cout: int) -> None:
        super().__init__()
        self.relu = nn.ReLU(inplace=True)
        self.conv1 = nn.Conv2d(cin, mid, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(mid)
        self.conv2 = nn.Conv2d(mid, cout, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x))))))


class NestedUNet(nn.Module):
    """UNet++ (Zhou et al., 2018) as its popular PyTorch code writes it: a grid of VGG
    blocks ``conv{i}_{j}`` (i: depth, j: how many blocks precede it on its level), each
    reading the concat of every earlier block of its level and the bilinearly up-sampled
    block below; filters 32-512; one 1x1 head on ``conv0_4`` (no deep supervision)."""

    def __init__(self, in_channels: int = 3, num_classes: int = 1, base: int = 32) -> None:
        super().__init__()
        f = [base * 2**k for k in range(5)]
        self.pool = nn.MaxPool2d(2, 2)
        self.up = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=True)
        for j in range(5):
            for i in range(5 - j):
                cin = (in_channels if i == 0 else f[i - 1]) if j == 0 else f[i] * j + f[i + 1]
                setattr(self, f"conv{i}_{j}", VGGBlock(cin, f[i], f[i]))
        self.final = nn.Conv2d(f[0], num_classes, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        grid: dict[tuple[int, int], torch.Tensor] = {}
        for i in range(5):
            grid[i, 0] = getattr(self, f"conv{i}_0")(x if i == 0 else self.pool(grid[i - 1, 0]))
            for j in range(1, i + 1):  # the diagonal ending at level 0 of column i
                r = i - j
                cat = torch.cat([*(grid[r, k] for k in range(j)), self.up(grid[r + 1, j - 1])], 1)
                grid[r, j] = getattr(self, f"conv{r}_{j}")(cat)
        return self.final(grid[0, 4])


def nested_unet(in_channels: int = 3, num_classes: int = 1, base: int = 32, **_: object) -> nn.Module:
    return NestedUNet(in_channels, num_classes, base)


# -- the tutorials' nn.Sequential blocks -------------------------------------------------------

class QuickstartNet(nn.Module):
    """The network of PyTorch's quickstart tutorial (FashionMNIST): a flatten and an
    nn.Sequential of linear-relu layers (``linear_relu_stack.0``, ``.2``, ``.4``)."""

    def __init__(self, hidden: int = 512, num_classes: int = 10) -> None:
        super().__init__()
        self.flatten = nn.Flatten()
        self.linear_relu_stack = nn.Sequential(nn.Linear(28 * 28, hidden), nn.ReLU(), nn.Linear(hidden, hidden),
                                               nn.ReLU(), nn.Linear(hidden, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear_relu_stack(self.flatten(x))


def quickstart(hidden: int = 512, num_classes: int = 10) -> nn.Module:
    return QuickstartNet(hidden, num_classes)


class DoubleConv(nn.Module):
    """(conv3x3 => bn => relu) * 2 as one nn.Sequential: ``double_conv.0`` ... ``.5``."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.double_conv = nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout),
                                         nn.ReLU(inplace=True), nn.Conv2d(cout, cout, 3, padding=1, bias=False),
                                         nn.BatchNorm2d(cout), nn.ReLU(inplace=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.double_conv(x)


class Down(nn.Module):
    """Max-pool then double conv, one nn.Sequential: ``maxpool_conv.1.double_conv.0``."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.maxpool_conv = nn.Sequential(nn.MaxPool2d(2), DoubleConv(cin, cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.maxpool_conv(x)


class Up(nn.Module):
    """2x2 transposed conv halving the channels, pad to the skip's size, concat [skip, up],
    double conv."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.up = nn.ConvTranspose2d(cin, cin // 2, kernel_size=2, stride=2)
        self.conv = DoubleConv(cin, cout)

    def forward(self, x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
        x1 = self.up(x1)
        dy, dx = x2.size(2) - x1.size(2), x2.size(3) - x1.size(3)
        x1 = F.pad(x1, [dx // 2, dx - dx // 2, dy // 2, dy - dy // 2])
        return self.conv(torch.cat([x2, x1], dim=1))


class TutorialUNet(nn.Module):
    """The U-Net of the most used PyTorch U-Net tutorial code (transposed-conv variant):
    ``inc``, ``down1``-``down4``, ``up1``-``up4`` and ``outc``, its double convs
    nn.Sequentials."""

    def __init__(self, in_channels: int = 3, num_classes: int = 2, base: int = 64) -> None:
        super().__init__()
        c = [base * 2**k for k in range(5)]
        self.inc = DoubleConv(in_channels, c[0])
        for k in range(1, 5):
            setattr(self, f"down{k}", Down(c[k - 1], c[k]))
        for k in range(1, 5):
            setattr(self, f"up{k}", Up(c[5 - k], c[4 - k]))
        self.outc = nn.Module()
        self.outc.conv = nn.Conv2d(c[0], num_classes, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = [self.inc(x)]
        for k in range(1, 5):
            skips.append(getattr(self, f"down{k}")(skips[-1]))
        y = skips.pop()
        for k in range(1, 5):
            y = getattr(self, f"up{k}")(y, skips.pop())
        return self.outc.conv(y)


def unet_tutorial(in_channels: int = 3, num_classes: int = 2, base: int = 64, **_: object) -> nn.Module:
    return TutorialUNet(in_channels, num_classes, base)


REFERENCES.update({"preact_resnet18": preact_resnet18, "wide_resnet": wide_resnet, "se_resnet18": se_resnet18,
                   "attention_unet": attention_unet, "nested_unet": nested_unet, "quickstart": quickstart,
                   "unet_tutorial": unet_tutorial})
