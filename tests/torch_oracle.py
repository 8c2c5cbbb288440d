"""The outside oracle for gradients: the same network in torch, differentiated by autograd."""

import torch


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
