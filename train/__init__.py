"""qnnfab.train: the quantization-aware trainer, its data sets and the export to network configs (NumPy only).

* :mod:`qnnfab.train.trainer`  -- float and binarized training (STE, stochastic, progressive, ternary),
  inference of the trained network (:func:`~qnnfab.train.trainer.predict`);
* :mod:`qnnfab.train.export`   -- integer weights and thresholds (batch norm folded) and a
  :mod:`qnnfab.netconfig` config that reproduces every prediction;
* :mod:`qnnfab.train.datasets` -- the shipped 8x8 digits and user data (arrays or ``.npz``).
"""
