"""The LR range test: suggestions on known curves, state restored exactly, usable from a Trainer."""

import math

import torch

from glyphkit.lr_finder import (find_lr, load_lr_choice, lr_range_test, save_lr_choice, suggest_steep,
                                suggest_valley)
from glyphkit.training import Trainer


def test_suggestions_on_a_known_curve():
    lrs = [10 ** (-7 + 8 * i / 99) for i in range(100)]
    # Flat, then falling fastest around 1e-3, bottoming out near 1e-1, then diverging.
    losses = [2.0 - 1.5 / (1 + math.exp(-(math.log10(lr) + 3) * 3)) + (max(0, math.log10(lr) + 1)) ** 2
              for lr in lrs]
    steep = suggest_steep(lrs, losses)
    valley = suggest_valley(lrs, losses)
    assert 3e-4 < steep < 3e-3
    lowest = lrs[losses.index(min(losses))]
    assert 1e-5 < valley < lowest  # inside the falling stretch, before the minimum


def test_range_test_restores_model_optimizer_and_rng():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x, y = torch.randn(64, 4), torch.randint(0, 3, (64,))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rng = torch.get_rng_state()
    result = lr_range_test(model, optimizer, [(x, y)] * 50, num_steps=50, progress=False)
    assert len(result.lrs) >= 10 and result.lrs[0] == 1e-7
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert optimizer.state_dict()["state"] == {} and optimizer.param_groups[0]["lr"] == 1e-3
    assert torch.equal(torch.get_rng_state(), rng)


def test_range_test_stops_when_the_loss_diverges():
    model = torch.nn.Linear(4, 3)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = torch.randn(32, 4) * 100, torch.randint(0, 3, (32,))
    result = lr_range_test(model, optimizer, [(x, y)], num_steps=100, end_lr=1e4, progress=False)
    assert len(result.lrs) < 100


def test_find_lr_on_a_trainer_changes_nothing(tiny_config, tiny_data, tmp_path):
    trainer = Trainer(tiny_config, tiny_data, tmp_path, progress=False)
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    gen = trainer.generator.get_state()
    result = find_lr(trainer, num_steps=30, progress=False)
    assert result.suggestion is not None and 1e-7 <= result.suggestion <= 10
    assert all(torch.equal(before[k], v) for k, v in trainer.model.state_dict().items())
    assert torch.equal(trainer.generator.get_state(), gen)


def test_lr_choice_round_trip(tmp_path):
    assert load_lr_choice(tmp_path) is None
    save_lr_choice(tmp_path, 2e-3, 2e-3, True, "test")
    assert load_lr_choice(tmp_path) == {"lr": 2e-3, "suggestion": 2e-3, "accepted": True, "source": "test"}
