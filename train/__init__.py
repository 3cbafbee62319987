"""qnnfab.train: the quantization-aware trainer, its data sets and the export to network configs (NumPy only).

* :mod:`qnnfab.train.trainer`  -- float and quantized training (STE, stochastic, progressive, ternary,
  XNOR-Net, DoReFa, HWGQ, SYQ, TTQ),
  inference of the trained network (:func:`~qnnfab.train.trainer.predict`);
* :mod:`qnnfab.train.export`   -- integer weights and thresholds (batch norm folded) and a
  :mod:`qnnfab.netconfig` config that reproduces every prediction;
* :mod:`qnnfab.train.graph_trainer` -- residual graphs (forks, strided and 1x1 shortcut convolutions, adds,
  global average pooling; ResNet-8) with STE / ternary weights and k-bit activations;
* :mod:`qnnfab.train.graph_export` -- a trained graph as a graph config whose golden model gives its scores exactly;
* :mod:`qnnfab.train.codebooks` -- the weight codebooks and activation levels of XNOR-Net, DoReFa, HWGQ, SYQ, TTQ;
* :mod:`qnnfab.train.datasets` -- the shipped 8x8 digits and user data (arrays or ``.npz``).
"""
