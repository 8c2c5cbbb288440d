import numpy as np
import pytest
import torch

from sheetprop import network, reference
from sheetprop.network import Grad, Param, Total

PUBLISHED_E_TOTAL_0 = 0.24251985734837728


def torch_gradients(net, flat_params):
    """E_total and its gradient by torch autograd (float64), parameters in ``net.params`` order."""
    p = torch.tensor(flat_params, dtype=torch.float64, requires_grad=True)
    act = torch.tensor(net.inputs, dtype=torch.float64)
    fns = {"sigmoid": torch.sigmoid, "tanh": torch.tanh, "relu": torch.relu,
           "leaky_relu": lambda z: torch.nn.functional.leaky_relu(z, 0.01), "identity": lambda z: z,
           "softmax": lambda z: torch.softmax(z, dim=1)}
    i = 0
    for l in range(1, net.depth + 1):
        n, m = net.size(l), net.size(l - 1)
        w = p[i : i + n * m].reshape(n, m)
        i += n * m
        z = act @ w.T
        if net.layer(l).bias:
            z = z + p[i : i + n]
            i += n
        act = fns[net.layer(l).activation](z)
    t = torch.tensor(net.targets, dtype=torch.float64)
    per_sample = {
        "l2": lambda: 0.5 * ((t - act) ** 2).sum(1),
        "mse": lambda: ((t - act) ** 2).mean(1),
        "softmax_cross_entropy": lambda: -(t * torch.log_softmax(z, dim=1)).sum(1),
    }[net.loss]()
    loss = per_sample.mean() if net.reduction == "mean" else per_sample.sum()
    loss.backward()
    return loss.item(), p.grad.numpy()


def variant(activations, bias, seed):
    rng = np.random.default_rng(seed)
    sizes = [3, 4, 3, 2]
    layers = [{"size": sizes[l], "activation": activations[l - 1], "bias": bias,
               "weights": rng.normal(0, 0.8, (sizes[l], sizes[l - 1])).tolist(),
               **({"biases": rng.normal(0, 0.5, sizes[l]).tolist()} if bias else {})}
              for l in range(1, len(sizes))]
    return network.from_dict({"name": "v", "loss": "l2", "layers": layers,
                              "sample": {"inputs": [0.3, -0.7, 0.9], "targets": [0.2, 0.8]}})


@pytest.mark.parametrize("name", [n.stem for n in network.TEMPLATE_DIR.glob("*.toml")])
def test_every_template_matches_torch_autograd(name):
    net = network.load(name)
    trace = reference.train(net, [net.learning_rates[0]], 20)
    for it in (0, 1, 20):
        loss, grads = torch_gradients(net, trace.params[0, it])
        assert abs(trace.total[0, it] - loss) < 1e-12
        np.testing.assert_allclose(trace.grads[0, it], grads, rtol=0, atol=1e-12)


def test_classic_initial_error_is_the_published_value(classic):
    trace = reference.train(classic, [0.5], 0)
    assert trace.values(Total())[0, 0] == pytest.approx(PUBLISHED_E_TOTAL_0, rel=0, abs=1e-16)


def test_classic_gradients_match_torch_autograd_along_training(classic):
    trace = reference.train(classic, [0.5, 2.0], 50)
    for r in range(2):
        for it in (0, 1, 17, 50):
            loss, grads = torch_gradients(classic, trace.params[r, it])
            assert abs(trace.total[r, it] - loss) < 1e-12
            np.testing.assert_allclose(trace.grads[r, it], grads, rtol=0, atol=1e-12)


@pytest.mark.parametrize("activations", [("tanh", "sigmoid", "sigmoid"), ("relu", "leaky_relu", "identity"),
                                         ("sigmoid", "tanh", "identity")])
@pytest.mark.parametrize("bias", [False, True])
def test_gradients_match_torch_for_other_activations_and_biases(activations, bias):
    net = variant(activations, bias, seed=len(activations[0]) + bias)
    trace = reference.train(net, [0.1], 5)
    for it in range(6):
        loss, grads = torch_gradients(net, trace.params[0, it])
        assert abs(trace.total[0, it] - loss) < 1e-12
        np.testing.assert_allclose(trace.grads[0, it], grads, rtol=0, atol=1e-12)


def test_every_row_is_the_previous_row_minus_lr_times_gradient(classic):
    lrs = np.array([0.1, 2.0])
    trace = reference.train(classic, lrs, 30)
    np.testing.assert_array_equal(trace.params[:, 1:], trace.params[:, :-1] - lrs[:, None, None] * trace.grads[:, :-1])
    assert trace.values(Param(1, 0, 0))[0, 0] == 0.15
    assert trace.values(Grad(Param(2, 1, 1))).shape == (2, 31)


def test_learning_rates_train_independently(classic):
    together = reference.train(classic, [0.1, 2.0], 20)
    alone = reference.train(classic, [2.0], 20)
    np.testing.assert_array_equal(together.total[1], alone.total[0])


def test_huge_learning_rate_stays_finite(classic):
    trace = reference.train(classic, [1000.0], 1000)
    assert np.isfinite(trace.params).all() and np.isfinite(trace.total).all()


def test_first_below_reports_first_iteration_or_none(classic):
    trace = reference.train(classic, [0.1, 2.0], 100)
    assert trace.first_below(0.01) == [None, int(np.flatnonzero(trace.total[1] < 0.01)[0])]
    assert trace.total[1, trace.first_below(0.01)[1] - 1] >= 0.01
