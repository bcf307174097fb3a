// CPU grad_input kernel launch: dtype dispatch, parallel tasks (grad_input_tasks.h).
#include "grad_input_channel_tasks.h"
#include "ops_cpu.h"
#include "run_tasks.h"

namespace involution {
namespace cpu {
namespace {

// The kernel of grad_input_tasks.h with its operands bound: run<Shapes>(narrow, begin, end)
// runs tasks.
template <typename scalar_t>
struct GradInputTasks {
  const Problem& p;
  Rows4<const scalar_t> grad_output;
  WeightRows<const scalar_t> weight;
  Rows4<scalar_t> grad_input;
  int64_t block;         // input rows per task
  bool channel_vectors;  // grad_input_takes_channel_vectors at this level's row lengths
  template <typename Shape>
  INVOLUTION_CPU_INLINE void run_shape(int64_t begin, int64_t end) const {
    grad_input_tasks<scalar_t, Shape>(p, grad_output, weight, grad_input, block, begin, end);
  }
  // Vectors along channels (grad_input_channel_tasks.h) where the level takes them, or one-vector
  // tiles along rows: two input rows each where the rows' stride and dilation are 1
  // (grad_input_tasks.h), else one.
  template <typename Shapes>
  INVOLUTION_CPU_INLINE void run(bool narrow, int64_t begin, int64_t end) const {
    if constexpr (kChannelVectorTypes<scalar_t>) {
      if (channel_vectors) {
        return grad_input_channel_tasks<typename Shapes::ChannelNative>(
            p, grad_output, weight, grad_input, block, begin, end);
      }
    }
    if (narrow) return run_shape<typename Shapes::Narrow>(begin, end);
    run_shape<typename Shapes::Wide>(begin, end);
  }
};

}  // namespace

void run_grad_input(const Problem& p, const at::Tensor& grad_output,
                    const at::Tensor& weight, const at::Tensor& grad_input) {
  INVOLUTION_DISPATCH_TYPES(grad_output.scalar_type(), "involution_grad_input_cpu", [&] {
    const auto go = rows_of(grad_output.const_data_ptr<scalar_t>(), grad_output);
    const auto w = weight_rows_of(weight.const_data_ptr<scalar_t>(), weight);
    const auto gx = rows_of(grad_input.mutable_data_ptr<scalar_t>(), grad_input);
    // Rows are split by stride phase: a tile covers one phase of an input row.
    const int64_t phase_length = (p.width.input_size + p.width.stride - 1) / p.width.stride;
    // Decided here, once: isa() is the level run_tasks runs the tasks at.
    const bool channel_vectors = grad_input_takes_channel_vectors<scalar_t>(p) &&
                                 channel_vectors_at(isa(), p.width.input_size);
    const int64_t block =
        task_block_rows(p, p.height.input_size, at::get_num_threads(),
                        channel_vectors ? kChannelVectorBlockRows : kRowTileBlockRows);
    const int64_t blocks = (p.height.input_size + block - 1) / block;
    run_tasks<scalar_t>(p.batch * p.groups * blocks, phase_length,
                        GradInputTasks<scalar_t>{p, go, w, gx, block, channel_vectors});
  });
}

}  // namespace cpu
}  // namespace involution
