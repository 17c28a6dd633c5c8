"""Losses, optimizers and learning-rate schedules compared with PyTorch 2.13.

PyTorch (float64 unless a test names another dtype) is the oracle for values,
gradients, parameter trajectories and learning-rate sequences. Central finite
differences check the loss gradients independently of PyTorch.
"""

import math

import numpy as np
import pytest
import torch

from convgrad.checkpoint import load_checkpoint, save_checkpoint
from convgrad.nn.losses import CrossEntropyLoss, MSELoss, log_softmax, softmax
from convgrad.nn.module import Parameter
from convgrad.nn.optim import SGD, Adam, AdamW
from convgrad.nn.schedules import CosineAnnealingLR, OneCycleLR, StepLR

TOLERANCE = {np.float64: 1e-12, np.float32: 1e-6}


def torch_cross_entropy(logits, targets, reduction, label_smoothing):
    """Return the PyTorch loss and gradient as NumPy arrays."""
    logits_t = torch.tensor(logits, requires_grad=True)
    loss = torch.nn.functional.cross_entropy(
        logits_t, torch.tensor(targets), reduction=reduction, label_smoothing=label_smoothing
    )
    upstream = torch.ones_like(loss) if reduction == "none" else None
    loss.backward(upstream)
    return loss.detach().numpy(), logits_t.grad.numpy()


# -- cross-entropy ------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("label_smoothing", [0.0, 0.1, 1.0])
@pytest.mark.parametrize("scale", [1.0, 1e4])
def test_cross_entropy_matches_torch(dtype, reduction, label_smoothing, scale):
    rng = np.random.default_rng(0)
    logits = (rng.standard_normal((7, 5)) * scale).astype(dtype)
    targets = rng.integers(0, 5, size=7)
    loss_fn = CrossEntropyLoss(reduction=reduction, label_smoothing=label_smoothing)

    loss = loss_fn.forward(logits, targets)
    grad = loss_fn.backward()
    expected_loss, expected_grad = torch_cross_entropy(logits, targets, reduction, label_smoothing)

    tol = TOLERANCE[dtype]
    assert np.all(np.isfinite(loss))
    assert grad.dtype == dtype
    assert grad.shape == logits.shape
    # Losses near 1e4 carry absolute rounding errors of about 1e4 * eps.
    np.testing.assert_allclose(loss, expected_loss, rtol=tol, atol=tol)
    np.testing.assert_allclose(grad, expected_grad, rtol=tol, atol=tol)


def test_cross_entropy_float32_stays_float32():
    logits = np.array([[1e4, -1e4, 0.0], [3.0, 2.0, 1.0]], dtype=np.float32)
    loss_fn = CrossEntropyLoss(reduction="none")

    losses = loss_fn(logits, np.array([1, 0]))
    grad = loss_fn.backward()

    assert losses.dtype == np.float32
    assert grad.dtype == np.float32
    assert np.isclose(losses[0], 2e4, rtol=1e-6)
    assert np.all(np.isfinite(grad))


def test_cross_entropy_upstream_gradient():
    rng = np.random.default_rng(1)
    logits = rng.standard_normal((4, 3))
    targets = np.array([0, 2, 1, 2])

    mean_loss = CrossEntropyLoss()
    mean_loss(logits, targets)
    none_loss = CrossEntropyLoss(reduction="none")
    none_loss(logits, targets)
    upstream = np.array([0.5, -1.0, 2.0, 3.0])

    logits_t = torch.tensor(logits, requires_grad=True)
    torch.nn.functional.cross_entropy(logits_t, torch.tensor(targets), reduction="none").backward(
        torch.tensor(upstream)
    )

    np.testing.assert_allclose(mean_loss.backward(2.5), 2.5 * mean_loss.backward(), rtol=1e-15)
    np.testing.assert_allclose(none_loss.backward(upstream), logits_t.grad.numpy(), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("label_smoothing", [0.0, 0.3])
def test_cross_entropy_finite_differences(label_smoothing):
    rng = np.random.default_rng(2)
    logits = rng.standard_normal((3, 4)) * 3.0
    targets = np.array([3, 0, 1])
    loss_fn = CrossEntropyLoss(reduction="sum", label_smoothing=label_smoothing)
    loss_fn(logits, targets)
    grad = loss_fn.backward()

    step = 1e-6
    numeric = np.zeros_like(logits)
    for index in np.ndindex(logits.shape):
        shifted = logits.copy()
        shifted[index] += step
        upper = loss_fn(shifted, targets)
        shifted[index] -= 2 * step
        lower = loss_fn(shifted, targets)
        numeric[index] = (upper - lower) / (2 * step)

    np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-8)


def test_cross_entropy_rejects_float_targets():
    with pytest.raises(TypeError, match="targets must have an integer dtype"):
        CrossEntropyLoss()(np.zeros((2, 3)), np.array([0.0, 1.0]))


@pytest.mark.parametrize("bad_target", [-1, 3])
def test_cross_entropy_rejects_out_of_range(bad_target):
    with pytest.raises(ValueError, match=r"targets must be in \[0, 3\)"):
        CrossEntropyLoss()(np.zeros((2, 3)), np.array([0, bad_target]))


def test_cross_entropy_rejects_bad_shapes():
    with pytest.raises(ValueError, match="logits must have shape"):
        CrossEntropyLoss()(np.zeros(3), np.array([0]))
    with pytest.raises(ValueError, match=r"targets must have shape \(2,\)"):
        CrossEntropyLoss()(np.zeros((2, 3)), np.array([0, 1, 2]))
    with pytest.raises(ValueError, match="label_smoothing"):
        CrossEntropyLoss(label_smoothing=1.5)
    with pytest.raises(ValueError, match="reduction"):
        CrossEntropyLoss(reduction="average")


def test_cross_entropy_backward_before_forward():
    with pytest.raises(RuntimeError, match="before forward"):
        CrossEntropyLoss().backward()


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_softmax_functions_match_torch(dtype):
    x = (np.random.default_rng(3).standard_normal((4, 6)) * 50).astype(dtype)
    tol = TOLERANCE[dtype]

    for axis in (0, 1):
        np.testing.assert_allclose(
            log_softmax(x, axis=axis), torch.log_softmax(torch.tensor(x), dim=axis).numpy(), rtol=tol, atol=tol
        )
        np.testing.assert_allclose(
            softmax(x, axis=axis), torch.softmax(torch.tensor(x), dim=axis).numpy(), rtol=tol, atol=tol
        )
    assert log_softmax(x).dtype == dtype
    assert softmax(x).dtype == dtype


# -- mean squared error -------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_mse_matches_torch(dtype, reduction):
    rng = np.random.default_rng(4)
    prediction = rng.standard_normal((3, 4, 2)).astype(dtype)
    target = rng.standard_normal((3, 4, 2)).astype(dtype)
    loss_fn = MSELoss(reduction=reduction)

    loss = loss_fn(prediction, target)
    grad = loss_fn.backward()

    prediction_t = torch.tensor(prediction, requires_grad=True)
    expected = torch.nn.functional.mse_loss(prediction_t, torch.tensor(target), reduction=reduction)
    expected.backward(torch.ones_like(expected) if reduction == "none" else None)

    tol = TOLERANCE[dtype]
    assert grad.dtype == dtype
    np.testing.assert_allclose(loss, expected.detach().numpy(), rtol=tol, atol=tol)
    np.testing.assert_allclose(grad, prediction_t.grad.numpy(), rtol=tol, atol=tol)


def test_mse_finite_differences():
    rng = np.random.default_rng(5)
    prediction = rng.standard_normal((2, 3))
    target = rng.standard_normal((2, 3))
    loss_fn = MSELoss()
    loss_fn(prediction, target)
    grad = loss_fn.backward()

    step = 1e-6
    numeric = np.zeros_like(prediction)
    for index in np.ndindex(prediction.shape):
        shifted = prediction.copy()
        shifted[index] += step
        upper = loss_fn(shifted, target)
        shifted[index] -= 2 * step
        numeric[index] = (upper - loss_fn(shifted, target)) / (2 * step)

    np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-9)


def test_mse_rejects_shape_mismatch():
    with pytest.raises(ValueError, match="target must have the shape of input"):
        MSELoss()(np.zeros((2, 3)), np.zeros((3, 2)))


# -- optimizers -----------------------------------------------------------------

SHAPES = [(3, 4), (5,), (2, 1, 3)]


def make_problem(dtype, seed=0, steps=20):
    """Return initial parameter values and a gradient per step and parameter."""
    rng = np.random.default_rng(seed)
    initial = [rng.standard_normal(shape).astype(dtype) for shape in SHAPES]
    grads = [[rng.standard_normal(shape).astype(dtype) for shape in SHAPES] for _ in range(steps)]
    return initial, grads


def run_convgrad(make_optimizer, initial, grads):
    params = [Parameter(value.copy()) for value in initial]
    optimizer = make_optimizer(params)
    data_ids = [id(param.data) for param in params]
    for step_grads in grads:
        for param, grad in zip(params, step_grads):
            param.grad[...] = grad
        optimizer.step()
    assert [id(param.data) for param in params] == data_ids, "step must update param.data in place"
    return [param.data for param in params]


def run_torch(make_optimizer, initial, grads):
    params = [torch.tensor(value.copy(), requires_grad=True) for value in initial]
    optimizer = make_optimizer(params)
    for step_grads in grads:
        for param, grad in zip(params, step_grads):
            param.grad = torch.tensor(grad)
        optimizer.step()
    return [param.detach().numpy() for param in params]


OPTIMIZER_CASES = {
    "sgd": (lambda p: SGD(p, lr=0.1), lambda p: torch.optim.SGD(p, lr=0.1, foreach=False)),
    "sgd_momentum": (
        lambda p: SGD(p, lr=0.05, momentum=0.9),
        lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, foreach=False),
    ),
    "sgd_dampening_decay": (
        lambda p: SGD(p, lr=0.05, momentum=0.8, dampening=0.3, weight_decay=0.01),
        lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.8, dampening=0.3, weight_decay=0.01, foreach=False),
    ),
    "sgd_nesterov_decay": (
        lambda p: SGD(p, lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-3),
        lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-3, foreach=False),
    ),
    "adam": (lambda p: Adam(p, lr=1e-2), lambda p: torch.optim.Adam(p, lr=1e-2, foreach=False)),
    "adam_decay": (
        lambda p: Adam(p, lr=3e-3, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.05),
        lambda p: torch.optim.Adam(p, lr=3e-3, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.05, foreach=False),
    ),
    "adam_small_beta1": (
        lambda p: Adam(p, lr=1e-2, betas=(0.3, 0.9)),
        lambda p: torch.optim.Adam(p, lr=1e-2, betas=(0.3, 0.9), foreach=False),
    ),
    "adamw": (lambda p: AdamW(p, lr=1e-2), lambda p: torch.optim.AdamW(p, lr=1e-2, foreach=False)),
    "adamw_decay": (
        lambda p: AdamW(p, lr=5e-3, betas=(0.85, 0.95), weight_decay=0.1),
        lambda p: torch.optim.AdamW(p, lr=5e-3, betas=(0.85, 0.95), weight_decay=0.1, foreach=False),
    ),
}


@pytest.mark.parametrize("case", sorted(OPTIMIZER_CASES))
def test_optimizer_matches_torch_float64(case):
    make_ours, make_theirs = OPTIMIZER_CASES[case]
    initial, grads = make_problem(np.float64)

    ours = run_convgrad(make_ours, initial, grads)
    theirs = run_torch(make_theirs, initial, grads)

    for index, (actual, expected) in enumerate(zip(ours, theirs)):
        np.testing.assert_allclose(actual, expected, rtol=1e-12, atol=1e-12, err_msg=f"parameter {index}")


@pytest.mark.parametrize("case", ["sgd_nesterov_decay", "adam_decay", "adamw_decay"])
def test_optimizer_keeps_float32(case):
    make_ours, make_theirs = OPTIMIZER_CASES[case]
    initial, grads = make_problem(np.float32)

    ours = run_convgrad(make_ours, initial, grads)
    theirs = run_torch(make_theirs, initial, grads)

    for actual, expected in zip(ours, theirs):
        assert actual.dtype == np.float32
        np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-6)


def test_zero_grad_clears_gradients():
    params = [Parameter(np.ones(3)), Parameter(np.ones((2, 2)))]
    for param in params:
        param.grad += 5.0
    SGD(params, lr=0.1).zero_grad()
    for param in params:
        assert not np.any(param.grad)


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda p: SGD(p, lr=-0.1), "lr must be"),
        (lambda p: SGD(p, lr=float("nan")), "lr must be"),
        (lambda p: SGD(p, lr=0.1, momentum=-0.5), "momentum must be"),
        (lambda p: SGD(p, lr=0.1, nesterov=True), "nesterov=True requires momentum > 0"),
        (lambda p: SGD(p, lr=0.1, momentum=0.9, dampening=0.1, nesterov=True), "dampening == 0"),
        (lambda p: SGD(p, lr=0.1, weight_decay=-1.0), "weight_decay must be"),
        (lambda p: Adam(p, betas=(1.0, 0.999)), r"betas\[0\] must be in \[0.0, 1.0\)"),
        (lambda p: Adam(p, betas=(0.9, -0.1)), r"betas\[1\] must be"),
        (lambda p: Adam(p, betas=0.9), "betas must be a pair"),
        (lambda p: AdamW(p, eps=-1e-8), "eps must be"),
        (lambda p: SGD([], lr=0.1), "at least one Parameter"),
        (lambda p: SGD([p[0], p[0]], lr=0.1), "more than once"),
    ],
)
def test_optimizer_rejects_invalid_arguments(build, message):
    params = [Parameter(np.zeros(2))]
    with pytest.raises(ValueError, match=message):
        build(params)


def test_optimizer_rejects_non_parameters():
    with pytest.raises(TypeError, match=r"params\[0\] must be a Parameter"):
        SGD([np.zeros(3)], lr=0.1)


def test_scheduler_cannot_set_negative_lr():
    optimizer = SGD([Parameter(np.zeros(2))], lr=0.1)
    with pytest.raises(ValueError, match="lr must be"):
        optimizer.lr = -1.0


def test_load_state_dict_rejects_mismatch():
    optimizer = Adam([Parameter(np.zeros(3))])
    optimizer.step()
    state = optimizer.state_dict()

    other = Adam([Parameter(np.zeros(4))])
    with pytest.raises(ValueError, match=r"state\['0.exp_avg'\] has shape \(3,\)"):
        other.load_state_dict(state)

    incomplete = dict(state)
    del incomplete["beta2"]
    with pytest.raises(ValueError, match=r"missing keys \['beta2'\]"):
        Adam([Parameter(np.zeros(3))]).load_state_dict(incomplete)

    invalid = dict(state, beta1=np.float64(1.5))
    fresh = Adam([Parameter(np.zeros(3))], lr=0.5)
    with pytest.raises(ValueError, match="betas"):
        fresh.load_state_dict(invalid)
    assert fresh.lr == 0.5, "a rejected state must leave the optimizer unchanged"


def test_state_dict_contains_only_numpy_values():
    params = [Parameter(np.zeros(3)), Parameter(np.zeros((2, 2)))]
    optimizer = SGD(params, lr=0.1, momentum=0.9)
    optimizer.step()

    state = optimizer.state_dict()

    assert set(state) >= {"step", "lr", "0.momentum_buffer", "1.momentum_buffer"}
    for key, value in state.items():
        assert isinstance(value, (np.ndarray, np.generic)), key


# -- schedules ------------------------------------------------------------------


def lr_sequences(make_ours, make_theirs, num_steps, optimizer_kind="sgd"):
    """Return (ours, theirs) learning rate and momentum after construction and each step."""
    param = Parameter(np.zeros(2))
    tensor = torch.zeros(2, requires_grad=True)
    if optimizer_kind == "sgd":
        ours_opt = SGD([param], lr=0.2, momentum=0.9)
        theirs_opt = torch.optim.SGD([tensor], lr=0.2, momentum=0.9)
    else:
        ours_opt = Adam([param], lr=0.2)
        theirs_opt = torch.optim.Adam([tensor], lr=0.2)
    ours_sched = make_ours(ours_opt)
    theirs_sched = make_theirs(theirs_opt)

    def momentum_of(optimizer):
        if isinstance(optimizer, torch.optim.Optimizer):
            group = optimizer.param_groups[0]
            return group["betas"][0] if "betas" in group else group["momentum"]
        return optimizer.betas[0] if hasattr(optimizer, "betas") else optimizer.momentum

    ours, theirs = [], []
    for step in range(num_steps + 1):
        if step:
            ours_opt.step()
            ours_sched.step()
            theirs_opt.step()
            theirs_sched.step()
        assert ours_sched.get_last_lr() == ours_opt.lr
        ours.append((ours_opt.lr, momentum_of(ours_opt)))
        theirs.append((theirs_opt.param_groups[0]["lr"], momentum_of(theirs_opt)))
    return np.array(ours), np.array(theirs)


SCHEDULE_CASES = {
    "step": (
        lambda o: StepLR(o, step_size=7, gamma=0.5),
        lambda o: torch.optim.lr_scheduler.StepLR(o, step_size=7, gamma=0.5),
        60,
        "sgd",
    ),
    "cosine": (
        lambda o: CosineAnnealingLR(o, T_max=50),
        lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=50),
        50,
        "sgd",
    ),
    "cosine_past_t_max": (
        lambda o: CosineAnnealingLR(o, T_max=13, eta_min=0.01),
        lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=13, eta_min=0.01),
        45,
        "sgd",
    ),
    "one_cycle_sgd": (
        lambda o: OneCycleLR(o, max_lr=1.0, total_steps=100),
        lambda o: torch.optim.lr_scheduler.OneCycleLR(o, max_lr=1.0, total_steps=100),
        100,
        "sgd",
    ),
    "one_cycle_adam_linear": (
        lambda o: OneCycleLR(
            o, max_lr=0.3, total_steps=37, pct_start=0.25, div_factor=10.0, final_div_factor=100.0,
            anneal_strategy="linear", base_momentum=0.8, max_momentum=0.9,
        ),
        lambda o: torch.optim.lr_scheduler.OneCycleLR(
            o, max_lr=0.3, total_steps=37, pct_start=0.25, div_factor=10.0, final_div_factor=100.0,
            anneal_strategy="linear", base_momentum=0.8, max_momentum=0.9,
        ),
        37,
        "adam",
    ),
    "one_cycle_no_momentum": (
        lambda o: OneCycleLR(o, max_lr=0.5, total_steps=20, pct_start=0.5, cycle_momentum=False),
        lambda o: torch.optim.lr_scheduler.OneCycleLR(
            o, max_lr=0.5, total_steps=20, pct_start=0.5, cycle_momentum=False
        ),
        20,
        "sgd",
    ),
}


@pytest.mark.parametrize("case", sorted(SCHEDULE_CASES))
def test_schedule_matches_torch(case):
    make_ours, make_theirs, num_steps, optimizer_kind = SCHEDULE_CASES[case]

    ours, theirs = lr_sequences(make_ours, make_theirs, num_steps, optimizer_kind)

    if case.startswith("one_cycle"):
        # At step total_steps PyTorch extrapolates past the cycle, this class stops at the end value.
        scheduler = make_ours(SGD([Parameter(np.zeros(1))], lr=0.1))
        min_lr = scheduler.max_lr / scheduler.div_factor / scheduler.final_div_factor
        assert math.isclose(ours[-1, 0], min_lr, rel_tol=1e-12)
        ours, theirs = ours[:-1], theirs[:-1]

    # PyTorch's StepLR and cosine are recursive, so allow rounding relative to the peak rate.
    np.testing.assert_allclose(ours[:, 0], theirs[:, 0], rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(ours[:, 1], theirs[:, 1], rtol=1e-12, atol=1e-14)


def test_one_cycle_rejects_extra_step():
    optimizer = SGD([Parameter(np.zeros(2))], lr=0.1)
    scheduler = OneCycleLR(optimizer, max_lr=1.0, total_steps=5)
    for _ in range(5):
        scheduler.step()
    with pytest.raises(ValueError, match="more than total_steps=5"):
        scheduler.step()
    assert scheduler.last_epoch == 5


def test_schedules_reject_invalid_arguments():
    optimizer = SGD([Parameter(np.zeros(2))], lr=0.1)
    with pytest.raises(ValueError, match="step_size must be a positive integer"):
        StepLR(optimizer, step_size=0)
    with pytest.raises(ValueError, match="T_max must be a positive integer"):
        CosineAnnealingLR(optimizer, T_max=2.5)
    with pytest.raises(ValueError, match="anneal_strategy"):
        OneCycleLR(optimizer, max_lr=1.0, total_steps=10, anneal_strategy="exp")
    with pytest.raises(ValueError, match="pct_start"):
        OneCycleLR(optimizer, max_lr=1.0, total_steps=10, pct_start=1.5)
    with pytest.raises(TypeError, match="convgrad Optimizer"):
        StepLR(torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1), step_size=1)


# -- resuming from a checkpoint -------------------------------------------------

RESUME_CASES = {
    "sgd_nesterov_step": (
        lambda p: SGD(p, lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-3),
        lambda o: StepLR(o, step_size=4, gamma=0.5),
    ),
    "sgd_one_cycle": (
        lambda p: SGD(p, lr=0.1, momentum=0.9, dampening=0.1),
        lambda o: OneCycleLR(o, max_lr=0.5, total_steps=20),
    ),
    "adam_cosine": (
        lambda p: Adam(p, lr=1e-2, weight_decay=1e-2),
        lambda o: CosineAnnealingLR(o, T_max=20, eta_min=1e-4),
    ),
    "adamw_one_cycle": (
        lambda p: AdamW(p, lr=1e-2),
        lambda o: OneCycleLR(o, max_lr=0.05, total_steps=20, anneal_strategy="linear"),
    ),
}


def train(params, optimizer, scheduler, grads):
    for step_grads in grads:
        for param, grad in zip(params, step_grads):
            param.grad[...] = grad
        optimizer.step()
        scheduler.step()


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("case", sorted(RESUME_CASES))
def test_resume_is_bit_exact(case, dtype, tmp_path):
    make_optimizer, make_scheduler = RESUME_CASES[case]
    initial, grads = make_problem(dtype, seed=7)

    params = [Parameter(value.copy()) for value in initial]
    optimizer = make_optimizer(params)
    scheduler = make_scheduler(optimizer)
    train(params, optimizer, scheduler, grads)

    first = [Parameter(value.copy()) for value in initial]
    first_optimizer = make_optimizer(first)
    first_scheduler = make_scheduler(first_optimizer)
    train(first, first_optimizer, first_scheduler, grads[:10])
    arrays = {f"param.{i}": param.data for i, param in enumerate(first)}
    arrays.update({f"optimizer.{k}": v for k, v in first_optimizer.state_dict().items()})
    arrays.update({f"scheduler.{k}": v for k, v in first_scheduler.state_dict().items()})
    save_checkpoint(tmp_path / "run.npz", arrays, {"epoch": 10})

    loaded, metadata = load_checkpoint(tmp_path / "run.npz")
    resumed = [Parameter(loaded[f"param.{i}"].copy()) for i in range(len(SHAPES))]
    resumed_optimizer = make_optimizer(resumed)
    resumed_scheduler = make_scheduler(resumed_optimizer)
    resumed_optimizer.load_state_dict(
        {k.removeprefix("optimizer."): v for k, v in loaded.items() if k.startswith("optimizer.")}
    )
    resumed_scheduler.load_state_dict(
        {k.removeprefix("scheduler."): v for k, v in loaded.items() if k.startswith("scheduler.")}
    )
    train(resumed, resumed_optimizer, resumed_scheduler, grads[10:])

    assert metadata == {"epoch": 10}
    assert resumed_optimizer.lr == optimizer.lr
    assert resumed_scheduler.get_last_lr() == scheduler.get_last_lr()
    for index, (actual, expected) in enumerate(zip(resumed, params)):
        assert actual.data.dtype == dtype
        assert actual.data.tobytes() == expected.data.tobytes(), f"parameter {index} differs"
    for key, value in optimizer.state_dict().items():
        assert np.asarray(resumed_optimizer.state_dict()[key]).tobytes() == np.asarray(value).tobytes(), key


def test_resume_before_first_step():
    params = [Parameter(np.ones(3))]
    optimizer = SGD(params, lr=0.1, momentum=0.9)
    state = optimizer.state_dict()
    assert "0.momentum_buffer" not in state

    fresh = SGD([Parameter(np.ones(3))], lr=0.5, momentum=0.5)
    fresh.load_state_dict(state)

    assert fresh.lr == 0.1
    assert fresh.momentum == 0.9
    assert fresh.step_count == 0
