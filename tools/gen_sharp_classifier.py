#!/usr/bin/env python3
"""Generate tests/data/sharp_classifier.json: a sharply trained classifier.

An Iris-like synthetic data set (4 features in [0, 1], 3 classes of 50
samples, deterministic seed) and a 4-8-3 network, tanh hidden layer and
softmax output, trained by full-batch gradient descent on the cross-entropy
with no regularisation for many epochs, so that its decision boundaries are
steep compared with the spread of the data.  This is the situation in which
the paper's Eq. 4 (second-order Taylor) leaves [0, 1] while Monte Carlo
stays inside it (tests/unit/test_engine_sharp.c checks both).

Written in the model registration format (same layout as
tests/data/small_mlp.json): name, features [{name, low, high}],
outputs, network {type, layers [{weights [out][in], bias, activation}]},
data {samples, mean, covariance (divisor n - 1)}.

Python 3 standard library only.  Usage:
    tools/gen_sharp_classifier.py [output path]
"""
import json
import math
import random
import sys

SEED = 20190609
EPOCHS = 4000
LR = 0.5
HIDDEN = 8

# class centres (sepal length, sepal width, petal length, petal width),
# scaled to [0, 1] roughly like Iris, and per-feature spreads
CENTRES = [
    [0.20, 0.60, 0.07, 0.06],  # setosa
    [0.45, 0.32, 0.55, 0.51],  # versicolor
    [0.64, 0.41, 0.77, 0.80],  # virginica
]
SPREAD = [0.10, 0.12, 0.06, 0.07]
CLASSES = ["setosa", "versicolor", "virginica"]
FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


def make_data(rng):
    xs, ys = [], []
    for c, centre in enumerate(CENTRES):
        for _ in range(50):
            x = [min(1.0, max(0.0, rng.gauss(centre[j], SPREAD[j])))
                 for j in range(4)]
            xs.append(x)
            ys.append(c)
    return xs, ys


def forward(W1, b1, W2, b2, x):
    h = [math.tanh(sum(W1[j][i] * x[i] for i in range(4)) + b1[j])
         for j in range(HIDDEN)]
    z = [sum(W2[o][j] * h[j] for j in range(HIDDEN)) + b2[o] for o in range(3)]
    zm = max(z)
    e = [math.exp(v - zm) for v in z]
    s = sum(e)
    return h, [v / s for v in e]


def train(xs, ys, rng):
    W1 = [[rng.gauss(0, 1.0) for _ in range(4)] for _ in range(HIDDEN)]
    b1 = [0.0] * HIDDEN
    W2 = [[rng.gauss(0, 1.0) for _ in range(HIDDEN)] for _ in range(3)]
    b2 = [0.0] * 3
    n = len(xs)
    for epoch in range(EPOCHS):
        gW1 = [[0.0] * 4 for _ in range(HIDDEN)]
        gb1 = [0.0] * HIDDEN
        gW2 = [[0.0] * HIDDEN for _ in range(3)]
        gb2 = [0.0] * 3
        loss = 0.0
        for x, y in zip(xs, ys):
            h, p = forward(W1, b1, W2, b2, x)
            loss -= math.log(max(p[y], 1e-300))
            dz = [p[o] - (1.0 if o == y else 0.0) for o in range(3)]
            for o in range(3):
                gb2[o] += dz[o]
                for j in range(HIDDEN):
                    gW2[o][j] += dz[o] * h[j]
            for j in range(HIDDEN):
                dh = sum(W2[o][j] * dz[o] for o in range(3)) * (1 - h[j] * h[j])
                gb1[j] += dh
                for i in range(4):
                    gW1[j][i] += dh * x[i]
        for j in range(HIDDEN):
            b1[j] -= LR * gb1[j] / n
            for i in range(4):
                W1[j][i] -= LR * gW1[j][i] / n
        for o in range(3):
            b2[o] -= LR * gb2[o] / n
            for j in range(HIDDEN):
                W2[o][j] -= LR * gW2[o][j] / n
        if epoch % 1000 == 0 or epoch == EPOCHS - 1:
            print("epoch %d loss %.5f" % (epoch, loss / n), file=sys.stderr)
    return W1, b1, W2, b2


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "tests/data/sharp_classifier.json"
    rng = random.Random(SEED)
    xs, ys = make_data(rng)
    W1, b1, W2, b2 = train(xs, ys, rng)
    acc = sum(1 for x, y in zip(xs, ys)
              if max(range(3), key=lambda o: forward(W1, b1, W2, b2, x)[1][o]) == y)
    print("training accuracy %d/%d" % (acc, len(xs)), file=sys.stderr)
    n = len(xs)
    mean = [sum(x[i] for x in xs) / n for i in range(4)]
    cov = [[sum((x[i] - mean[i]) * (x[j] - mean[j]) for x in xs) / (n - 1)
            for j in range(4)] for i in range(4)]
    doc = {
        "name": "sharp_classifier",
        "description": "Iris-like synthetic data, 4-%d-3 tanh/softmax trained "
                       "sharp (seed %d, %d epochs); Eq. 4 leaves [0, 1] here"
                       % (HIDDEN, SEED, EPOCHS),
        "features": [{"name": f, "low": 0.0, "high": 1.0} for f in FEATURES],
        "outputs": CLASSES,
        "network": {
            "type": "feedforward",
            "layers": [
                {"weights": W1, "bias": b1, "activation": "tanh"},
                {"weights": W2, "bias": b2, "activation": "softmax"},
            ],
        },
        "data": {"samples": xs, "mean": mean, "covariance": cov},
    }
    with open(out, "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
