// Schemas of the three involution ops and the Python module that loads them.
//
//   involution(input, weight)            -> output       out = sum_taps weight * input
//   involution_grad_input(grad_output, weight) -> grad_input  (adjoint of involution in input)
//   involution_grad_weight(grad_output, input) -> grad_weight (adjoint of involution in weight)
//
// The three are bilinear and closed under differentiation: the derivatives of each are
// expressed with the others (see involution_cuda/ops.py), so any order of backward needs no
// further kernels. Backends register in csrc/cpu and csrc/cuda.
#include <Python.h>
#include <torch/library.h>

extern "C" {
// Importing involution_cuda._C runs the static registrations below; the module itself is empty.
PyMODINIT_FUNC PyInit__C(void) {
  static struct PyModuleDef module_def = {PyModuleDef_HEAD_INIT, "_C", nullptr, -1, nullptr};
  return PyModule_Create(&module_def);
}
}

TORCH_LIBRARY(involution_cuda, m) {
  m.def(
      "involution(Tensor input, Tensor weight, int[2] stride, int[2] padding, int[2] dilation)"
      " -> Tensor");
  m.def(
      "involution_grad_input(Tensor grad_output, Tensor weight, int[2] input_size,"
      " int[2] stride, int[2] padding, int[2] dilation) -> Tensor");
  m.def(
      "involution_grad_weight(Tensor grad_output, Tensor input, int groups, int[2] kernel_size,"
      " int[2] stride, int[2] padding, int[2] dilation) -> Tensor");
}
