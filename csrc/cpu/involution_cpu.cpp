// CPU kernels of the three involution ops (see csrc/involution_index.h for the index math).
//
//   forward      out[n,c,i,j]  = sum_{u,v} w[n,g(c),u,v,i,j] * x[n,c, ih(i,u), iw(j,v)]
//   grad_input   gx[n,c,h,w]   = sum_{u,v,(i,j) reading (h,w)} w[n,g(c),u,v,i,j] * go[n,c,i,j]
//   grad_weight  gw[n,g,u,v,i,j] = sum_{c in g} go[n,c,i,j] * x[n,c, ih(i,u), iw(j,v)]
//
// Work mapping: each task owns whole rows of its result and accumulates them in a float (or
// double) row buffer, so there are no atomics and results are deterministic. Forward and
// grad_input tasks cover a block of channels of one group at one row: each weight row is loaded
// once and reused across those channels. Inner loops run along a row; with unit stride they are
// contiguous and vectorise.
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <torch/library.h>
#include <torch/types.h>

#include <algorithm>
#include <vector>

#include "../checks.h"
#include "../involution_index.h"
#include "tiles.h"

namespace involution {
namespace {

// Channels of one group handled together by a forward / grad_input task.
constexpr int64_t kChannelBlock = 16;

int64_t channel_blocks(const Problem& p) {
  return (channels_per_group(p) + kChannelBlock - 1) / kChannelBlock;
}

// acc[k] += a[k] * b[k * b_stride] for k < count; the unit-stride case is split out to vectorise.
template <typename acc_t, typename a_t, typename b_t>
inline void multiply_accumulate(acc_t* acc, const a_t* a, const b_t* b, int64_t b_stride,
                                int64_t count) {
  if (b_stride == 1) {
    for (int64_t k = 0; k < count; ++k) {
      acc[k] += static_cast<acc_t>(a[k]) * static_cast<acc_t>(b[k]);
    }
  } else {
    for (int64_t k = 0; k < count; ++k) {
      acc[k] += static_cast<acc_t>(a[k]) * static_cast<acc_t>(b[k * b_stride]);
    }
  }
}

// acc[k * acc_stride] += a[k] * b[k] for k < count.
template <typename acc_t, typename a_t, typename b_t>
inline void scatter_multiply_accumulate(acc_t* acc, int64_t acc_stride, const a_t* a, const b_t* b,
                                        int64_t count) {
  if (acc_stride == 1) {
    for (int64_t k = 0; k < count; ++k) {
      acc[k] += static_cast<acc_t>(a[k]) * static_cast<acc_t>(b[k]);
    }
  } else {
    for (int64_t k = 0; k < count; ++k) {
      acc[k * acc_stride] += static_cast<acc_t>(a[k]) * static_cast<acc_t>(b[k]);
    }
  }
}

// Rows of at most 32 bytes of accumulators use half-width (32-byte) tiles: less padding waste.
template <typename scalar_t>
bool narrow_rows(int64_t length) {
  return length * static_cast<int64_t>(sizeof(at::opmath_type<scalar_t>)) <= 32;
}

// Forward tasks [begin, end) of the B * G * Ho tasks; task (n, g, i) computes output row i of
// every channel of group g. The row's weights are loaded once and reused by all its channels.
template <typename scalar_t, int64_t kBytes>
INVOLUTION_CPU_MULTIVERSION void forward_tasks(const Problem& p, const scalar_t* input,
                                               const scalar_t* weight, scalar_t* output,
                                               int64_t begin, int64_t end) {
  using acc_t = at::opmath_type<scalar_t>;
  using cpu::kChannelTile;
  using Tile = cpu::Vector<acc_t, kBytes>;
  constexpr int64_t kTile = cpu::lanes<Tile, acc_t>();
  const Axis& rows = p.height;
  const Axis& cols = p.width;
  const int64_t per_group = channels_per_group(p);
  const int64_t padded_outputs = cpu::round_up(cols.output_size, kTile);
  const int64_t row_length = cpu::padded_input_length(cols, padded_outputs);
  const int64_t channel_stride = rows.kernel_size * row_length;
  std::vector<acc_t> weights(rows.kernel_size * cols.kernel_size * padded_outputs);
  std::vector<acc_t> inputs(kChannelTile * channel_stride);
  std::vector<int64_t> input_rows(rows.kernel_size);  // input row read by each valid kernel row
  for (int64_t task = begin; task < end; ++task) {
    const int64_t i = task % rows.output_size;
    const int64_t g = task / rows.output_size % p.groups;
    const int64_t n = task / (rows.output_size * p.groups);
    int64_t valid = 0;  // kernel rows that read inside the input (others read zero padding)
    for (int64_t u = 0; u < rows.kernel_size; ++u) {
      const int64_t h = input_index(rows, i, u);
      if (!inside(h, rows.input_size)) continue;
      input_rows[valid] = h;
      for (int64_t v = 0; v < cols.kernel_size; ++v) {
        cpu::load_row(weight + weight_offset(p, n, g, u, v, i, 0), cols.output_size,
                      weights.data() + (valid * cols.kernel_size + v) * padded_outputs,
                      padded_outputs);
      }
      ++valid;
    }
    for (int64_t c_first = g * per_group; c_first < (g + 1) * per_group; c_first += kChannelTile) {
      const int64_t count = std::min(kChannelTile, (g + 1) * per_group - c_first);
      for (int64_t cc = 0; cc < count; ++cc) {
        for (int64_t q = 0; q < valid; ++q) {
          cpu::load_padded_input_row(
              input + plane_offset(p.channels, rows.input_size, cols.input_size, n, c_first + cc,
                                   input_rows[q], 0),
              cols, inputs.data() + cc * channel_stride + q * row_length, row_length);
        }
      }
      for (int64_t t0 = 0; t0 < cols.output_size; t0 += kTile) {
        const int64_t width = std::min(kTile, cols.output_size - t0);
        auto output_at = [&](int64_t cc) {
          return output + plane_offset(p.channels, rows.output_size, cols.output_size, n,
                                       c_first + cc, i, t0);
        };
        if (count == kChannelTile) {
          Tile acc[kChannelTile];
          if (cols.stride == 1) {
            cpu::forward_tile<kChannelTile, true>(cols, valid, t0, weights.data(), padded_outputs,
                                                  inputs.data(), channel_stride, row_length, acc);
          } else {
            cpu::forward_tile<kChannelTile, false>(cols, valid, t0, weights.data(), padded_outputs,
                                                   inputs.data(), channel_stride, row_length, acc);
          }
          for (int64_t cc = 0; cc < count; ++cc) cpu::store(acc[cc], width, output_at(cc));
        } else {
          for (int64_t cc = 0; cc < count; ++cc) {
            Tile acc[1];
            const acc_t* channel_inputs = inputs.data() + cc * channel_stride;
            if (cols.stride == 1) {
              cpu::forward_tile<1, true>(cols, valid, t0, weights.data(), padded_outputs,
                                         channel_inputs, channel_stride, row_length, acc);
            } else {
              cpu::forward_tile<1, false>(cols, valid, t0, weights.data(), padded_outputs,
                                          channel_inputs, channel_stride, row_length, acc);
            }
            cpu::store(acc[0], width, output_at(cc));
          }
        }
      }
    }
  }
}

template <typename scalar_t>
void forward_kernel(const Problem& p, const scalar_t* input, const scalar_t* weight,
                    scalar_t* output) {
  const int64_t tasks = p.batch * p.groups * p.height.output_size;
  at::parallel_for(0, tasks, 1, [&](int64_t begin, int64_t end) {
    if (narrow_rows<scalar_t>(p.width.output_size)) {
      forward_tasks<scalar_t, 32>(p, input, weight, output, begin, end);
    } else {
      forward_tasks<scalar_t, 64>(p, input, weight, output, begin, end);
    }
  });
}

// grad_input for a column stride > 1: each task owns input rows of a block of channels and
// scatters into them tap by tap (only every stride-th input column receives a given tap).
template <typename scalar_t>
void grad_input_strided_kernel(const Problem& p, const scalar_t* grad_output,
                               const scalar_t* weight, scalar_t* grad_input) {
  using acc_t = at::opmath_type<scalar_t>;
  const Axis& rows = p.height;
  const Axis& cols = p.width;
  const int64_t per_group = channels_per_group(p);
  const int64_t blocks = channel_blocks(p);
  const int64_t tasks = p.batch * p.groups * blocks * rows.input_size;
  at::parallel_for(0, tasks, 1, [&](int64_t begin, int64_t end) {
    std::vector<acc_t> acc(kChannelBlock * cols.input_size);
    for (int64_t task = begin; task < end; ++task) {
      const int64_t h = task % rows.input_size;
      const int64_t block = task / rows.input_size % blocks;
      const int64_t g = task / (rows.input_size * blocks) % p.groups;
      const int64_t n = task / (rows.input_size * blocks * p.groups);
      const int64_t c_first = g * per_group + block * kChannelBlock;
      const int64_t c_count = std::min(kChannelBlock, (g + 1) * per_group - c_first);
      std::fill(acc.begin(), acc.end(), acc_t(0));
      for (int64_t u = 0; u < rows.kernel_size; ++u) {
        int64_t i;
        if (!output_index(rows, h, u, &i)) continue;
        for (int64_t v = 0; v < cols.kernel_size; ++v) {
          int64_t j_begin, j_end;
          valid_output_range(cols, v, &j_begin, &j_end);
          if (j_begin >= j_end) continue;
          const scalar_t* weight_row = weight + weight_offset(p, n, g, u, v, i, j_begin);
          const int64_t w_first = input_index(cols, j_begin, v);
          for (int64_t cc = 0; cc < c_count; ++cc) {
            const scalar_t* grad_out_row =
                grad_output + plane_offset(p.channels, rows.output_size, cols.output_size, n,
                                           c_first + cc, i, j_begin);
            scatter_multiply_accumulate(acc.data() + cc * cols.input_size + w_first,
                                        cols.stride, weight_row, grad_out_row, j_end - j_begin);
          }
        }
      }
      for (int64_t cc = 0; cc < c_count; ++cc) {
        scalar_t* grad_in_row = grad_input + plane_offset(p.channels, rows.input_size,
                                                          cols.input_size, n, c_first + cc, h, 0);
        const acc_t* acc_row = acc.data() + cc * cols.input_size;
        for (int64_t w = 0; w < cols.input_size; ++w) grad_in_row[w] = static_cast<scalar_t>(acc_row[w]);
      }
    }
  });
}

// grad_input tasks [begin, end) of the B * G * H tasks for a unit column stride; task (n, g, h)
// computes input row h of every channel of group g.
template <typename scalar_t, int64_t kBytes>
INVOLUTION_CPU_MULTIVERSION void grad_input_tasks(const Problem& p, const scalar_t* grad_output,
                                                  const scalar_t* weight, scalar_t* grad_input,
                                                  int64_t begin, int64_t end) {
  using acc_t = at::opmath_type<scalar_t>;
  using cpu::kChannelTile;
  using Tile = cpu::Vector<acc_t, kBytes>;
  constexpr int64_t kTile = cpu::lanes<Tile, acc_t>();
  const Axis& rows = p.height;
  const Axis& cols = p.width;
  const int64_t per_group = channels_per_group(p);
  const int64_t length = cpu::shifted_output_length(cols, cpu::round_up(cols.input_size, kTile));
  const int64_t first = cpu::first_output_column(cols);
  const int64_t channel_stride = rows.kernel_size * length;
  std::vector<acc_t> weights(rows.kernel_size * cols.kernel_size * length);
  std::vector<acc_t> grads(kChannelTile * channel_stride);
  std::vector<int64_t> output_rows(rows.kernel_size);  // output row of each contributing kernel row
  for (int64_t task = begin; task < end; ++task) {
    const int64_t h = task % rows.input_size;
    const int64_t g = task / rows.input_size % p.groups;
    const int64_t n = task / (rows.input_size * p.groups);
    int64_t valid = 0;
    for (int64_t u = 0; u < rows.kernel_size; ++u) {
      int64_t i;
      if (!output_index(rows, h, u, &i)) continue;
      output_rows[valid] = i;
      for (int64_t v = 0; v < cols.kernel_size; ++v) {
        cpu::load_shifted_row(weight + weight_offset(p, n, g, u, v, i, 0), cols.output_size, first,
                              weights.data() + (valid * cols.kernel_size + v) * length, length);
      }
      ++valid;
    }
    for (int64_t c_first = g * per_group; c_first < (g + 1) * per_group; c_first += kChannelTile) {
      const int64_t count = std::min(kChannelTile, (g + 1) * per_group - c_first);
      for (int64_t cc = 0; cc < count; ++cc) {
        for (int64_t q = 0; q < valid; ++q) {
          cpu::load_shifted_row(
              grad_output + plane_offset(p.channels, rows.output_size, cols.output_size, n,
                                         c_first + cc, output_rows[q], 0),
              cols.output_size, first, grads.data() + cc * channel_stride + q * length, length);
        }
      }
      for (int64_t w0 = 0; w0 < cols.input_size; w0 += kTile) {
        const int64_t width = std::min(kTile, cols.input_size - w0);
        auto grad_input_at = [&](int64_t cc) {
          return grad_input + plane_offset(p.channels, rows.input_size, cols.input_size, n,
                                           c_first + cc, h, w0);
        };
        if (count == kChannelTile) {
          Tile acc[kChannelTile];
          cpu::grad_input_tile<kChannelTile>(cols, valid, w0, weights.data(), grads.data(), length,
                                             channel_stride, acc);
          for (int64_t cc = 0; cc < count; ++cc) cpu::store(acc[cc], width, grad_input_at(cc));
        } else {
          for (int64_t cc = 0; cc < count; ++cc) {
            Tile acc[1];
            cpu::grad_input_tile<1>(cols, valid, w0, weights.data(),
                                    grads.data() + cc * channel_stride, length, channel_stride, acc);
            cpu::store(acc[0], width, grad_input_at(cc));
          }
        }
      }
    }
  }
}

template <typename scalar_t>
void grad_input_kernel(const Problem& p, const scalar_t* grad_output, const scalar_t* weight,
                       scalar_t* grad_input) {
  if (p.width.stride != 1) {
    grad_input_strided_kernel(p, grad_output, weight, grad_input);
    return;
  }
  const int64_t tasks = p.batch * p.groups * p.height.input_size;
  at::parallel_for(0, tasks, 1, [&](int64_t begin, int64_t end) {
    if (narrow_rows<scalar_t>(p.width.input_size)) {
      grad_input_tasks<scalar_t, 32>(p, grad_output, weight, grad_input, begin, end);
    } else {
      grad_input_tasks<scalar_t, 64>(p, grad_output, weight, grad_input, begin, end);
    }
  });
}

// Channels of a group whose rows a grad_weight task holds in its buffers at once.
constexpr int64_t kGradWeightChannels = 8;

// grad_weight tasks [begin, end) of the B * G * Ho tasks; task (n, g, i) computes
// grad_weight[n, g, :, :, i, :], summing over the channels of group g block by block.
template <typename scalar_t, int64_t kBytes>
INVOLUTION_CPU_MULTIVERSION void grad_weight_tasks(const Problem& p, const scalar_t* grad_output,
                                                   const scalar_t* input, scalar_t* grad_weight,
                                                   int64_t begin, int64_t end) {
  using acc_t = at::opmath_type<scalar_t>;
  using Tile = cpu::Vector<acc_t, kBytes>;
  constexpr int64_t kTile = cpu::lanes<Tile, acc_t>();
  const Axis& rows = p.height;
  const Axis& cols = p.width;
  const int64_t per_group = channels_per_group(p);
  const int64_t padded_outputs = cpu::round_up(cols.output_size, kTile);
  const int64_t row_length = cpu::padded_input_length(cols, padded_outputs);
  const int64_t channel_stride = rows.kernel_size * row_length;
  std::vector<acc_t> grads(kGradWeightChannels * padded_outputs);
  std::vector<acc_t> inputs(kGradWeightChannels * channel_stride);
  std::vector<acc_t> sums(rows.kernel_size * cols.kernel_size * padded_outputs);
  std::vector<int64_t> input_rows(rows.kernel_size);
  std::vector<int64_t> slot(rows.kernel_size);  // kernel row u -> its valid index q, or -1
  for (int64_t task = begin; task < end; ++task) {
    const int64_t i = task % rows.output_size;
    const int64_t g = task / rows.output_size % p.groups;
    const int64_t n = task / (rows.output_size * p.groups);
    int64_t valid = 0;
    for (int64_t u = 0; u < rows.kernel_size; ++u) {
      const int64_t h = input_index(rows, i, u);
      slot[u] = inside(h, rows.input_size) ? valid : -1;
      if (slot[u] >= 0) input_rows[valid++] = h;
    }
    std::fill(sums.begin(), sums.end(), acc_t(0));
    for (int64_t c_first = g * per_group; c_first < (g + 1) * per_group;
         c_first += kGradWeightChannels) {
      const int64_t count = std::min(kGradWeightChannels, (g + 1) * per_group - c_first);
      for (int64_t cc = 0; cc < count; ++cc) {
        cpu::load_row(grad_output + plane_offset(p.channels, rows.output_size, cols.output_size,
                                                 n, c_first + cc, i, 0),
                      cols.output_size, grads.data() + cc * padded_outputs, padded_outputs);
        for (int64_t q = 0; q < valid; ++q) {
          cpu::load_padded_input_row(
              input + plane_offset(p.channels, rows.input_size, cols.input_size, n, c_first + cc,
                                   input_rows[q], 0),
              cols, inputs.data() + cc * channel_stride + q * row_length, row_length);
        }
      }
      for (int64_t q = 0; q < valid; ++q) {
        for (int64_t v = 0; v < cols.kernel_size; ++v) {
          for (int64_t t0 = 0; t0 < cols.output_size; t0 += kTile) {
            acc_t* sum = sums.data() + (q * cols.kernel_size + v) * padded_outputs + t0;
            const acc_t* row_inputs = inputs.data() + q * row_length;
            if (cols.stride == 1) {
              cpu::grad_weight_tile<true, Tile>(cols, count, t0, v, grads.data(), padded_outputs,
                                          row_inputs, channel_stride, sum);
            } else {
              cpu::grad_weight_tile<false, Tile>(cols, count, t0, v, grads.data(), padded_outputs,
                                           row_inputs, channel_stride, sum);
            }
          }
        }
      }
    }
    for (int64_t u = 0; u < rows.kernel_size; ++u) {
      for (int64_t v = 0; v < cols.kernel_size; ++v) {
        scalar_t* target = grad_weight + weight_offset(p, n, g, u, v, i, 0);
        if (slot[u] < 0) {
          std::fill(target, target + cols.output_size, scalar_t(0));
        } else {
          cpu::store(sums.data() + (slot[u] * cols.kernel_size + v) * padded_outputs,
                          cols.output_size, target);
        }
      }
    }
  }
}

template <typename scalar_t>
void grad_weight_kernel(const Problem& p, const scalar_t* grad_output, const scalar_t* input,
                        scalar_t* grad_weight) {
  const int64_t tasks = p.batch * p.groups * p.height.output_size;
  at::parallel_for(0, tasks, 1, [&](int64_t begin, int64_t end) {
    if (narrow_rows<scalar_t>(p.width.output_size)) {
      grad_weight_tasks<scalar_t, 32>(p, grad_output, input, grad_weight, begin, end);
    } else {
      grad_weight_tasks<scalar_t, 64>(p, grad_output, input, grad_weight, begin, end);
    }
  });
}

at::Tensor involution_cpu(const at::Tensor& input, const at::Tensor& weight,
                          at::IntArrayRef stride, at::IntArrayRef padding,
                          at::IntArrayRef dilation) {
  const Problem p = check_forward(input, weight, stride, padding, dilation);
  const at::Tensor input_c = input.contiguous();
  const at::Tensor weight_c = weight.contiguous();
  at::Tensor output = at::empty({p.batch, p.channels, p.height.output_size, p.width.output_size},
                                input.options());
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, input.scalar_type(), "involution_cpu",
                                  [&] {
                                    forward_kernel<scalar_t>(p, input_c.const_data_ptr<scalar_t>(),
                                                             weight_c.const_data_ptr<scalar_t>(),
                                                             output.mutable_data_ptr<scalar_t>());
                                  });
  return output;
}

at::Tensor involution_grad_input_cpu(const at::Tensor& grad_output, const at::Tensor& weight,
                                     at::IntArrayRef input_size, at::IntArrayRef stride,
                                     at::IntArrayRef padding, at::IntArrayRef dilation) {
  const Problem p = check_grad_input(grad_output, weight, input_size, stride, padding, dilation);
  const at::Tensor grad_output_c = grad_output.contiguous();
  const at::Tensor weight_c = weight.contiguous();
  at::Tensor grad_input = at::empty(
      {p.batch, p.channels, p.height.input_size, p.width.input_size}, grad_output.options());
  AT_DISPATCH_FLOATING_TYPES_AND2(
      at::kHalf, at::kBFloat16, grad_output.scalar_type(), "involution_grad_input_cpu", [&] {
        grad_input_kernel<scalar_t>(p, grad_output_c.const_data_ptr<scalar_t>(),
                                    weight_c.const_data_ptr<scalar_t>(),
                                    grad_input.mutable_data_ptr<scalar_t>());
      });
  return grad_input;
}

at::Tensor involution_grad_weight_cpu(const at::Tensor& grad_output, const at::Tensor& input,
                                      int64_t groups, at::IntArrayRef kernel_size,
                                      at::IntArrayRef stride, at::IntArrayRef padding,
                                      at::IntArrayRef dilation) {
  const Problem p =
      check_grad_weight(grad_output, input, groups, kernel_size, stride, padding, dilation);
  const at::Tensor grad_output_c = grad_output.contiguous();
  const at::Tensor input_c = input.contiguous();
  at::Tensor grad_weight =
      at::empty({p.batch, p.groups, p.height.kernel_size, p.width.kernel_size,
                 p.height.output_size, p.width.output_size},
                input.options());
  AT_DISPATCH_FLOATING_TYPES_AND2(
      at::kHalf, at::kBFloat16, input.scalar_type(), "involution_grad_weight_cpu", [&] {
        grad_weight_kernel<scalar_t>(p, grad_output_c.const_data_ptr<scalar_t>(),
                                     input_c.const_data_ptr<scalar_t>(),
                                     grad_weight.mutable_data_ptr<scalar_t>());
      });
  return grad_weight;
}

}  // namespace

TORCH_LIBRARY_IMPL(involution_cuda, CPU, m) {
  m.impl("involution", &involution_cpu);
  m.impl("involution_grad_input", &involution_grad_input_cpu);
  m.impl("involution_grad_weight", &involution_grad_weight_cpu);
}

}  // namespace involution
