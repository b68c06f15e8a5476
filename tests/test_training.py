"""Training end to end on tiny data: outputs, checkpoints, resume, early stopping, schedulers, EMA."""

import json

import pytest
import torch

from glyphkit import rundir as ckpt
from glyphkit.training import EarlyStopping, Trainer


def _train(config, data, run_dir, **kw):
    trainer = Trainer(config, data, run_dir, progress=False, log=lambda *_: None, **kw)
    trainer.fit()
    return trainer


def test_fit_writes_the_run_folder(tiny_config, tiny_data, tmp_path):
    trainer = _train(tiny_config, tiny_data, tmp_path / "run")
    for name in ("best_model.pth", "latest_checkpoint.pth", "config.json", "history.json"):
        assert (tmp_path / "run" / name).is_file(), name
    history = json.loads((tmp_path / "run" / "history.json").read_text())
    assert history["epoch"] == [1, 2] and len(history["val_acc"]) == 2
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["num_classes"] == 20 and saved["classes"][10] == "A" and saved["norm_std"] > 0
    assert trainer.epoch == 2


def test_training_learns_the_tiny_set(tiny_config, tiny_data, tmp_path):
    trainer = _train(tiny_config.replace(epochs=8), tiny_data, tmp_path / "run")
    _, acc = trainer.evaluate(tiny_data.test_images, tiny_data.test_labels)
    assert acc > 0.5  # 20 classes: chance is 0.05


def test_checkpoint_round_trip_with_weights_only(tiny_config, tiny_data, tmp_path):
    trainer = _train(tiny_config.replace(ema_decay=0.9, epochs=1), tiny_data, tmp_path / "run")
    path = tmp_path / "run" / "best_model.pth"
    raw = torch.load(path, weights_only=True)  # must not need pickle of any glyphkit class
    assert set(raw) >= {"model", "optimizer", "lr_scheduler", "epoch", "config", "history", "rng", "ema"}
    state = ckpt.load_checkpoint(path)
    for k, v in trainer.model.state_dict().items():
        assert torch.equal(state["model"][k], v), k
    ema_weights = ckpt.eval_state_dict(state)
    assert set(ema_weights) == set(trainer.model.state_dict())


@pytest.mark.parametrize("scheduler", ["cosine", "onecycle", "plateau"])
def test_resume_gives_the_same_result_as_one_run(tiny_config, tiny_data, tmp_path, scheduler):
    config = tiny_config.replace(epochs=3, scheduler=scheduler, ema_decay=0.9)
    straight = _train(config, tiny_data, tmp_path / "a")

    class Killed(Exception):
        pass

    def kill_after_epoch_2(trainer):
        if trainer.epoch == 2:
            raise Killed  # as if the process died right after epoch 2's checkpoint

    with pytest.raises(Killed):
        _train(config, tiny_data, tmp_path / "b", on_epoch_end=kill_after_epoch_2)
    resumed = Trainer.resume(tmp_path / "b", tiny_data, progress=False, log=lambda *_: None)
    assert resumed.epoch == 2
    resumed.fit()
    for k, v in straight.model.state_dict().items():
        assert torch.equal(resumed.model.state_dict()[k], v), k
    a, b = straight.history.to_dict(), resumed.history.to_dict()
    for key in a:
        if key != "epoch_time":
            assert a[key] == b[key], key


def test_onecycle_resume_to_more_epochs_keeps_going(tiny_config, tiny_data, tmp_path):
    _train(tiny_config.replace(epochs=1, scheduler="onecycle"), tiny_data, tmp_path / "r")
    resumed = Trainer.resume(tmp_path / "r", tiny_data, epochs=2, progress=False, log=lambda *_: None)
    resumed.fit()
    assert resumed.history.epoch == [1, 2]


def test_early_stopping_counts_epochs_without_improvement():
    stop = EarlyStopping(patience=2)
    assert stop.step(1.0, 1) and not stop.step(1.0, 2) and not stop.should_stop
    assert not stop.step(1.5, 3) and stop.should_stop and stop.best_epoch == 1


def test_early_stopping_stops_and_restores_best(tiny_config, tiny_data, tmp_path, monkeypatch):
    losses = iter([1.0, 0.5, 0.9, 0.8, 0.7, 0.6])
    monkeypatch.setattr(Trainer, "evaluate", lambda self, *a, **k: (next(losses), 0.5))
    trainer = _train(tiny_config.replace(epochs=6, early_stopping_patience=2), tiny_data, tmp_path / "run")
    assert trainer.history.epoch == [1, 2, 3, 4] and trainer.early_stopping.best_epoch == 2
    best = ckpt.load_checkpoint(tmp_path / "run" / "best_model.pth")
    assert best["epoch"] == 2
    for k, v in trainer.model.state_dict().items():
        assert torch.equal(best["model"][k], v), k


def test_monitor_val_acc_keeps_the_most_accurate_epoch(tiny_config, tiny_data, tmp_path, monkeypatch):
    # The validation loss rises while accuracy still improves (as with label smoothing): by loss the best epoch
    # is 1, by accuracy it is 3, and best_model.pth must hold that one.
    scores = iter([(0.5, 0.80), (0.6, 0.85), (0.7, 0.90), (0.8, 0.88)])
    monkeypatch.setattr(Trainer, "evaluate", lambda self, *a, **k: next(scores))
    trainer = _train(tiny_config.replace(epochs=4, monitor="val_acc"), tiny_data, tmp_path / "run")
    assert trainer.early_stopping.best_epoch == 3
    assert ckpt.load_checkpoint(tmp_path / "run" / "best_model.pth")["epoch"] == 3
    assert trainer.best_summary() == "best validation accuracy 0.9000 at epoch 3"


def test_monitor_must_be_known(tiny_config):
    from glyphkit.config import ConfigError

    with pytest.raises(ConfigError, match="monitor must be one of val_loss, val_acc"):
        tiny_config.replace(monitor="accuracy").validate()


def test_same_seed_same_result(tiny_config, tiny_data, tmp_path):
    a = _train(tiny_config.replace(epochs=1), tiny_data, tmp_path / "a")
    b = _train(tiny_config.replace(epochs=1), tiny_data, tmp_path / "b")
    c = _train(tiny_config.replace(epochs=1, seed=7), tiny_data, tmp_path / "c")
    w = "classifier.2.weight"
    assert torch.equal(a.model.state_dict()[w], b.model.state_dict()[w])
    assert not torch.equal(a.model.state_dict()[w], c.model.state_dict()[w])
