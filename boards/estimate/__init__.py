"""Estimation: what a design costs on a target and how fast it runs.

* :mod:`~qnnfab.boards.estimate.yosys`: Yosys ``synth_xilinx`` and ``sta`` runs, cached.
* :mod:`~qnnfab.boards.estimate.cost`: the cost model calibrated on Yosys (no synthesis).
* :mod:`~qnnfab.boards.estimate.report`: the per-layer resource and timing report.
* :mod:`~qnnfab.boards.estimate.fold`: the folding search (PE/SIMD per layer).
"""
