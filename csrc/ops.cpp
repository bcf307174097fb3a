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

#include <atomic>
#include <cstring>

#include "cuda_kernels_choice.h"

namespace involution {
namespace {
std::atomic<CudaKernels> cuda_kernels_choice{CudaKernels::kBaseline};
}  // namespace

CudaKernels cuda_kernels() { return cuda_kernels_choice.load(); }
void set_cuda_kernels(CudaKernels choice) { cuda_kernels_choice.store(choice); }

}  // namespace involution

namespace {

// _C._set_cuda_kernels("baseline" | "fast"); the Python wrapper validates the name.
PyObject* set_cuda_kernels_py(PyObject*, PyObject* name) {
  const char* text = PyUnicode_AsUTF8(name);
  if (text == nullptr) return nullptr;
  if (std::strcmp(text, "baseline") == 0) {
    involution::set_cuda_kernels(involution::CudaKernels::kBaseline);
  } else if (std::strcmp(text, "fast") == 0) {
    involution::set_cuda_kernels(involution::CudaKernels::kFast);
  } else {
    PyErr_Format(PyExc_ValueError, "kernels must be 'baseline' or 'fast', got '%s'", text);
    return nullptr;
  }
  Py_RETURN_NONE;
}

// _C._get_cuda_kernels() -> "baseline" | "fast"
PyObject* get_cuda_kernels_py(PyObject*, PyObject*) {
  const bool fast = involution::cuda_kernels() == involution::CudaKernels::kFast;
  return PyUnicode_FromString(fast ? "fast" : "baseline");
}

PyMethodDef methods[] = {
    {"_set_cuda_kernels", set_cuda_kernels_py, METH_O, "Choose the CUDA kernels: 'baseline' or 'fast'."},
    {"_get_cuda_kernels", get_cuda_kernels_py, METH_NOARGS, "The CUDA kernels in use."},
    {nullptr, nullptr, 0, nullptr},
};

}  // namespace

extern "C" {
// Importing involution_cuda._C runs the static registrations below; the module holds only the
// choice of CUDA kernels.
PyMODINIT_FUNC PyInit__C(void) {
  static struct PyModuleDef module_def = {PyModuleDef_HEAD_INIT, "_C", nullptr, -1, methods};
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
