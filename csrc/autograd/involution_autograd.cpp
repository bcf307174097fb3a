// Autograd kernels of the three involution ops (every device). The ops are bilinear, and each
// one's derivative is expressed with the others, so gradients of any order need no further
// kernels (t: the incoming gradient of the op's result):
//
//   out = involution(x, w)            dx = grad_input(t, w)       dw = grad_weight(t, x)
//   gx  = grad_input(g, w)            dg = involution(t, w)       dw = grad_weight(g, t)
//   gw  = grad_weight(g, x)           dg = involution(x, t)       dx = grad_input(g, t)
//
// The backward calls go through the dispatcher with autograd on, so under create_graph they
// record their own backward. Every op carries its CUDA kernel choice (`kernels`) and passes it
// on unchanged, so a forward and its backward run the same kernel set. Written in C++ rather
// than with torch.library.register_autograd: the Python wrapper cost tens of microseconds a
// call when the caches are cold, a fifth of stage 4's whole forward on the CPU.
#include <torch/autograd.h>
#include <torch/library.h>

#include <string>
#include <utility>
#include <vector>

#include "../op_calls.h"

namespace involution {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// stride, padding, dilation and kernels, as the forward's ctx keeps them for the backward.
struct Options {
  std::vector<int64_t> stride, padding, dilation;
  std::string kernels;
};

void save_options(AutogradContext* ctx, at::IntArrayRef stride, at::IntArrayRef padding,
                  at::IntArrayRef dilation, c10::string_view kernels) {
  ctx->saved_data["stride"] = stride;
  ctx->saved_data["padding"] = padding;
  ctx->saved_data["dilation"] = dilation;
  ctx->saved_data["kernels"] = std::string(kernels.data(), kernels.size());
}

Options saved_options(AutogradContext* ctx) {
  return {ctx->saved_data["stride"].toIntVector(), ctx->saved_data["padding"].toIntVector(),
          ctx->saved_data["dilation"].toIntVector(), ctx->saved_data["kernels"].toStringRef()};
}

// Sizes 2 and 3 of `tensor` (an image's height and width, a weight's kernel size), symbolic
// under compilation with dynamic shapes.
void save_pair(AutogradContext* ctx, const char* name, const at::Tensor& tensor) {
  ctx->saved_data[std::string(name) + "_h"] = tensor.sym_size(2);
  ctx->saved_data[std::string(name) + "_w"] = tensor.sym_size(3);
}

std::vector<c10::SymInt> saved_pair(AutogradContext* ctx, const char* name) {
  return {ctx->saved_data[std::string(name) + "_h"].toSymInt(),
          ctx->saved_data[std::string(name) + "_w"].toSymInt()};
}

// Each op's gradient in one tensor input reads the other: `first` is kept if `second` needs a
// gradient, and the other way round.
void save_inputs(AutogradContext* ctx, const at::Tensor& first, const at::Tensor& second) {
  ctx->save_for_backward({second.requires_grad() ? first : at::Tensor(),
                          first.requires_grad() ? second : at::Tensor()});
}

struct InvolutionFunction : torch::autograd::Function<InvolutionFunction> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& input, const at::Tensor& weight,
                            at::IntArrayRef stride, at::IntArrayRef padding,
                            at::IntArrayRef dilation, c10::string_view kernels) {
    at::Tensor output;
    {
      at::AutoDispatchBelowADInplaceOrView below_autograd;
      output = call_involution(input, weight, stride, padding, dilation, kernels);
    }
    // after the op: its checks have accepted the sizes read here
    save_options(ctx, stride, padding, dilation, kernels);
    save_pair(ctx, "input", input);
    save_pair(ctx, "kernel", weight);
    ctx->saved_data["groups"] = weight.sym_size(1);
    save_inputs(ctx, input, weight);
    return output;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const Options o = saved_options(ctx);
    const variable_list saved = ctx->get_saved_variables();
    const at::Tensor &input = saved[0], &weight = saved[1], &grad = grads[0];
    at::Tensor grad_input, grad_weight;
    if (ctx->needs_input_grad(0)) {
      grad_input = call_grad_input(grad, weight, saved_pair(ctx, "input"), o.stride, o.padding,
                                   o.dilation, o.kernels);
    }
    if (ctx->needs_input_grad(1)) {
      grad_weight = call_grad_weight(grad, input, ctx->saved_data["groups"].toSymInt(),
                                     saved_pair(ctx, "kernel"), o.stride, o.padding, o.dilation,
                                     o.kernels);
    }
    return {grad_input, grad_weight, {}, {}, {}, {}};
  }
};

struct GradInputFunction : torch::autograd::Function<GradInputFunction> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& grad_output,
                            const at::Tensor& weight, c10::SymIntArrayRef input_size,
                            at::IntArrayRef stride, at::IntArrayRef padding,
                            at::IntArrayRef dilation, c10::string_view kernels) {
    at::Tensor grad_input;
    {
      at::AutoDispatchBelowADInplaceOrView below_autograd;
      grad_input =
          call_grad_input(grad_output, weight, input_size, stride, padding, dilation, kernels);
    }
    save_options(ctx, stride, padding, dilation, kernels);
    save_pair(ctx, "kernel", weight);
    ctx->saved_data["groups"] = weight.sym_size(1);
    save_inputs(ctx, grad_output, weight);
    return grad_input;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const Options o = saved_options(ctx);
    const variable_list saved = ctx->get_saved_variables();
    const at::Tensor &grad_output = saved[0], &weight = saved[1], &grad = grads[0];
    at::Tensor d_grad_output, d_weight;
    if (ctx->needs_input_grad(0)) {
      d_grad_output = call_involution(grad, weight, o.stride, o.padding, o.dilation, o.kernels);
    }
    if (ctx->needs_input_grad(1)) {
      d_weight = call_grad_weight(grad_output, grad, ctx->saved_data["groups"].toSymInt(),
                                  saved_pair(ctx, "kernel"), o.stride, o.padding, o.dilation,
                                  o.kernels);
    }
    return {d_grad_output, d_weight, {}, {}, {}, {}, {}};
  }
};

struct GradWeightFunction : torch::autograd::Function<GradWeightFunction> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& grad_output,
                            const at::Tensor& input, c10::SymInt groups,
                            c10::SymIntArrayRef kernel_size, at::IntArrayRef stride,
                            at::IntArrayRef padding, at::IntArrayRef dilation,
                            c10::string_view kernels) {
    at::Tensor grad_weight;
    {
      at::AutoDispatchBelowADInplaceOrView below_autograd;
      grad_weight = call_grad_weight(grad_output, input, std::move(groups), kernel_size, stride,
                                     padding, dilation, kernels);
    }
    save_options(ctx, stride, padding, dilation, kernels);
    save_pair(ctx, "input", input);
    save_inputs(ctx, grad_output, input);
    return grad_weight;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const Options o = saved_options(ctx);
    const variable_list saved = ctx->get_saved_variables();
    const at::Tensor &grad_output = saved[0], &input = saved[1], &grad = grads[0];
    at::Tensor d_grad_output, d_input;
    if (ctx->needs_input_grad(0)) {
      d_grad_output = call_involution(input, grad, o.stride, o.padding, o.dilation, o.kernels);
    }
    if (ctx->needs_input_grad(1)) {
      d_input = call_grad_input(grad_output, grad, saved_pair(ctx, "input"), o.stride, o.padding,
                                o.dilation, o.kernels);
    }
    return {d_grad_output, d_input, {}, {}, {}, {}, {}, {}};
  }
};

at::Tensor involution_autograd(const at::Tensor& input, const at::Tensor& weight,
                               at::IntArrayRef stride, at::IntArrayRef padding,
                               at::IntArrayRef dilation, c10::string_view kernels) {
  return InvolutionFunction::apply(input, weight, stride, padding, dilation, kernels);
}

at::Tensor grad_input_autograd(const at::Tensor& grad_output, const at::Tensor& weight,
                               c10::SymIntArrayRef input_size, at::IntArrayRef stride,
                               at::IntArrayRef padding, at::IntArrayRef dilation,
                               c10::string_view kernels) {
  return GradInputFunction::apply(grad_output, weight, input_size, stride, padding, dilation,
                                  kernels);
}

at::Tensor grad_weight_autograd(const at::Tensor& grad_output, const at::Tensor& input,
                                c10::SymInt groups, c10::SymIntArrayRef kernel_size,
                                at::IntArrayRef stride, at::IntArrayRef padding,
                                at::IntArrayRef dilation, c10::string_view kernels) {
  return GradWeightFunction::apply(grad_output, input, std::move(groups), kernel_size, stride,
                                   padding, dilation, kernels);
}

}  // namespace

TORCH_LIBRARY_IMPL(involution_cuda, Autograd, m) {
  m.impl("involution", &involution_autograd);
  m.impl("involution_grad_input", &grad_input_autograd);
  m.impl("involution_grad_weight", &grad_weight_autograd);
}

}  // namespace involution
