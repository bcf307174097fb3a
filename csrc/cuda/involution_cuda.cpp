// Torch-facing glue of the CUDA kernels (built only in CUDA builds): the checks (checks.h), the
// device guard and current stream, the shared steps and the kernel-choice rule of run_op.h,
// launch errors as exceptions, and the CUDA registration. The launchers (launchers.cuh) take raw
// pointers and know no torch.
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include "launchers.cuh"
#include "run_op.h"

namespace involution {
namespace {

// The CUDA type with the same bits as each torch scalar type.
template <typename T> struct CudaType { using type = T; };
template <> struct CudaType<at::Half> { using type = __half; };
template <> struct CudaType<at::BFloat16> { using type = __nv_bfloat16; };

// Runs `launcher` (one of launchers.cuh) on the device of `first`, on its current stream.
template <typename Launcher>
at::Tensor run_on_gpu(const char* op, const Checked& checked, const at::Tensor& first,
                      cuda::Shape first_shape, const at::Tensor& second, cuda::Shape second_shape,
                      cuda::Shape result_shape, const Launcher& launcher) {
  const c10::cuda::CUDAGuard guard(first.device());
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream().stream();
  return cuda::run_op<CudaType>(
      checked, first, first_shape, second, second_shape, result_shape,
      [&](auto set, auto layout, const Problem& problem, auto a, auto b, auto result) {
        const cudaError_t error = launcher(set, layout, problem, a, b, result, stream);
        TORCH_CHECK(error == cudaSuccess, op, ": the CUDA kernel failed to launch: ",
                    cudaGetErrorString(error));
      });
}

using cuda::Shape;

at::Tensor involution_cuda(const at::Tensor& input, const at::Tensor& weight,
                           at::IntArrayRef stride, at::IntArrayRef padding,
                           at::IntArrayRef dilation, c10::string_view kernels) {
  return run_on_gpu("involution", check_forward(input, weight, stride, padding, dilation, kernels),
                    input, Shape::kImage, weight, Shape::kWeight, Shape::kImage,
                    [](auto... args) { return cuda::launch_forward(args...); });
}

at::Tensor involution_grad_input_cuda(const at::Tensor& grad_output, const at::Tensor& weight,
                                      c10::SymIntArrayRef input_size, at::IntArrayRef stride,
                                      at::IntArrayRef padding, at::IntArrayRef dilation,
                                      c10::string_view kernels) {
  return run_on_gpu(
      "involution_grad_input",
      check_grad_input(grad_output, weight, input_size, stride, padding, dilation, kernels),
      grad_output, Shape::kImage, weight, Shape::kWeight, Shape::kImage,
      [](auto... args) { return cuda::launch_grad_input(args...); });
}

at::Tensor involution_grad_weight_cuda(const at::Tensor& grad_output, const at::Tensor& input,
                                       c10::SymInt groups, c10::SymIntArrayRef kernel_size,
                                       at::IntArrayRef stride, at::IntArrayRef padding,
                                       at::IntArrayRef dilation, c10::string_view kernels) {
  return run_on_gpu("involution_grad_weight",
                    check_grad_weight(grad_output, input, groups, kernel_size, stride, padding,
                                      dilation, kernels),
                    grad_output, Shape::kImage, input, Shape::kImage, Shape::kWeight,
                    [](auto... args) { return cuda::launch_grad_weight(args...); });
}

}  // namespace

TORCH_LIBRARY_IMPL(involution_cuda, CUDA, m) {
  m.impl("involution", &involution_cuda);
  m.impl("involution_grad_input", &involution_grad_input_cuda);
  m.impl("involution_grad_weight", &involution_grad_weight_cuda);
}

}  // namespace involution
