// CPU forward kernel launch: dtype dispatch, blocks of output rows, parallel tasks
// (forward_tasks.h).
#include "forward_channel_tasks.h"
#include "ops_cpu.h"
#include "run_tasks.h"

namespace involution {
namespace cpu {
namespace {

// The kernel of forward_tasks.h with its operands bound: run<Shapes>(narrow, begin, end)
// runs tasks.
template <typename scalar_t>
struct ForwardTasks {
  const Problem& p;
  Rows4<const scalar_t> input;
  WeightRows<const scalar_t> weight;
  Rows4<scalar_t> output;
  int64_t block;         // output rows per task
  bool channel_vectors;  // forward_takes_channel_vectors at this level's row lengths
  template <typename Shape>
  INVOLUTION_CPU_INLINE void run_shape(int64_t begin, int64_t end) const {
    forward_tasks<scalar_t, Shape>(p, input, weight, output, block, begin, end);
  }
  // Vectors along channels (forward_channel_tasks.h) where the level takes them, or one-vector
  // tiles along rows: two output rows each where their kernel rows share input rows
  // (forward_tasks.h), else one.
  template <typename Shapes>
  INVOLUTION_CPU_INLINE void run(bool narrow, int64_t begin, int64_t end) const {
    if constexpr (kChannelVectorTypes<scalar_t>) {
      if (channel_vectors) {
        return forward_channel_tasks<typename Shapes::ChannelNative>(p, input, weight, output,
                                                                     block, begin, end);
      }
    }
    if (narrow) return run_shape<typename Shapes::Narrow>(begin, end);
    run_shape<typename Shapes::Wide>(begin, end);
  }
};

}  // namespace

void run_forward(const Problem& p, const at::Tensor& input, const at::Tensor& weight,
                 const at::Tensor& output) {
  INVOLUTION_DISPATCH_TYPES(input.scalar_type(), "involution_cpu", [&] {
    const auto x = rows_of(input.const_data_ptr<scalar_t>(), input);
    const auto w = weight_rows_of(weight.const_data_ptr<scalar_t>(), weight);
    const auto out = rows_of(output.mutable_data_ptr<scalar_t>(), output);
    // Decided here, once: isa() is the level run_tasks runs the tasks at.
    const bool channel_vectors = forward_takes_channel_vectors<scalar_t>(p, w.step()) &&
                                 channel_vectors_at(isa(), p.width.output_size);
    const int64_t block =
        task_block_rows(p, p.height.output_size, at::get_num_threads(),
                        channel_vectors ? kChannelVectorBlockRows : kRowTileBlockRows);
    const int64_t blocks = (p.height.output_size + block - 1) / block;
    run_tasks<scalar_t>(p.batch * p.groups * blocks, p.width.output_size,
                        ForwardTasks<scalar_t>{p, x, w, out, block, channel_vectors});
  });
}

}  // namespace cpu
}  // namespace involution
