"""Small branched models shared by the DAG tests (residual Add, channel Concat)."""

import torch
import torch.nn.functional as F
from torch import nn


class ResidualBlock(nn.Module):
    """conv-bn-relu-conv-bn + skip, relu; then pool and a linear readout."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(1, 4, 3, padding=1)
        self.conv1 = nn.Conv2d(4, 4, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(4)
        self.conv2 = nn.Conv2d(4, 4, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(4)
        self.fc = nn.Linear(4 * 3 * 3, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.stem(x))
        y = F.relu(self.bn1(self.conv1(h)))
        y = self.bn2(self.conv2(y))
        y = F.relu(y + h)
        y = F.max_pool2d(y, 2)
        return self.fc(torch.flatten(y, 1))


class Inception(nn.Module):
    """Two relu branches concatenated on channels, then a 1x1 conv and a readout."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(1, 2, 3, padding=1)
        self.b = nn.Conv2d(1, 3, 1)
        self.mix = nn.Conv2d(5, 2, 1)
        self.fc = nn.Linear(2 * 6 * 6, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.cat([F.relu(self.a(x)), F.relu(self.b(x))], dim=1)
        return self.fc(F.relu(self.mix(y)).flatten(1))


def trained_like(model: nn.Module) -> nn.Module:
    torch.manual_seed(0)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 1.5)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.1, 0.1)
    return model.eval()
