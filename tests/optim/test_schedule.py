"""Learning-rate schedules against torch.optim.lr_scheduler, round trips, and errors."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

from convscope.errors import ArgumentTypeError, ConfigError, StateError
from convscope.optim import SGD, Adam, AdamW, CosineAnnealingLR, OneCycleLR, StepLR
from convscope.testing import assert_close

from ._helpers import FakeParam, run_twins

torch = pytest.importorskip("torch")
lr_scheduler = torch.optim.lr_scheduler


def _pair(opt_cls, torch_opt_cls, **config):
    ours = opt_cls([FakeParam(np.zeros(2))], **config)
    theirs = torch_opt_cls([torch.nn.Parameter(torch.zeros(2, dtype=torch.float64))], **config)
    return ours, theirs


def _sequences(ours_opt, sched, theirs_opt, tsched, steps):
    """lr (and momentum) after construction and after each step, for both libraries."""
    def momentum(opt):
        if isinstance(opt, torch.optim.Optimizer):
            group = opt.param_groups[0]
            return group["betas"][0] if "betas" in group else group["momentum"]
        return opt.betas[0] if hasattr(opt, "betas") else opt.momentum

    ours, theirs = [(ours_opt.lr, momentum(ours_opt))], [(theirs_opt.param_groups[0]["lr"], momentum(theirs_opt))]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch warns when no optimizer.step() came first
        for _ in range(steps):
            sched.step()
            tsched.step()
            ours.append((ours_opt.lr, momentum(ours_opt)))
            theirs.append((theirs_opt.param_groups[0]["lr"], momentum(theirs_opt)))
    return np.array(ours), np.array(theirs)


SCHEDULES = [
    ("StepLR", lambda o: StepLR(o, step_size=3, gamma=0.5),
     lambda o: lr_scheduler.StepLR(o, step_size=3, gamma=0.5), 20),
    ("StepLR-default-gamma", lambda o: StepLR(o, 4), lambda o: lr_scheduler.StepLR(o, 4), 13),
    ("Cosine", lambda o: CosineAnnealingLR(o, T_max=10), lambda o: lr_scheduler.CosineAnnealingLR(o, T_max=10), 10),
    ("Cosine-eta-past-Tmax", lambda o: CosineAnnealingLR(o, T_max=7, eta_min=0.01),
     lambda o: lr_scheduler.CosineAnnealingLR(o, T_max=7, eta_min=0.01), 30),
    ("OneCycle-cos", lambda o: OneCycleLR(o, max_lr=0.5, total_steps=20),
     lambda o: lr_scheduler.OneCycleLR(o, max_lr=0.5, total_steps=20), 20),
    ("OneCycle-linear", lambda o: OneCycleLR(o, 1.0, 17, pct_start=0.25, anneal_strategy="linear", div_factor=10,
                                            final_div_factor=100),
     lambda o: lr_scheduler.OneCycleLR(o, 1.0, 17, pct_start=0.25, anneal_strategy="linear", div_factor=10,
                                       final_div_factor=100), 17),
    ("OneCycle-three-phase", lambda o: OneCycleLR(o, 0.3, 25, three_phase=True, base_momentum=0.8, max_momentum=0.9),
     lambda o: lr_scheduler.OneCycleLR(o, 0.3, 25, three_phase=True, base_momentum=0.8, max_momentum=0.9), 25),
    ("OneCycle-epochs", lambda o: OneCycleLR(o, 0.2, epochs=3, steps_per_epoch=5, cycle_momentum=False),
     lambda o: lr_scheduler.OneCycleLR(o, 0.2, epochs=3, steps_per_epoch=5, cycle_momentum=False), 15),
]


@pytest.mark.parametrize("opt_pair", ["sgd", "adam"])
@pytest.mark.parametrize("name, ours_fn, torch_fn, steps", SCHEDULES, ids=[s[0] for s in SCHEDULES])
def test_lr_sequence_matches_torch(name, ours_fn, torch_fn, steps, opt_pair):
    if opt_pair == "sgd":
        ours_opt, theirs_opt = _pair(SGD, torch.optim.SGD, lr=0.1, momentum=0.9)
    else:
        ours_opt, theirs_opt = _pair(Adam, torch.optim.Adam, lr=0.1)
    sched, tsched = ours_fn(ours_opt), torch_fn(theirs_opt)
    ours, theirs = _sequences(ours_opt, sched, theirs_opt, tsched, steps)
    if "linear" in name:
        # Documented deviation: after the final step PyTorch extrapolates the line below min_lr.
        np.testing.assert_allclose(ours[-1, 0], sched.max_lr / sched.div_factor / sched.final_div_factor)
        ours, theirs = ours[:-1], theirs[:-1]
    np.testing.assert_allclose(ours, theirs, rtol=1e-13, atol=1e-15, err_msg=name)
    assert sched.get_last_lr() == ours_opt.lr


def test_onecycle_linear_short_cycle_never_gives_a_negative_lr():
    opt = SGD([FakeParam(np.zeros(1))], lr=0.1, momentum=0.9)
    sched = OneCycleLR(opt, max_lr=1.0, total_steps=2, anneal_strategy="linear")
    sched.step()
    sched.step()
    assert opt.lr == pytest.approx(1.0 / 25 / 1e4) and opt.momentum == pytest.approx(0.95)


def test_onecycle_steps_past_total_raise_and_leave_state():
    opt = SGD([FakeParam(np.zeros(1))], lr=0.1, momentum=0.9)
    sched = OneCycleLR(opt, max_lr=1.0, total_steps=3)
    for _ in range(3):
        sched.step()
    lr = opt.lr
    with pytest.raises(StateError) as info:
        sched.step()
    assert "total_steps=3" in str(info.value) and "4 times" in str(info.value)
    assert sched.last_epoch == 3 and opt.lr == lr


def test_training_with_adam_and_onecycle_matches_torch():
    """Whole loop: updates plus schedule (lr and beta1 cycling) for 20 steps, float64."""
    config = dict(max_lr=0.05, total_steps=20, pct_start=0.3)
    holder = {}

    def make_ours(params):
        opt = Adam(params, lr=1e-3)
        holder["ours"] = OneCycleLR(opt, **config)
        return opt

    def make_torch(params):
        opt = torch.optim.Adam(params, lr=1e-3)
        holder["torch"] = lr_scheduler.OneCycleLR(opt, **config)
        return opt

    def after(t, opt, topt):
        holder["ours"].step()
        holder["torch"].step()

    for t, ours, theirs in run_twins(make_ours, make_torch, np.float64, steps=20, after_step=after):
        for a, b in zip(ours, theirs):
            assert_close(a, b, np.float64, context=f"step {t}")


@pytest.mark.parametrize("make", [
    lambda o: StepLR(o, step_size=2, gamma=0.7),
    lambda o: CosineAnnealingLR(o, T_max=6, eta_min=0.001),
    lambda o: OneCycleLR(o, max_lr=0.3, total_steps=12, three_phase=True),
])
def test_state_dict_round_trip_continues_identically(make):
    def run(opt, sched, steps):
        lrs = []
        for _ in range(steps):
            sched.step()
            lrs.append((opt.lr, opt.betas))
        return lrs

    opt = AdamW([FakeParam(np.zeros(1))], lr=0.1)
    sched = make(opt)
    straight = run(opt, sched, 12)

    opt1 = AdamW([FakeParam(np.zeros(1))], lr=0.1)
    sched1 = make(opt1)
    run(opt1, sched1, 5)
    saved = json.loads(json.dumps(sched1.state_dict()))  # entirely JSON-safe

    opt2 = AdamW([FakeParam(np.zeros(1))], lr=0.1)
    sched2 = make(opt2)
    sched2.step()  # elsewhere in its schedule: the load must reset it
    sched2.load_state_dict(saved)
    assert opt2.lr == opt1.lr and opt2.betas == opt1.betas
    assert run(opt2, sched2, 7) == straight[5:]


@pytest.mark.parametrize("make, error, words", [
    (lambda o: StepLR(o, step_size=0), ConfigError, ["step_size", ">= 1", "0"]),
    (lambda o: StepLR(o, step_size=2.5), ArgumentTypeError, ["step_size", "int"]),
    (lambda o: StepLR(o, 2, gamma=0), ConfigError, ["gamma", "> 0"]),
    (lambda o: CosineAnnealingLR(o, T_max=0), ConfigError, ["T_max"]),
    (lambda o: CosineAnnealingLR(o, 5, eta_min=-1), ConfigError, ["eta_min"]),
    (lambda o: OneCycleLR(o, max_lr=0.1), ConfigError, ["total_steps", "epochs and steps_per_epoch"]),
    (lambda o: OneCycleLR(o, max_lr=-0.1, total_steps=5), ConfigError, ["max_lr"]),
    (lambda o: OneCycleLR(o, 0.1, 0), ConfigError, ["total_steps"]),
    (lambda o: OneCycleLR(o, 0.1, 5, pct_start=1.5), ConfigError, ["pct_start"]),
    (lambda o: OneCycleLR(o, 0.1, 5, anneal_strategy="exp"), ConfigError, ["anneal_strategy", "'exp'"]),
    (lambda o: OneCycleLR(o, 0.1, 5, three_phase=True, pct_start=0.6), ConfigError, ["three_phase", "0.5"]),
    (lambda o: OneCycleLR(o, 0.1, 5, max_momentum=1.0), ConfigError, ["max_momentum"]),
    (lambda o: OneCycleLR(o, 0.1, 5, div_factor=0), ConfigError, ["div_factor"]),
    (lambda o: StepLR("sgd", 2), ArgumentTypeError, ["optimizer", "str"]),
])
def test_argument_errors(make, error, words):
    opt = SGD([FakeParam(np.zeros(1))], lr=0.1)
    with pytest.raises(error) as info:
        make(opt)
    for word in words:
        assert word in str(info.value), str(info.value)


def test_load_state_dict_of_another_schedule_is_refused():
    opt = SGD([FakeParam(np.zeros(1))], lr=0.1)
    saved = StepLR(opt, 2).state_dict()
    with pytest.raises(ConfigError, match="'StepLR'"):
        CosineAnnealingLR(opt, 5).load_state_dict(saved)
