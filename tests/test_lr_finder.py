"""The LR range test: suggestions on known curves, state restored exactly, usable from a Trainer."""

import math

import pytest
import torch

from glyphkit.lr_finder import find_lr, load_lr_choice, lr_range_test, save_lr_choice, suggest_steep, suggest_valley
from glyphkit.training import Trainer


def test_suggestions_on_a_known_curve():
    lrs = [10 ** (-7 + 8 * i / 99) for i in range(100)]
    # Flat, then falling fastest around 1e-3, bottoming out near 1e-1, then diverging.
    losses = [2.0 - 1.5 / (1 + math.exp(-(math.log10(lr) + 3) * 3)) + (max(0, math.log10(lr) + 1)) ** 2 for lr in lrs]
    steep = suggest_steep(lrs, losses)
    valley = suggest_valley(lrs, losses)
    assert 3e-4 < steep < 3e-3
    lowest = lrs[losses.index(min(losses))]
    assert 1e-5 < valley < lowest  # inside the falling stretch, before the minimum


def _log_curve(n: int, flat_noise: list[float]) -> tuple[list[float], list[float]]:
    """n LRs from 1e-7 to 10; the loss is flat (plus the given noise) until 1e-3, falls until 1e-1, then rises."""
    lrs = [10 ** (-7 + 8 * i / (n - 1)) for i in range(n)]
    losses = []
    for i, lr in enumerate(lrs):
        x = math.log10(lr)
        losses.append(
            4.0 + flat_noise[i % len(flat_noise)] if x < -3 else 4.0 - (x + 3) if x <= -1 else 2.0 + 3 * (x + 1)
        )
    return lrs, losses


def test_valley_leaves_out_the_noisy_first_tenth():
    """A falling run of noise at the very start must not pull the suggestion back into the flat region: the
    longest falling stretch is counted back from its end, so early points that fall would lengthen it."""
    lrs = [10 ** (-7 + 8 * i / 99) for i in range(100)]
    losses = [6.0 - 0.1 * i for i in range(10)]  # the first tenth falls (noise at tiny rates can)
    losses += [4.0] * 70  # flat
    losses += [4.0 - 0.2 * k for k in range(1, 11)]  # the real fall: points 80..89
    losses += [2.0 + 0.5 * k for k in range(1, 11)]  # divergence
    valley = suggest_valley(lrs, losses)
    assert lrs[80] <= valley <= lrs[89]


def test_a_short_test_suggests_a_tenth_of_the_minimum(tmp_path):
    """With 20 points valley follows the noise of the flat start; the suggestion is then the LR of the lowest
    smoothed loss over ten, for a curve run through the real range test."""
    _, raw = _log_curve(20, [0.0, -0.15, 0.1, -0.3, 0.2])
    model, optimizer, step_fn = _scripted_losses(raw)
    batch = [(torch.randn(2, 4), torch.zeros(2, dtype=torch.long))]
    result = lr_range_test(model, optimizer, batch, num_steps=20, step_fn=step_fn, progress=False)
    smoothed = _smoothed(raw, beta=0.98 ** (100 / 20))
    assert result.losses == pytest.approx(smoothed)
    lowest = 10 ** (-7 + 8 * smoothed.index(min(smoothed)) / 19)
    assert result.suggestion == pytest.approx(lowest / 10)
    assert 1e-3 <= result.suggestion <= 1e-1


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


def test_range_test_stops_at_a_non_finite_loss():
    model = torch.nn.Linear(4, 3)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = torch.randn(32, 4) * 100, torch.randint(0, 3, (32,))
    result = lr_range_test(model, optimizer, [(x, y)], num_steps=100, end_lr=1e4, progress=False)
    assert len(result.lrs) < 100
    assert all(math.isfinite(loss) for loss in result.losses)  # the non-finite step itself is not recorded


def _scripted_losses(values: list[float]):
    """A step_fn whose loss is the next of `values` (finite), tied to the model so backward works."""
    model = torch.nn.Linear(4, 3)
    script = iter(values)
    step_fn = lambda x, y: model(x).sum() * 0 + next(script)  # noqa: E731
    return model, torch.optim.SGD(model.parameters(), lr=0.1), step_fn


def _smoothed(values: list[float], beta: float = 0.98) -> list[float]:
    """The range test's documented smoothing: an exponential moving average with Adam's bias correction."""
    avg, out = 0.0, []
    for i, v in enumerate(values):
        avg = beta * avg + (1 - beta) * v
        out.append(avg / (1 - beta ** (i + 1)))
    return out


def test_range_test_stops_when_the_smoothed_loss_passes_4x_its_best():
    """Finite losses that grow: the test stops at the first step whose smoothed loss exceeds 4x the lowest."""
    values = [1.0] * 20 + [1.0 * 1.5**k for k in range(1, 80)]
    batch = [(torch.randn(2, 4), torch.zeros(2, dtype=torch.long))]
    model, optimizer, step_fn = _scripted_losses(values)
    result = lr_range_test(model, optimizer, batch, num_steps=len(values), step_fn=step_fn, progress=False)
    smoothed = _smoothed(values, beta=0.98 ** (100 / len(values)))  # README: 0.98 per 100 steps
    first_over = next(i for i, s in enumerate(smoothed) if s > 4 * min(smoothed[: i + 1]))
    assert 20 < first_over < len(values) - 1
    assert len(result.lrs) == first_over + 1  # it stops at that step (recorded), not before, not at the end
    assert result.losses == pytest.approx(smoothed[: first_over + 1])
    # Growth that stays under 4x the best never stops the test early.
    mild = [1.0] * 20 + [3.5] * 80
    model, optimizer, step_fn = _scripted_losses(mild)
    result = lr_range_test(model, optimizer, batch, num_steps=len(mild), step_fn=step_fn, progress=False)
    assert len(result.lrs) == len(mild)


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
    save_lr_choice(tmp_path, 2e-3, 2e-3, "suggestion", "test")
    assert load_lr_choice(tmp_path) == {"lr": 2e-3, "choice": "suggestion", "suggestion": 2e-3, "source": "test"}
    with pytest.raises(ValueError, match="choice"):
        save_lr_choice(tmp_path, 2e-3, 2e-3, True, "test")  # the old yes/no `accepted`: no longer a record


@pytest.mark.parametrize(
    "record, said",
    [
        (
            {"lr": 5e-4, "choice": "slider", "suggestion": 2e-3, "source": "notebook:accept"},
            "learning rate 5.00e-04 from {path} (picked on 02_lr_finder's slider instead of the suggestion; suggestion "
            "2.00e-03; source notebook:accept)",
        ),
        (
            {"lr": 1e-3, "choice": "rejected", "suggestion": 2e-3, "source": "notebook:reject"},
            "(the suggestion rejected, the run's own rate kept; suggestion 2.00e-03; source notebook:reject)",
        ),
        (
            {"lr": 2e-3, "suggestion": 2e-3, "accepted": True, "source": "cli"},  # lr.json as glyphkit wrote it before
            "learning rate 2.00e-03 from {path} (the LR finder's suggestion; suggestion 2.00e-03; source cli)",
        ),
        (
            {"lr": 7e-4, "suggestion": 2e-3, "accepted": False, "source": "notebook:accept"},
            "(chosen instead of the suggestion; suggestion 2.00e-03; source notebook:accept)",
        ),
    ],
    ids=["slider", "rejected", "old-accepted", "old-not-accepted"],
)
def test_training_says_how_the_saved_rate_was_chosen(tmp_path, record, said):
    import json

    from glyphkit.config import Config
    from glyphkit.workflows import choose_lr

    (tmp_path / "lr.json").write_text(json.dumps(record))
    lines = []
    assert choose_lr(Config(output_dir=str(tmp_path)), log=lines.append).lr == record["lr"]
    assert said.format(path=tmp_path / "lr.json") in lines[0]
