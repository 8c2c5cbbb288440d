import numpy as np
import pytest

from sheetprop import reference, template
from sheetprop.quantities import Grad, Param, Total
from tests.torch_oracle import torch_gradients

PUBLISHED_E_TOTAL_0 = 0.24251985734837728


def variant(activations, bias, seed):
    rng = np.random.default_rng(seed)
    sizes = [3, 4, 3, 2]
    layers = [{"size": sizes[l], "activation": activations[l - 1], "bias": bias,
               "weights": rng.normal(0, 0.8, (sizes[l], sizes[l - 1])).tolist(),
               **({"biases": rng.normal(0, 0.5, sizes[l]).tolist()} if bias else {})}
              for l in range(1, len(sizes))]
    return template.from_dict({"name": "v", "loss": "l2", "layers": layers,
                              "sample": {"inputs": [0.3, -0.7, 0.9], "targets": [0.2, 0.8]}})


@pytest.mark.parametrize("name", list(template.shipped()))
def test_every_template_matches_torch_autograd(name):
    net = template.load(name)
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


def test_values_of_a_diverged_step_are_inf_or_nan_without_warnings(recwarn):
    from sheetprop.layout import TrainingLayout

    net = template.load("deep")  # softmax: Σ e^(z − max) of an overflowed layer is NaN
    step = reference.evaluate(net, np.full((1, len(net.params)), 1e308))  # sums overflow
    values = [step.values(q) for q in TrainingLayout(net, 1).columns]
    assert not all(np.isfinite(v).all() for v in values)
    assert [w for w in recwarn if issubclass(w.category, RuntimeWarning)] == []
