"""qnnfab: open hardware generator for quantized neural networks.

Sub-packages (each a top-level folder of the repository):

* ``qnnfab.golden`` -- NumPy bit-exact reference models and quantizers.
* ``qnnfab.rtl``    -- Amaranth components.
* ``qnnfab.sim``    -- Verilog generation, Verilator builds, cocotb regressions.
* ``qnnfab.boards`` -- PYNQ-class board definitions and resource reports.
"""

from .errors import QnnfabError, ConfigError

__version__ = "0.1.0"
__all__ = ["QnnfabError", "ConfigError", "__version__"]
