"""Reconstruction: the consumers' least-squares refit recovers the unpruned output where the kept channels span it."""

import torch
from torch import nn

from ibprune_lib.counting import count
from ibprune_lib.pruning import prune
from ibprune_lib.pruning.reconstruct import reconstruct_consumers, ridge_fit


class Redundant(nn.Module):
    """conv1 makes 8 channels of which 4..7 are positive multiples (larger) of 0..3, whose filters have unit norm,
    so after the ReLU any 4 channels, one of each pair, span all 8 (conv2's output is exactly a conv of them), and
    L1-norm keeps the copies 4..7."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(8)
        self.conv2 = nn.Conv2d(8, 6, 3, padding=1, bias=True)
        self.bn2 = nn.BatchNorm2d(6)
        self.head = nn.Linear(6, 3)
        with torch.no_grad():
            self.conv1.weight[:4] /= self.conv1.weight[:4].abs().sum((1, 2, 3), keepdim=True)
            self.conv1.weight[4:] = self.conv1.weight[:4] * torch.tensor([2.0, 2.5, 3.0, 1.5]).view(4, 1, 1, 1)
            self.bn1.weight[4:] = self.bn1.weight[:4]
            self.bn1.bias.zero_()  # BN then multiplies each copy by its scale: a positive multiple survives ReLU

    def forward(self, x):
        x = torch.relu(self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x))))))
        return self.head(x.mean((2, 3)))


def test_the_refit_recovers_the_unpruned_output_when_the_kept_channels_span_it():
    model = Redundant().eval()
    images = torch.randn(16, 3, 8, 8)
    plain = prune(model, images, method="l1", keep_counts=[4, 6], skip_first=0, progress=False)
    refit = prune(model, images, method="l1", keep_counts=[4, 6], skip_first=0, progress=False, reconstruct=True)
    assert plain.report["layers"][0]["kept_indices"] == refit.report["layers"][0]["kept_indices"] == [4, 5, 6, 7]
    with torch.no_grad():
        target = model.conv2(torch.relu(model.bn1(model.conv1(images))))
        got = refit.model.conv2(torch.relu(refit.model.bn1(refit.model.conv1(images))))
        before = plain.model.conv2(torch.relu(plain.model.bn1(plain.model.conv1(images))))
    assert (got - target).abs().max() < 1e-4 < (before - target).abs().max()
    assert refit.report["reconstruction"]["conv2"]["error_after"] < 1e-4
    assert refit.report["settings"]["reconstruct"] is True and "reconstruction" not in plain.report
    assert count(refit.model, (3, 8, 8)) == count(plain.model, (3, 8, 8))  # the counts never change


def test_reconstruction_is_exact_on_any_spanning_choice_and_leaves_the_original_alone():
    model = Redundant().eval()
    images = torch.randn(16, 3, 8, 8)
    original = {k: v.clone() for k, v in model.state_dict().items()}
    for kept in ([0, 1, 2, 3], [4, 1, 6, 3]):
        pruned = prune(model, images, method="l1", keep_counts=[4, 6], skip_first=0, progress=False).model
        with torch.no_grad():  # replace the surgery's choice by ``kept``: slice conv1, bn1 and conv2 again
            pruned.conv1.weight.copy_(model.conv1.weight[kept])
            for name in ("weight", "bias", "running_mean", "running_var"):
                getattr(pruned.bn1, name).copy_(getattr(model.bn1, name)[kept])
            pruned.conv2.weight.copy_(model.conv2.weight[:, kept])
        report = reconstruct_consumers(model, pruned, images, ["conv2"])
        assert report["conv2"]["error_after"] < 1e-4 < report["conv2"]["error_before"]
    assert all(torch.equal(original[k], v) for k, v in model.state_dict().items())


def test_the_ridge_fit_solves_the_least_squares_problem_in_chunks():
    torch.manual_seed(1)
    layer = nn.Linear(5, 3)
    inputs = torch.randn(40, 5)
    outputs = inputs @ torch.randn(5, 3) + torch.tensor([0.5, -1.0, 2.0])
    W = ridge_fit(layer, inputs, outputs, ridge=0.0, chunk=7)
    assert torch.allclose(W[-1], torch.tensor([0.5, -1.0, 2.0]), atol=1e-4)  # the bias, last
    assert torch.allclose(torch.cat([inputs, torch.ones(40, 1)], 1) @ W, outputs, atol=1e-4)
