import jax, numpy as np, time
from infinet import sketch
from tests.sketch.specs import *
layer, spec = relu_net(2)
x = data(16, 8)
for get in ['nngp','ntk']:
    k = layer[2](x, None, get)
    for F in [64,128,256,512,1024]:
        t=time.time()
        f = sketch.features(spec, F, jax.random.key(0), get)
        phis = jax.vmap(f.apply, (None and 0 or 0, None))(jax.random.split(jax.random.key(1), 8), x)
        errs = [rel_error(p@p.T, k) for p in phis]
        print(get, F, np.mean(errs), time.time()-t)
