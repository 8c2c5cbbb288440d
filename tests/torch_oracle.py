"""The outside oracle: the same network in torch, differentiated by autograd and trained by torch.optim."""

import numpy as np
import torch


def torch_loss(net, p: torch.Tensor) -> torch.Tensor:
    """E_total of ``net`` at the flat parameters ``p`` (``net.params`` order), in float64."""
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
        "sse": lambda: ((t - act) ** 2).sum(1),
        "mse": lambda: ((t - act) ** 2).mean(1),
        "softmax_cross_entropy": lambda: -(t * torch.log_softmax(z, dim=1)).sum(1),
    }[net.loss]()
    return per_sample.mean() if net.reduction == "mean" else per_sample.sum()


def torch_gradients(net, flat_params):
    """E_total and its gradient by torch autograd (float64), parameters in ``net.params`` order."""
    p = torch.tensor(flat_params, dtype=torch.float64, requires_grad=True)
    loss = torch_loss(net, p)
    loss.backward()
    return loss.item(), p.grad.numpy()


def torch_optimizer(name: str, params: list[torch.Tensor], lr: float, h: dict) -> torch.optim.Optimizer:
    """torch.optim's own optimizer for a sheetprop optimizer name and hyperparameters."""
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr)
    if name == "momentum":
        return torch.optim.SGD(params, lr=lr, momentum=h["momentum"], dampening=h["dampening"])
    if name == "nesterov":
        return torch.optim.SGD(params, lr=lr, momentum=h["momentum"], nesterov=True)
    if name == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr, alpha=h["alpha"], eps=h["eps"])
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, betas=(h["beta1"], h["beta2"]), eps=h["eps"])
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, betas=(h["beta1"], h["beta2"]), eps=h["eps"],
                                 weight_decay=h["weight_decay"])
    raise KeyError(name)


def torch_training(net, name: str, lr: float, iterations: int):
    """Rows 0..N of training ``net`` with torch.optim: parameters (N + 1, P) and, per state kind of the sheet,
    the optimizer's state after each step (N + 1, P). m̂ and v̂ are torch's m and v over its bias corrections."""
    initial = np.concatenate([a.reshape(-1) for l in range(net.depth)
                              for a in (net.weights[l], net.biases[l]) if a is not None])
    p = torch.tensor(initial, dtype=torch.float64, requires_grad=True)
    opt = torch_optimizer(name, [p], lr, net.hyperparameters)
    params, states = [], {}
    h = net.hyperparameters
    for t in range(1, iterations + 2):
        params.append(p.detach().numpy().copy())
        opt.zero_grad()
        torch_loss(net, p).backward()
        opt.step()
        st = opt.state[p]
        found = {}
        if "momentum_buffer" in st and st["momentum_buffer"] is not None:
            found["b"] = st["momentum_buffer"]
        if "square_avg" in st:
            found["v"] = st["square_avg"]
        if "exp_avg" in st:
            found.update({"m": st["exp_avg"], "v": st["exp_avg_sq"],
                          "m̂": st["exp_avg"] / (1 - h["beta1"] ** t), "v̂": st["exp_avg_sq"] / (1 - h["beta2"] ** t)})
        for kind, value in found.items():
            states.setdefault(kind, []).append(value.detach().numpy().copy())
    return np.array(params), {kind: np.array(v) for kind, v in states.items()}


def torch_steps(net, name: str, lr: float, trace):
    """torch.optim stepped from each row of a reference trace, with that row's own gradient: the parameters it
    gives for rows 1..N (N, P) and its state after each step (N + 1, P) per kind. Gradients are held to the
    reference's, so that only the update rule is compared (a normalizing optimizer amplifies the rounding
    of a gradient near zero into a different step)."""
    h = net.hyperparameters
    p = torch.tensor(trace.params[0, 0], dtype=torch.float64, requires_grad=True)
    opt = torch_optimizer(name, [p], lr, h)
    moved, states = [], {}
    for k in range(trace.params.shape[1]):
        with torch.no_grad():
            p.copy_(torch.from_numpy(trace.params[0, k]))
        p.grad = torch.from_numpy(trace.grads[0, k].copy())
        opt.step()
        moved.append(p.detach().numpy().copy())
        st, t = opt.state[p], k + 1
        if st.get("momentum_buffer") is not None:
            states.setdefault("b", []).append(st["momentum_buffer"].numpy().copy())
        if "square_avg" in st:
            states.setdefault("v", []).append(st["square_avg"].numpy().copy())
        if "exp_avg" in st:
            for kind, value in (("m", st["exp_avg"]), ("v", st["exp_avg_sq"]),
                                ("m̂", st["exp_avg"] / (1 - h["beta1"] ** t)),
                                ("v̂", st["exp_avg_sq"] / (1 - h["beta2"] ** t))):
                states.setdefault(kind, []).append(value.numpy().copy())
    return np.array(moved[:-1]), {kind: np.array(v) for kind, v in states.items()}
