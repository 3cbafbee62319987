"""qnnfab.golden: bit-exact NumPy reference models (NumPy only, no Amaranth, no cocotb).

Conventions: bipolar bit 1 = +1, bit 0 = -1; thresholds count T with acc >= T;
im2col order (ky, kx, c); fixed point (I, F); Fibonacci XOR LFSR shifting
toward the MSB. Each submodule's docstring states its layouts and dtypes.
"""

from .bits import (bipolar_to_bits, bits_to_bipolar, dot_to_popcount, n_words, pack_bits, popcount_to_dot,
                   unpack_bits, xnor_popcount, xnor_popcount_matmul, xnor_popcount_matvec)
from .conv import conv_output_size, conv_weights_to_matrix, im2col, maxpool, pool_output_size
from .fixedpoint import (FixedFormat, quantize, round_nearest, saturate, shift_round, stochastic_round, to_float,
                         truncate)
from .lfsr import LFSR, MAXIMAL_TAPS, is_maximal, lane_seeds, lfsr_words
from qnnfab.kinds import DataKind

from .matvec import binary_weight_matvec, exact_matmul, int_matvec, quantized_matvec, ternary_matvec, to_values
from .network import (CNV_INPUT_FORMAT, FC, TOPOLOGIES, Conv, MaxPool, Network, Threshold, binarize_input,
                      cnv_input_codes, float_forward, make_cnv, make_lfc, make_network)
from .threshold import FoldedBN, bn_sign, bn_to_thresholds, check_thresholds, fold_flips_into_weights, multithreshold
from .quantizers import (AffineParams, affine_dequantize, affine_matmul, affine_quantize, binary_quantize,
                         choose_affine_params, quantize_multiplier, rounding_divide_by_pot,
                         rounding_doubling_high_mul, sign_quantize, syq_quantize, ternary_quantize,
                         xnor_net_quantize)
from .systolic import SystolicResult, systolic_matmul
