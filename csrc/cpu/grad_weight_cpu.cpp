// CPU grad_weight kernel launch: dtype dispatch, blocks of output rows, parallel tasks
// (grad_weight_plane_tasks.h where its tiles serve, grad_weight_tasks.h otherwise).
#include "grad_weight_plane_tasks.h"
#include "grad_weight_tasks.h"
#include "ops_cpu.h"
#include "run_tasks.h"

namespace involution {
namespace cpu {
namespace {

// The kernel of grad_weight_tasks.h with its operands bound: run<Shapes>(narrow, begin, end)
// runs tasks.
template <typename scalar_t>
struct GradWeightTasks {
  const Problem& p;
  Rows4<const scalar_t> grad_output;
  Rows4<const scalar_t> input;
  WeightRows<scalar_t> grad_weight;
  int64_t block;  // output rows per task
  bool planes;    // grad_weight_takes_planes
  template <typename Shape>
  INVOLUTION_CPU_INLINE void run_shape(int64_t begin, int64_t end) const {
    grad_weight_tasks<scalar_t, Shape>(p, grad_output, input, grad_weight, block, begin, end);
  }
  // Tiles along the flattened output plane where they apply, else tiles of one vector along
  // rows: only the vector width of the shape matters (one instantiation where the narrow and
  // wide shapes have the same width).
  template <typename Shapes>
  INVOLUTION_CPU_INLINE void run(bool narrow, int64_t begin, int64_t end) const {
    if (planes) {
      return grad_weight_plane_tasks<scalar_t, typename Shapes::Wide>(p, grad_output, input,
                                                                      grad_weight, block, begin,
                                                                      end);
    }
    if (narrow) return run_shape<TileShape<Shapes::Narrow::bytes, 1, 1>>(begin, end);
    run_shape<TileShape<Shapes::Wide::bytes, 1, 1>>(begin, end);
  }
};

}  // namespace

void run_grad_weight(const Problem& p, const at::Tensor& grad_output,
                     const at::Tensor& input, const at::Tensor& grad_weight) {
  INVOLUTION_DISPATCH_TYPES(input.scalar_type(), "involution_grad_weight_cpu", [&] {
    const auto go = rows_of(grad_output.const_data_ptr<scalar_t>(), grad_output);
    const auto x = rows_of(input.const_data_ptr<scalar_t>(), input);
    const auto gw = weight_rows_of(grad_weight.mutable_data_ptr<scalar_t>(), grad_weight);
    const int64_t lanes = vector_bytes(isa()) / sizeof(at::opmath_type<scalar_t>);
    const bool planes = grad_weight_takes_planes(p, gw, lanes);
    const int64_t block = planes ? plane_block_rows(p, at::get_num_threads())
                                 : task_block_rows(p, p.height.output_size, at::get_num_threads());
    const int64_t blocks = (p.height.output_size + block - 1) / block;
    run_tasks<scalar_t>(p.batch * p.groups * blocks, p.width.output_size,
                        GradWeightTasks<scalar_t>{p, go, x, gw, block, planes});
  });
}

}  // namespace cpu
}  // namespace involution
