"""Emitters: the folders ``qnnfab generate`` writes.

* :mod:`~qnnfab.boards.emit.accelerator`: ``accel/``, the bare accelerator and its README.
* :mod:`~qnnfab.boards.emit.selftest`: ``plan/``, the self-test top's build plan.
* :mod:`~qnnfab.boards.emit.overlay`: ``overlay/``, the PYNQ overlay (shell, Tcl, driver, README).
* :mod:`~qnnfab.boards.emit.vivado`: the overlay's Vivado block design Tcl and ``build.sh``.
* :mod:`~qnnfab.boards.emit.gemm`: the GEMM engine's overlay folder.

READMEs are template files in ``templates/`` filled by :func:`~qnnfab.boards.emit.render.render`.
"""
