import jax, numpy as np
from infinet import predict, sketch
from tests.sketch.specs import data, relu_net, spec_of, rel_error
layer, hand = relu_net(2)
x = data(40, 6)-0.5; x_test = data(10, 6, seed=1)-0.5
y = np.sin(np.asarray(x) @ np.ones(6))[:, None]
K = layer[2](x, None, "ntk"); Kt = layer[2](x_test, x, "ntk")
for F in [256, 2048]:
    f = sketch.features(hand, F, jax.random.key(0), "ntk")
    ph = f(x); pt = f(x_test)
    print(F, rel_error(ph@ph.T, K))
    for reg in [1e-2, 1e-1, 1]:
        approx = sketch.ridge_solve(ph, y, diag_reg=reg)(pt)
        exact = predict.gp_inference(K, y, diag_reg=reg)("ntk", Kt)
        print(F, reg, np.linalg.norm(approx - exact) / np.linalg.norm(exact))
