import time
t=time.time()
import jax, numpy as np
from infinet import sketch
from tests.sketch.specs import *
print('import', time.time()-t)
layer, spec = relu_net(2)
x = data(16, 8)
f = sketch.features(spec, 64, jax.random.key(0), 'ntk')
t=time.time(); f(x).block_until_ready(); print('first', time.time()-t)
t=time.time(); f(x).block_until_ready(); print('second', time.time()-t)
t=time.time(); k=layer[2](x,None,'ntk'); print('kernel', time.time()-t)
