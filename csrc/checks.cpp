#include "checks.h"

#include <string>

namespace involution {
namespace {

void check_pair(at::IntArrayRef value, const char* name, int64_t minimum) {
  TORCH_CHECK_VALUE(value.size() == 2, name, " must have 2 elements (height, width), got ",
                    value.size());
  for (const int64_t element : value) {
    TORCH_CHECK_VALUE(element >= minimum, name, " must be >= ", minimum, ", got ", value);
  }
}

void check_tensor(const at::Tensor& tensor, const char* name, int64_t ndim) {
  TORCH_CHECK_VALUE(tensor.defined(), name, " must be a tensor, got None");
  TORCH_CHECK_VALUE(tensor.dim() == ndim, name, " must be a ", ndim, "-D tensor, got shape ",
                    tensor.sizes());
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
  TORCH_CHECK_VALUE(a.size(0) == b.size(0), a_name, " and ", b_name,
                    " must have the same batch size, got ", a.size(0), " and ", b.size(0));
}

// Fills the geometry of both axes from sizes and options and checks the kernel fits.
void fill_axes(Problem* problem, int64_t in_h, int64_t in_w, int64_t k_h, int64_t k_w,
               at::IntArrayRef stride, at::IntArrayRef padding, at::IntArrayRef dilation) {
  check_pair(stride, "stride", 1);
  check_pair(padding, "padding", 0);
  check_pair(dilation, "dilation", 1);
  TORCH_CHECK_VALUE(k_h >= 1 && k_w >= 1, "kernel size must be >= 1, got (", k_h, ", ", k_w, ")");
  const int64_t in_size[2] = {in_h, in_w};
  const int64_t kernel[2] = {k_h, k_w};
  Axis* axes[2] = {&problem->height, &problem->width};
  for (int d = 0; d < 2; ++d) {
    const int64_t extent = dilation[d] * (kernel[d] - 1) + 1;
    TORCH_CHECK_VALUE(extent <= in_size[d] + 2 * padding[d], "dilated kernel extent ", extent,
                      " exceeds the padded input size ", in_size[d] + 2 * padding[d],
                      " along ", d == 0 ? "height" : "width");
    *axes[d] = Axis{in_size[d],
                    output_size(in_size[d], kernel[d], stride[d], padding[d], dilation[d]),
                    kernel[d], stride[d], padding[d], dilation[d]};
  }
}

void check_groups(int64_t channels, int64_t groups) {
  TORCH_CHECK_VALUE(groups >= 1, "groups must be >= 1, got ", groups);
  TORCH_CHECK_VALUE(channels % groups == 0, "the number of channels (", channels,
                    ") must be divisible by the number of groups (", groups, ")");
}

void check_output_size(const Problem& p, int64_t out_h, int64_t out_w, const char* name) {
  TORCH_CHECK_VALUE(out_h == p.height.output_size && out_w == p.width.output_size, name,
                    " must have spatial size (", p.height.output_size, ", ", p.width.output_size,
                    ") = the output size for these options, got (", out_h, ", ", out_w, ")");
}

}  // namespace

Problem check_forward(const at::Tensor& input, const at::Tensor& weight, at::IntArrayRef stride,
                      at::IntArrayRef padding, at::IntArrayRef dilation) {
  check_tensor(input, "input", 4);
  check_tensor(weight, "weight", 6);
  check_same(input, "input", weight, "weight");
  Problem p{};
  p.batch = input.size(0);
  p.channels = input.size(1);
  p.groups = weight.size(1);
  check_groups(p.channels, p.groups);
  fill_axes(&p, input.size(2), input.size(3), weight.size(2), weight.size(3), stride, padding,
            dilation);
  check_output_size(p, weight.size(4), weight.size(5), "weight");
  return p;
}

Problem check_grad_input(const at::Tensor& grad_output, const at::Tensor& weight,
                         at::IntArrayRef input_size, at::IntArrayRef stride,
                         at::IntArrayRef padding, at::IntArrayRef dilation) {
  check_tensor(grad_output, "grad_output", 4);
  check_tensor(weight, "weight", 6);
  check_same(grad_output, "grad_output", weight, "weight");
  check_pair(input_size, "input_size", 0);
  Problem p{};
  p.batch = grad_output.size(0);
  p.channels = grad_output.size(1);
  p.groups = weight.size(1);
  check_groups(p.channels, p.groups);
  fill_axes(&p, input_size[0], input_size[1], weight.size(2), weight.size(3), stride, padding,
            dilation);
  check_output_size(p, weight.size(4), weight.size(5), "weight");
  check_output_size(p, grad_output.size(2), grad_output.size(3), "grad_output");
  return p;
}

Problem check_grad_weight(const at::Tensor& grad_output, const at::Tensor& input, int64_t groups,
                          at::IntArrayRef kernel_size, at::IntArrayRef stride,
                          at::IntArrayRef padding, at::IntArrayRef dilation) {
  check_tensor(grad_output, "grad_output", 4);
  check_tensor(input, "input", 4);
  check_same(grad_output, "grad_output", input, "input");
  check_pair(kernel_size, "kernel_size", 1);
  TORCH_CHECK_VALUE(grad_output.size(1) == input.size(1),
                    "grad_output and input must have the same number of channels, got ",
                    grad_output.size(1), " and ", input.size(1));
  Problem p{};
  p.batch = input.size(0);
  p.channels = input.size(1);
  p.groups = groups;
  check_groups(p.channels, p.groups);
  fill_axes(&p, input.size(2), input.size(3), kernel_size[0], kernel_size[1], stride, padding,
            dilation);
  check_output_size(p, grad_output.size(2), grad_output.size(3), "grad_output");
  return p;
}

at::MemoryFormat result_memory_format(const at::Tensor& tensor) {
  const bool channels_last =
      tensor.is_contiguous(at::MemoryFormat::ChannelsLast) && !tensor.is_contiguous();
  return channels_last ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous;
}

}  // namespace involution
