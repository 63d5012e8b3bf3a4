import time, jax, numpy as np
from jax.scipy.special import erf
from infinet import sketch
from tests.sketch.specs import S, data
spec = S("serial", S("Dense", out_dim=16, W_std=1.2, b_std=0.2), S("Erf", fn=erf), S("Dense", out_dim=16, W_std=1.2, b_std=0.2), S("Erf", fn=erf), S("Dense", out_dim=1))
x = data(10, 4)
for F in [64, 1024]:
    t=time.time(); f = sketch.features(spec, F, jax.random.key(0), 'ntk', method='hermite'); print('build', time.time()-t)
    t=time.time(); f(x).block_until_ready(); print('first', time.time()-t)
    t=time.time(); f(x).block_until_ready(); print('second', time.time()-t)
    t=time.time(); jax.vmap(f.apply, (0,None))(jax.random.split(jax.random.key(0),4), x).block_until_ready(); print('vmap', time.time()-t)
