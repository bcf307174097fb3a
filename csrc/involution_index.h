// Index arithmetic of the involution operator, shared by the CPU and CUDA kernels.
//
// Every kernel maps between output pixels, kernel taps and input pixels through the functions
// below and nothing else, so the CPU tests exercise the very formulas the GPU runs. The header
// includes no torch headers: it is compiled by the host compiler (INVOLUTION_HOST_DEVICE is
// plain `inline`) and by nvcc (`__host__ __device__`).
//
// Along one spatial axis, output index o reads, at kernel tap t, the input index
//     in = o * stride - padding + t * dilation
// and taps outside [0, input_size) read zero padding. All indices are 64-bit.
#pragma once

#include <cstdint>

#if defined(__CUDACC__)
#define INVOLUTION_HOST_DEVICE __host__ __device__ __forceinline__
#else
#define INVOLUTION_HOST_DEVICE inline
#endif

namespace involution {

// Geometry of one spatial axis (height or width).
struct Axis {
  int64_t input_size;
  int64_t output_size;
  int64_t kernel_size;
  int64_t stride;
  int64_t padding;
  int64_t dilation;
};

// Element strides of the weight (batch, groups, kernel_h, kernel_w, out_h, out_w). The CUDA
// kernels read the weight through them, so a view of a channels_last convolution output (the
// layer's weight in a channels_last model) is read in place, not copied.
struct WeightStrides {
  int64_t batch, group, tap_row, tap_col, row, col;
};

// Strides of a contiguous weight.
INVOLUTION_HOST_DEVICE WeightStrides contiguous_weight_strides(int64_t groups, const Axis& height,
                                                               const Axis& width) {
  const int64_t col = 1, row = width.output_size * col, tap_col = height.output_size * row;
  const int64_t tap_row = width.kernel_size * tap_col, group = height.kernel_size * tap_row;
  return {groups * group, group, tap_row, tap_col, row, col};
}

// The whole problem: input (batch, channels, height, width), weight
// (batch, groups, height.kernel_size, width.kernel_size, height.output_size, width.output_size)
// with strides `weight` (contiguous unless set otherwise).
struct Problem {
  int64_t batch;
  int64_t channels;
  int64_t groups;
  Axis height;
  Axis width;
  WeightStrides weight = contiguous_weight_strides(groups, height, width);
};

// Number of output positions along an axis; the caller guarantees the dilated kernel fits.
// `Int` is int64_t in the kernels and c10::SymInt in the argument checks (csrc/checks.cpp), so
// compiled graphs with symbolic sizes use this same formula.
template <typename Int>
INVOLUTION_HOST_DEVICE Int output_size(const Int& input_size, const Int& kernel_size,
                                       int64_t stride, int64_t padding, int64_t dilation) {
  return (input_size + 2 * padding - (dilation * (kernel_size - 1) + 1)) / stride + 1;
}

// Input index read by output index `out` at tap `tap` (may lie in the padding).
INVOLUTION_HOST_DEVICE int64_t input_index(const Axis& axis, int64_t out, int64_t tap) {
  return out * axis.stride - axis.padding + tap * axis.dilation;
}

// Input rows that a block of `block` consecutive output rows reads along `rows`, from the first
// one's tap 0 to the last one's last tap (the CPU kernels' row buffers, the CUDA tiles).
INVOLUTION_HOST_DEVICE int64_t block_input_rows(const Axis& rows, int64_t block) {
  return (block - 1) * rows.stride + (rows.kernel_size - 1) * rows.dilation + 1;
}

INVOLUTION_HOST_DEVICE bool inside(int64_t index, int64_t size) {
  return index >= 0 && index < size;
}

// Inverse of input_index for a fixed tap: the output index whose tap `tap` reads input index
// `in`. Returns false when there is none (not on the stride grid, or out of range).
INVOLUTION_HOST_DEVICE bool output_index(const Axis& axis, int64_t in, int64_t tap, int64_t* out) {
  const int64_t offset = in + axis.padding - tap * axis.dilation;
  if (offset < 0) {
    return false;
  }
  int64_t candidate = offset;
  if (axis.stride != 1) {  // no 64-bit division at unit stride (RedNet's layers but three)
    if (offset % axis.stride != 0) {
      return false;
    }
    candidate = offset / axis.stride;
  }
  if (candidate >= axis.output_size) {
    return false;
  }
  *out = candidate;
  return true;
}

INVOLUTION_HOST_DEVICE int64_t channels_per_group(const Problem& problem) {
  return problem.channels / problem.groups;
}

INVOLUTION_HOST_DEVICE int64_t group_of_channel(const Problem& problem, int64_t channel) {
  return channel / channels_per_group(problem);
}

// Offset of weight[n, g, u, v, i, j] (through the problem's weight strides).
INVOLUTION_HOST_DEVICE int64_t weight_offset(const Problem& p, int64_t n, int64_t g, int64_t u,
                                             int64_t v, int64_t i, int64_t j) {
  const WeightStrides& s = p.weight;
  return n * s.batch + g * s.group + u * s.tap_row + v * s.tap_col + i * s.row + j * s.col;
}

// Offset of grad_weight[n, g, u, v, i, j], always contiguous (a fresh result).
INVOLUTION_HOST_DEVICE int64_t contiguous_weight_offset(const Problem& p, int64_t n, int64_t g,
                                                        int64_t u, int64_t v, int64_t i,
                                                        int64_t j) {
  return ((((n * p.groups + g) * p.height.kernel_size + u) * p.width.kernel_size + v) *
              p.height.output_size + i) * p.width.output_size + j;
}

// Flat offset of a (batch, channels, rows, cols) contiguous tensor element.
INVOLUTION_HOST_DEVICE int64_t plane_offset(int64_t channels, int64_t rows, int64_t cols,
                                            int64_t n, int64_t c, int64_t r, int64_t s) {
  return ((n * channels + c) * rows + r) * cols + s;
}

// Flat offset of element (n, r, s, c) of a channels_last tensor, stored (batch, rows, cols,
// channels).
INVOLUTION_HOST_DEVICE int64_t pixel_offset(int64_t rows, int64_t cols, int64_t channels,
                                            int64_t n, int64_t r, int64_t s, int64_t c) {
  return ((n * rows + r) * cols + s) * channels + c;
}

}  // namespace involution
