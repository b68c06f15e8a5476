"""Training end to end on tiny data: outputs, checkpoints, resume, early stopping, schedulers, EMA."""

import json

import pytest
import torch

from glyphkit import rundir as ckpt
from glyphkit.models import build_model
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


@pytest.mark.slow
def test_training_learns_the_tiny_set(tiny_config, tiny_data, tmp_path):
    trainer = _train(tiny_config.replace(epochs=8), tiny_data, tmp_path / "run")
    _, acc = trainer.evaluate(tiny_data.test_images, tiny_data.test_labels)
    assert acc > 0.5  # 20 classes: chance is 0.05


def test_checkpoint_round_trip_with_weights_only(one_thread, tiny_data, tmp_path):
    """best_model.pth, read with weights_only into a freshly built network with other weights, gives back the
    weights (trained and EMA) the trainer held when it saved epoch 1, and the same outputs."""
    saved = {}

    def keep_weights(trainer):  # after epoch 1's checkpoints: the weights the file must hold, copied
        saved["model"] = {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}
        saved["ema"] = {k: v.detach().clone() for k, v in trainer.eval_model.state_dict().items()}

    _train(one_thread.replace(ema_decay=0.9, epochs=1), tiny_data, tmp_path / "run", on_epoch_end=keep_weights)
    path = tmp_path / "run" / "best_model.pth"
    raw = torch.load(path, weights_only=True)  # must not need pickle of any glyphkit class
    assert set(raw) >= {"model", "optimizer", "lr_scheduler", "epoch", "config", "history", "rng", "ema"}
    state = ckpt.load_checkpoint(path)
    for key, weights in (("model", state["model"]), ("ema", ckpt.eval_state_dict(state))):
        torch.manual_seed(1234)  # not the run's seed: the fresh network starts from other weights
        fresh = build_model(ckpt.checkpoint_config(state)).eval()
        floats = [k for k, v in saved[key].items() if v.is_floating_point()]
        assert not all(torch.equal(fresh.state_dict()[k], saved[key][k]) for k in floats), key
        fresh.load_state_dict(weights)
        for k, v in saved[key].items():
            assert torch.equal(fresh.state_dict()[k], v), (key, k)
        reference = build_model(ckpt.checkpoint_config(state)).eval()
        reference.load_state_dict(saved[key])
        x = torch.randn(3, 1, 28, 28, generator=torch.Generator().manual_seed(0))
        with torch.no_grad():
            assert torch.equal(fresh(x), reference(x)), key
    assert not all(torch.equal(saved["model"][k], saved["ema"][k]) for k in floats)  # EMA really differs


def _keep_weights_of_each_epoch(into: dict[int, dict[str, torch.Tensor]]):
    """An on_epoch_end callback that copies the model's weights as each epoch ends, before fit() swaps in the
    best epoch's."""

    def keep(trainer) -> None:
        into[trainer.epoch] = {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}

    return keep


def _same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.slow
@pytest.mark.parametrize("scheduler", ["cosine", "onecycle", "plateau"])
def test_resume_gives_the_same_result_as_one_run(tiny_config, tiny_data, tmp_path, scheduler):
    """Killed after epoch 2 and resumed, a run trains epoch 3 to the same weights and files as a run never stopped.

    What is compared is epoch 3's work: the weights as epoch 3 ends and the checkpoint written then. The models
    fit() leaves behind are the best epoch's, which may be one saved before the kill, so comparing those alone
    could pass whatever the resumed epoch did."""
    config = tiny_config.replace(epochs=3, scheduler=scheduler, ema_decay=0.9)
    straight_weights, resumed_weights = {}, {}
    straight = _train(config, tiny_data, tmp_path / "a", on_epoch_end=_keep_weights_of_each_epoch(straight_weights))
    with pytest.raises(Killed):
        _train(config, tiny_data, tmp_path / "b", on_epoch_end=_stop_after(2))
    resumed = Trainer.resume(
        tmp_path / "b",
        tiny_data,
        progress=False,
        log=lambda *_: None,
        on_epoch_end=_keep_weights_of_each_epoch(resumed_weights),
    )
    assert resumed.epoch == 2
    resumed.fit()
    assert list(resumed_weights) == [3]  # the resumed trainer trained epoch 3, and only it
    assert not _same_weights(straight_weights[2], straight_weights[3])  # epoch 3 changes the weights
    assert _same_weights(resumed_weights[3], straight_weights[3])
    a, b = (ckpt.load_checkpoint(tmp_path / run / ckpt.LATEST) for run in ("a", "b"))
    assert a["epoch"] == b["epoch"] == 3
    assert _same_weights(a["model"], b["model"]) and _same_weights(a["ema"], b["ema"])
    assert _same_weights(b["model"], resumed_weights[3])  # the file holds epoch 3's weights, not older ones
    history_a, history_b = straight.history.to_dict(), resumed.history.to_dict()
    assert history_a["epoch"] == history_b["epoch"] == [1, 2, 3]
    for key in history_a:
        if key != "epoch_time":
            assert history_a[key] == history_b[key], key


@pytest.fixture
def one_thread(tiny_config):
    """tiny_config on one torch thread (quicker on a shared CPU); torch's thread count is restored afterwards."""
    threads = torch.get_num_threads()
    yield tiny_config.replace(num_threads=1)
    torch.set_num_threads(threads)


def _lrs_of_each_step(trainer) -> list[float]:
    """The learning rate every optimizer step of `trainer` will use, filled in as it trains."""
    used = []
    trainer.optimizer.register_step_pre_hook(lambda opt, args, kwargs: used.append(opt.param_groups[0]["lr"]))
    return used


class Killed(Exception):
    """As if the process died right after an epoch's checkpoint."""


def _stop_after(epoch: int):
    def stop(trainer):
        if trainer.epoch == epoch:
            raise Killed

    return stop


def _killed(trainer):
    raise Killed


def _onecycle_resumed(config, data, run_dir, *, planned: int, stop_after: int, extend_to: int):
    """A OneCycle run planned for `planned` epochs, stopped after `stop_after`, resumed with --epochs `extend_to`:
    (the learning rate it stopped at, read from the checkpoint file; the rates of each step after the resume)."""
    try:
        _train(
            config.replace(epochs=planned, scheduler="onecycle"), data, run_dir, on_epoch_end=_stop_after(stop_after)
        )
    except Killed:
        pass
    stopped_at = torch.load(run_dir / ckpt.LATEST, weights_only=True)["optimizer"]["param_groups"][0]["lr"]
    resumed = Trainer.resume(run_dir, data, epochs=extend_to, progress=False, log=lambda *_: None)
    used = _lrs_of_each_step(resumed)
    resumed.fit()
    assert resumed.history.epoch == list(range(1, extend_to + 1))
    assert len(used) == (extend_to - stop_after) * resumed.steps_per_epoch
    return stopped_at, used


FINAL = 1 / 25 / 1e3  # OneCycle's final rate over its peak: 1 / div_factor (25) / final_div_factor (1e3)


def test_onecycle_resume_to_more_epochs_keeps_going(one_thread, tiny_data, tmp_path):
    """A finished 1-epoch cycle extended to 3: the added epochs train at the cycle's final rate, never back up."""
    stopped_at, used = _onecycle_resumed(one_thread, tiny_data, tmp_path / "r", planned=1, stop_after=1, extend_to=3)
    assert all(lr <= stopped_at for lr in used), "the rate climbed above where the run stopped"
    assert used == pytest.approx([one_thread.lr * FINAL] * len(used), rel=1e-6)


@pytest.mark.slow
def test_onecycle_stopped_mid_cycle_and_extended_never_climbs(one_thread, tiny_data, tmp_path):
    """Planned 3 epochs, stopped after 1 (near the peak), resumed with --epochs 4: anneals from where it stopped."""
    stopped_at, used = _onecycle_resumed(one_thread, tiny_data, tmp_path / "r", planned=3, stop_after=1, extend_to=4)
    assert stopped_at > one_thread.lr / 2  # stopped early in the cycle, near its peak
    assert used[0] == pytest.approx(stopped_at)
    assert all(lr <= stopped_at * (1 + 1e-9) for lr in used), "the rate climbed above where the run stopped"
    assert all(b < a for a, b in zip(used, used[1:])), "the rate must fall at every step"
    assert used[-1] == pytest.approx(one_thread.lr * FINAL, rel=1e-6)


@pytest.mark.slow
def test_onecycle_extended_then_stopped_resumes_exactly(one_thread, tiny_data, tmp_path):
    """The extended schedule is saved with the run: stopping the extension and resuming it (no --epochs) gives
    the rates of an extension never stopped."""
    config, quiet = one_thread.replace(epochs=3, scheduler="onecycle"), dict(progress=False, log=lambda *_: None)
    for run in ("a", "b"):
        with pytest.raises(Killed):
            _train(config, tiny_data, tmp_path / run, on_epoch_end=_stop_after(1))
    straight = Trainer.resume(tmp_path / "a", tiny_data, epochs=4, **quiet)
    straight_lrs = _lrs_of_each_step(straight)
    straight.fit()
    first = Trainer.resume(tmp_path / "b", tiny_data, epochs=4, on_epoch_end=_stop_after(2), **quiet)
    lrs = _lrs_of_each_step(first)
    with pytest.raises(Killed):
        first.fit()
    second = Trainer.resume(tmp_path / "b", tiny_data, **quiet)
    lrs_after_second_resume = _lrs_of_each_step(second)
    second.fit()
    assert len(straight_lrs) == 3 * second.steps_per_epoch and len(set(straight_lrs)) == len(straight_lrs)
    assert lrs + lrs_after_second_resume == pytest.approx(straight_lrs, rel=1e-12)


@pytest.mark.slow
def test_onecycle_stopped_before_its_first_step_and_extended_runs_the_whole_longer_cycle(
    one_thread, tiny_data, tmp_path, monkeypatch
):
    config, quiet = one_thread.replace(epochs=1, scheduler="onecycle"), dict(progress=False, log=lambda *_: None)
    fresh = Trainer(config.replace(epochs=3), tiny_data, tmp_path / "fresh", **quiet)
    fresh_lrs = _lrs_of_each_step(fresh)
    fresh.fit()
    with monkeypatch.context() as m:  # killed during epoch 1: only the epoch-0 checkpoint exists
        m.setattr(Trainer, "train_one_epoch", _killed)
        with pytest.raises(Killed):
            _train(config, tiny_data, tmp_path / "r")
    resumed = Trainer.resume(tmp_path / "r", tiny_data, epochs=3, **quiet)
    lrs = _lrs_of_each_step(resumed)
    resumed.fit()
    assert max(fresh_lrs) == pytest.approx(one_thread.lr)  # the warm-up reaches the peak
    assert lrs == pytest.approx(fresh_lrs, rel=1e-12)


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


@pytest.mark.slow
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


def _record_training_inputs(trainer, seen: list):
    """Append (epoch being trained, input side, channels_last) for every batch the training network sees."""

    def hook(module, args):
        if module.training:
            x = args[0]
            seen.append((trainer.epoch + 1, x.shape[-1], x.is_contiguous(memory_format=torch.channels_last)))

    trainer.model.register_forward_pre_hook(hook)


@pytest.mark.slow
def test_progressive_resizing_trains_the_first_half_on_shrunk_glyphs(tiny_config, tiny_data, tmp_path):
    """progressive_size 20 over 4 epochs: epochs 1-2 see 20x20 batches, 3-4 the full 28x28, all channels_last; the
    log says so at the start and estimates both kinds of epoch (batch 16: enough steps for an estimate)."""
    lines, seen = [], []
    config = tiny_config.replace(epochs=4, batch_size=16, progressive_size=20, channels_last=True)
    trainer = Trainer(config, tiny_data, tmp_path / "run", progress=False, log=lines.append)
    _record_training_inputs(trainer, seen)
    trainer.fit()
    assert {(epoch, side) for epoch, side, _ in seen} == {(1, 20), (2, 20), (3, 28), (4, 28)}
    assert all(layout for _, _, layout in seen)
    assert sum(line.startswith("epochs 1-2 train on glyphs shrunk to 20x20") for line in lines) == 1
    assert sum(line.startswith("a full-size epoch will take about") for line in lines) == 1
    assert not any(line.startswith("an epoch will take") for line in lines)


@pytest.mark.slow
def test_progressive_resizing_resumes_in_the_phase_it_stopped(tiny_config, tiny_data, tmp_path):
    """Killed after epoch 1 of 4, a progressive run resumes with epoch 2 still on shrunk glyphs and ends with the
    weights of a run never stopped."""
    config = tiny_config.replace(epochs=4, progressive_size=16)
    straight_weights, resumed_weights, seen = {}, {}, []
    _train(config, tiny_data, tmp_path / "a", on_epoch_end=_keep_weights_of_each_epoch(straight_weights))
    with pytest.raises(Killed):
        _train(config, tiny_data, tmp_path / "b", on_epoch_end=_stop_after(1))
    resumed = Trainer.resume(
        tmp_path / "b",
        tiny_data,
        progress=False,
        log=lambda *_: None,
        on_epoch_end=_keep_weights_of_each_epoch(resumed_weights),
    )
    _record_training_inputs(resumed, seen)
    resumed.fit()
    assert {(epoch, side) for epoch, side, _ in seen} == {(2, 16), (3, 28), (4, 28)}
    assert _same_weights(resumed_weights[4], straight_weights[4])


@pytest.mark.slow
def test_progressive_resizing_resumed_with_more_epochs_never_goes_back_to_shrunk_glyphs(
    tiny_config, tiny_data, tmp_path
):
    """A finished 2-epoch progressive run (epoch 1 shrunk) continued to 10 epochs trains epochs 3-10 at full size:
    the switch stays where the run made it, not at half the new count (5). Killed after epoch 3 and resumed, the
    continued run still knows it (its saved config now says 10 epochs)."""
    seen = []
    _train(tiny_config.replace(epochs=2, progressive_size=16), tiny_data, tmp_path / "run")
    quiet = dict(progress=False, log=lambda *_: None)
    longer = Trainer.resume(tmp_path / "run", tiny_data, epochs=10, on_epoch_end=_stop_after(3), **quiet)
    _record_training_inputs(longer, seen)
    with pytest.raises(Killed):
        longer.fit()
    resumed = Trainer.resume(tmp_path / "run", tiny_data, **quiet)
    _record_training_inputs(resumed, seen)
    resumed.fit()
    assert [(epoch, side) for epoch, side, _ in seen if side != 28] == []
    assert {epoch for epoch, _, _ in seen} == set(range(3, 11))


@pytest.mark.slow
def test_training_without_augmentation_feeds_the_glyphs_exactly_as_stored(tiny_config, tiny_data, tmp_path):
    """--no-augment (augment=False, whatever the rotation/shift/zoom settings say), or every setting at 0: each
    training input is a stored glyph, scaled to [0, 1] and normalised, bit for bit; with augmentation on, none is,
    and with --augment-share 0.5 about half are."""

    def inputs_seen(config, run_dir):
        trainer = Trainer(config, tiny_data, run_dir, progress=False, log=lambda *_: None)
        seen = []
        trainer.model.register_forward_pre_hook(
            lambda m, args: seen.append(args[0].detach().clone()) if m.training else None
        )
        trainer.fit()
        c = trainer.config
        stored = {
            tuple(g.flatten().tolist()) for g in (tiny_data.train_images.float() / 255 - c.norm_mean) / c.norm_std
        }
        return [tuple(x[0].flatten().tolist()) in stored for batch in seen for x in batch]

    augmented = tiny_config.replace(epochs=1, rotation_degree=10.0, affine_degree=0.0, translate=0.08, scale=0.1)
    assert all(inputs_seen(augmented.replace(augment=False), tmp_path / "off"))
    assert all(inputs_seen(augmented.replace(rotation_degree=0.0, translate=0.0, scale=0.0), tmp_path / "zeros"))
    assert not any(inputs_seen(augmented, tmp_path / "augmented"))
    half = inputs_seen(augmented.replace(augment_share=0.5), tmp_path / "half")  # --augment-share 0.5
    assert 0.3 < sum(half) / len(half) < 0.7


def test_progressive_size_must_be_smaller_than_a_glyph(tiny_config):
    from glyphkit.config import ConfigError

    tiny_config.replace(progressive_size=20).validate()
    for side in (4, 28, 32):
        with pytest.raises(ConfigError, match="progressive_size must be 0 \\(off\\) or 8-27 pixels"):
            tiny_config.replace(progressive_size=side).validate()
