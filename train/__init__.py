"""qnnfab.train: the quantization-aware trainer, its data sets and the export to network configs (NumPy only).

* :mod:`qnnfab.train.trainer`  -- float and quantized training (STE, stochastic, progressive, ternary,
  XNOR-Net, DoReFa, HWGQ, SYQ, TTQ),
  inference of the trained network (:func:`~qnnfab.train.trainer.predict`);
* :mod:`qnnfab.train.export`   -- integer weights and thresholds (batch norm folded) and a
  :mod:`qnnfab.netconfig` config that reproduces every prediction;
* :mod:`qnnfab.train.codebooks` -- the weight codebooks and activation levels of XNOR-Net, DoReFa, HWGQ, SYQ, TTQ;
* :mod:`qnnfab.train.datasets` -- the shipped 8x8 digits and user data (arrays or ``.npz``).
"""
