#include "checks.h"

#include <array>

namespace involution {
namespace {

// An option (int[2]) or a size taken from tensors (SymInt[2]): two elements, each >= minimum.
template <typename Int>
void check_pair(c10::ArrayRef<Int> value, const char* name, int64_t minimum) {
  TORCH_CHECK_VALUE(value.size() == 2, name, " must have 2 elements (height, width), got ",
                    value.size());
  for (const Int& element : value) {
    TORCH_CHECK_VALUE(element >= minimum, name, " must be >= ", minimum, ", got ", value);
  }
}

void check_tensor(const at::Tensor& tensor, const char* name, int64_t ndim, const char* layout) {
  TORCH_CHECK_VALUE(tensor.defined(), name, " must be a tensor, got None");
  TORCH_CHECK_VALUE(tensor.dim() == ndim, name, " must be a ", ndim, "-D tensor ", layout,
                    ", got shape ", tensor.sym_sizes());
  const auto dtype = tensor.scalar_type();
  TORCH_CHECK_TYPE(dtype == at::kFloat || dtype == at::kDouble || dtype == at::kHalf ||
                       dtype == at::kBFloat16,
                   name, " must be float16, bfloat16, float32 or float64, got ", dtype);
}

void check_same(const at::Tensor& a, const char* a_name, const at::Tensor& b, const char* b_name) {
  TORCH_CHECK_TYPE(a.scalar_type() == b.scalar_type(), a_name, " and ", b_name,
                   " must have the same dtype, got ", a.scalar_type(), " and ", b.scalar_type());
  TORCH_CHECK_VALUE(a.device() == b.device(), a_name, " and ", b_name,
                    " must be on the same device, got ", a.device(), " and ", b.device());
  TORCH_CHECK_VALUE(a.sym_size(0) == b.sym_size(0), a_name, " and ", b_name,
                    " must have the same batch size, got ", a.sym_size(0), " and ",
                    b.sym_size(0));
}

void check_groups(const c10::SymInt& channels, const c10::SymInt& groups) {
  TORCH_CHECK_VALUE(groups >= 1, "groups must be >= 1, got ", groups);
  TORCH_CHECK_VALUE(channels % groups == 0, "the number of channels (", channels,
                    ") must be divisible by the number of groups (", groups, ")");
}

KernelChoice parse_kernels(c10::string_view kernels) {
  if (kernels == "auto") return KernelChoice::kAuto;
  if (kernels == "baseline") return KernelChoice::kBaseline;
  if (kernels == "fast") return KernelChoice::kFast;
  TORCH_CHECK_VALUE(false, "kernels must be 'auto', 'baseline' or 'fast', got '", kernels, "'");
}

// The geometry of one axis; checks that the dilated kernel fits the padded input.
SymAxis make_axis(const c10::SymInt& input_size, const c10::SymInt& kernel_size, int64_t stride,
                  int64_t padding, int64_t dilation, const char* axis) {
  const c10::SymInt extent = (kernel_size - 1) * dilation + 1;
  TORCH_CHECK_VALUE(extent <= input_size + 2 * padding, "the dilated kernel extent ", extent,
                    " along ", axis, " exceeds the padded input size ", input_size + 2 * padding,
                    " (input ", input_size, ", padding ", padding, ")");
  return {input_size, output_size(input_size, kernel_size, stride, padding, dilation),
          kernel_size, stride, padding, dilation};
}

// Everything but the result: options, groups, both axes.
Checked make_checked(const c10::SymInt& batch, const c10::SymInt& channels,
                     const c10::SymInt& groups, c10::SymIntArrayRef input_size,
                     c10::SymIntArrayRef kernel_size, at::IntArrayRef stride,
                     at::IntArrayRef padding, at::IntArrayRef dilation,
                     c10::string_view kernels) {
  check_pair(stride, "stride", 1);
  check_pair(padding, "padding", 0);
  check_pair(dilation, "dilation", 1);
  const KernelChoice choice = parse_kernels(kernels);
  check_groups(channels, groups);
  Checked checked{batch, channels, groups, {}, {}, {}, at::MemoryFormat::Contiguous,
                  at::MemoryFormat::Contiguous, choice};
  checked.height = make_axis(input_size[0], kernel_size[0], stride[0], padding[0], dilation[0],
                             "height");
  checked.width = make_axis(input_size[1], kernel_size[1], stride[1], padding[1], dilation[1],
                            "width");
  return checked;
}

void check_output_size(const Checked& c, const at::Tensor& tensor, int64_t first_dim,
                       const char* name) {
  const c10::SymInt& out_h = c.height.output_size;
  const c10::SymInt& out_w = c.width.output_size;
  TORCH_CHECK_VALUE(tensor.sym_size(first_dim) == out_h && tensor.sym_size(first_dim + 1) == out_w,
                    name, " must have spatial size (", out_h, ", ", out_w,
                    ") = the output size for these options, got (", tensor.sym_size(first_dim),
                    ", ", tensor.sym_size(first_dim + 1), ")");
}

// weight.shape[2:4], each >= 1.
std::array<c10::SymInt, 2> weight_kernel_size(const at::Tensor& weight) {
  const std::array<c10::SymInt, 2> kernel_size = {weight.sym_size(2), weight.sym_size(3)};
  TORCH_CHECK_VALUE(kernel_size[0] >= 1 && kernel_size[1] >= 1,
                    "weight's kernel size (shape[2:4]) must be >= 1, got (", kernel_size[0], ", ",
                    kernel_size[1], ")");
  return kernel_size;
}

// channels_last when `tensor` is channels_last-contiguous (and not also plain contiguous).
at::MemoryFormat result_memory_format(const at::Tensor& tensor) {
  const bool channels_last =
      tensor.is_contiguous(at::MemoryFormat::ChannelsLast) && !tensor.is_contiguous();
  return channels_last ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous;
}

constexpr const char* kImageLayout = "(batch, channels, height, width)";
constexpr const char* kOutputLayout = "(batch, channels, out_h, out_w)";
constexpr const char* kWeightLayout = "(batch, groups, kernel_h, kernel_w, out_h, out_w)";

}  // namespace

Problem Checked::problem() const {
  const auto axis = [](const SymAxis& a) {
    return Axis{a.input_size.expect_int(), a.output_size.expect_int(), a.kernel_size.expect_int(),
                a.stride, a.padding, a.dilation};
  };
  return Problem{batch.expect_int(), channels.expect_int(), groups.expect_int(), axis(height),
                 axis(width)};
}

Checked check_forward(const at::Tensor& input, const at::Tensor& weight, at::IntArrayRef stride,
                      at::IntArrayRef padding, at::IntArrayRef dilation,
                      c10::string_view kernels) {
  check_tensor(input, "input", 4, kImageLayout);
  check_tensor(weight, "weight", 6, kWeightLayout);
  check_same(input, "input", weight, "weight");
  Checked c = make_checked(input.sym_size(0), input.sym_size(1), weight.sym_size(1),
                           input.sym_sizes().slice(2), weight_kernel_size(weight), stride, padding,
                           dilation, kernels);
  check_output_size(c, weight, 4, "weight");
  c.result_size = {c.batch, c.channels, c.height.output_size, c.width.output_size};
  c.result_format = c.image_format = result_memory_format(input);
  return c;
}

Checked check_grad_input(const at::Tensor& grad_output, const at::Tensor& weight,
                         c10::SymIntArrayRef input_size, at::IntArrayRef stride,
                         at::IntArrayRef padding, at::IntArrayRef dilation,
                         c10::string_view kernels) {
  check_tensor(grad_output, "grad_output", 4, kOutputLayout);
  check_tensor(weight, "weight", 6, kWeightLayout);
  check_same(grad_output, "grad_output", weight, "weight");
  check_pair(input_size, "input_size", 0);
  Checked c = make_checked(grad_output.sym_size(0), grad_output.sym_size(1), weight.sym_size(1),
                           input_size, weight_kernel_size(weight), stride, padding, dilation,
                           kernels);
  check_output_size(c, weight, 4, "weight");
  check_output_size(c, grad_output, 2, "grad_output");
  c.result_size = {c.batch, c.channels, c.height.input_size, c.width.input_size};
  c.result_format = c.image_format = result_memory_format(grad_output);
  return c;
}

Checked check_grad_weight(const at::Tensor& grad_output, const at::Tensor& input,
                          const c10::SymInt& groups, c10::SymIntArrayRef kernel_size,
                          at::IntArrayRef stride, at::IntArrayRef padding,
                          at::IntArrayRef dilation, c10::string_view kernels) {
  check_tensor(grad_output, "grad_output", 4, kOutputLayout);
  check_tensor(input, "input", 4, kImageLayout);
  check_same(grad_output, "grad_output", input, "input");
  check_pair(kernel_size, "kernel_size", 1);
  TORCH_CHECK_VALUE(grad_output.sym_size(1) == input.sym_size(1),
                    "grad_output and input must have the same number of channels, got ",
                    grad_output.sym_size(1), " and ", input.sym_size(1));
  Checked c = make_checked(input.sym_size(0), input.sym_size(1), groups,
                           input.sym_sizes().slice(2), kernel_size, stride, padding, dilation,
                           kernels);
  check_output_size(c, grad_output, 2, "grad_output");
  c.result_size = {c.batch, c.groups, c.height.kernel_size, c.width.kernel_size,
                   c.height.output_size, c.width.output_size};
  c.result_format = at::MemoryFormat::Contiguous;
  c.image_format = result_memory_format(input);
  return c;
}

std::vector<int64_t> Checked::concrete_result_size() const {
  std::vector<int64_t> size;
  for (const c10::SymInt& extent : result_size) size.push_back(extent.expect_int());
  return size;
}

at::Tensor allocate_result(const Checked& checked, const at::TensorOptions& options) {
  return at::empty(checked.concrete_result_size(), options.memory_format(checked.result_format));
}

}  // namespace involution
