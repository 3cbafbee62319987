"""Boards: what qnnfab knows about FPGA targets and writes for them, by role.

* :mod:`qnnfab.boards.targets`: device data and board lookup (capacities,
  the fit check, the PYNQ platforms, :func:`~qnnfab.boards.targets.get_board`)
  and the clock maths (:mod:`qnnfab.boards.targets.clock`).
* :mod:`qnnfab.boards.estimate`: resources and timing (Yosys, the cost model,
  the per-layer report, the folding search).
* :mod:`qnnfab.boards.emit`: the generated folders (accelerator, self-test
  build plan, PYNQ overlay, Vivado Tcl, GEMM overlay) and their READMEs
  (template files).
* :mod:`qnnfab.boards.onboard`: the driver that runs on the board (no qnnfab there).

Imports point one way: ``targets`` <- ``estimate`` <- ``emit``; ``onboard``
imports none of them.
"""
