// Schemas of the three involution ops. Kernels register per dispatch key: cpu/, cuda/ (CUDA
// builds), autocast/, autograd/; the fake kernels are registered from Python
// (involution_cuda/ops.py).
//
//   involution(input, weight)                  -> output       out = sum_taps weight * input
//   involution_grad_input(grad_output, weight) -> grad_input   (adjoint of involution in input)
//   involution_grad_weight(grad_output, input) -> grad_weight  (adjoint of involution in weight)
//
// The three are bilinear and closed under differentiation: the derivatives of each are
// expressed with the others, so any order of backward needs no further kernels. Sizes that come
// from tensors (input_size, groups, kernel_size) are SymInt, so compiled graphs with dynamic
// shapes do not specialise on them. `kernels` chooses the CUDA kernels ("auto", "baseline" or
// "fast"); autograd passes a forward's choice on to its backward ops.
#include <torch/library.h>

TORCH_LIBRARY(involution_cuda, m) {
  m.def(
      "involution(Tensor input, Tensor weight, int[2] stride, int[2] padding, int[2] dilation,"
      " str kernels=\"auto\") -> Tensor");
  m.def(
      "involution_grad_input(Tensor grad_output, Tensor weight, SymInt[2] input_size,"
      " int[2] stride, int[2] padding, int[2] dilation, str kernels=\"auto\") -> Tensor");
  m.def(
      "involution_grad_weight(Tensor grad_output, Tensor input, SymInt groups,"
      " SymInt[2] kernel_size, int[2] stride, int[2] padding, int[2] dilation,"
      " str kernels=\"auto\") -> Tensor");
}
