"""What runs on the board: :mod:`~qnnfab.boards.onboard.driver`, the overlay's Python driver.

It needs only numpy and ``pynq`` there: the overlay writers
(:func:`qnnfab.boards.emit.overlay.driver_files`,
:func:`qnnfab.boards.emit.gemm.write_gemm_overlay`) copy it verbatim into the
overlay folder as ``driver.py``, with the dependency-free format modules
beside it (``qnnfab_overlay_map.py``, ``qnnfab_weights_image.py``). Nothing
here imports the rest of :mod:`qnnfab.boards`.
"""
