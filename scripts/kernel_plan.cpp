// Launch plan of the CUDA kernels, host-only: for each problem read from stdin, calls the entry
// points of csrc/cuda/kernel_sets.h (forward, grad_input, grad_weight) for every kernel set,
// layout and element type with a recording `launch` (channels_last also with the conv-view
// weight a channels_last layer hands the op), and prints one JSON line per launched
// functor: its type name, items and threads per block (a tile kernel: also its tiles and shared
// bytes per block). scripts/kernel_model.py matches
// the names against the run_items<...> kernels of the SASS, so the geometry comes from the
// kernels' own code, not from a copy of their formulas.
//
// Build: g++ -std=c++17 -I csrc scripts/kernel_plan.cpp (no torch, no CUDA headers).
// Input, one problem a line: name batch channels height width kernel groups stride padding dilation
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cxxabi.h>
#include <iostream>
#include <memory>
#include <sstream>
#include <string>
#include <type_traits>
#include <typeinfo>

#include "cuda/kernel_sets.h"

// Host stand-ins for CUDA's __nv_bfloat16 and __half: only their size, Arith and IsBfloat16
// (which chooses kernels) matter here (no functor runs). The model maps these names to the CUDA
// ones.
namespace standin {
struct BFloat16 { uint16_t bits; };
struct Half { uint16_t bits; };
}  // namespace standin

namespace involution {
namespace cuda {
template <> struct Arith<standin::BFloat16> {
  using acc_t = float;
  static float to_acc(standin::BFloat16) { return 0.0f; }
  static standin::BFloat16 from_acc(float) { return {}; }
};
template <> struct Arith<standin::Half> {
  using acc_t = float;
  static float to_acc(standin::Half) { return 0.0f; }
  static standin::Half from_acc(float) { return {}; }
};
template <> struct fast::IsBfloat16<standin::BFloat16> { static constexpr bool value = true; };
}  // namespace cuda
}  // namespace involution

namespace {

namespace cu = involution::cuda;

// A functor may choose its own block size (static kThreads); otherwise the launch uses
// plumbing.h's. The grid depends on the kernel's registers (blocks_for), so the model makes it.
template <typename F, typename = void>
struct ThreadsOf : std::integral_constant<int64_t, cu::kThreadsPerBlock> {};
template <typename F>
struct ThreadsOf<F, std::void_t<decltype(F::kThreads)>>
    : std::integral_constant<int64_t, static_cast<int64_t>(F::kThreads)> {};

// The functor's type as the compiler spells it: "[with F = ns::Name<float, 4>]" (g++) or
// "[F = ...]" (clang).
template <typename F>
const char* pretty_function() { return __PRETTY_FUNCTION__; }

template <typename F>
std::string pretty_name() {
  const std::string text = pretty_function<F>();
  const std::size_t start = text.find("F = ");
  if (start == std::string::npos) return text;
  std::string name = text.substr(start + 4);
  if (!name.empty() && name.back() == ']') name.pop_back();
  return name;
}

// The same type through the Itanium demangler, which spells template arguments (enums, bools)
// as c++filt does for the SASS names.
template <typename F>
std::string demangled_name() {
  int status = 0;
  std::unique_ptr<char, void (*)(void*)> name(
      abi::__cxa_demangle(typeid(F).name(), nullptr, nullptr, &status), std::free);
  return status == 0 ? std::string(name.get()) : std::string(typeid(F).name());
}

std::string quoted(const std::string& text) {
  std::string out = "\"";
  for (char c : text) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

// What one entry-point call launches, printed as it happens.
struct Context {
  std::string problem, dtype, set, layout, op;
};

struct RecordingLaunch {
  const Context& context;
  bool launched = false;

  template <typename Functor>
  void operator()(const Functor& functor) {
    launched = true;
    const int64_t items = functor.items();
    const int64_t threads = ThreadsOf<Functor>::value;
    // A tile kernel: its tiles (a block each) and shared memory per block; else 0 and 0.
    int64_t tiles = 0, shared_bytes = 0;
    if constexpr (cu::SharedTiles<Functor>::value) {
      tiles = functor.tiles();
      shared_bytes = functor.shared_floats() * static_cast<int64_t>(sizeof(float));
    }
    std::printf(
        "{\"problem\": %s, \"dtype\": %s, \"set\": %s, \"layout\": %s, \"op\": %s, "
        "\"functor\": %s, \"demangled\": %s, \"items\": %lld, \"threads\": %lld, "
        "\"tiles\": %lld, \"shared_bytes\": %lld}\n",
        quoted(context.problem).c_str(), quoted(context.dtype).c_str(),
        quoted(context.set).c_str(), quoted(context.layout).c_str(), quoted(context.op).c_str(),
        quoted(pretty_name<Functor>()).c_str(), quoted(demangled_name<Functor>()).c_str(),
        static_cast<long long>(items), static_cast<long long>(threads),
        static_cast<long long>(tiles), static_cast<long long>(shared_bytes));
  }
};

// Never dereferenced: the entry points only build functors, and check pack alignment.
template <typename T>
T* dummy_buffer() {
  static void* buffer = std::aligned_alloc(64, 256);
  return static_cast<T*>(buffer);
}

template <typename T>
void plan_dtype(const std::string& name, const std::string& dtype,
                const involution::Problem& p) {
  T* a = dummy_buffer<T>();
  T* b = a + 16 / sizeof(T) * 4;  // other 16-byte-aligned addresses inside the buffer
  T* result = a + 16 / sizeof(T) * 8;
  const std::pair<cu::KernelSet, const char*> sets[] = {{cu::KernelSet::kBaseline, "baseline"},
                                                        {cu::KernelSet::kFast, "fast"}};
  const std::pair<cu::Layout, const char*> layouts[] = {
      {cu::Layout::kChannelsFirst, "channels_first"}, {cu::Layout::kChannelsLast, "channels_last"}};
  for (const auto& [set, set_name] : sets) {
    for (const auto& [layout, layout_name] : layouts) {
      Context context{name, dtype, set_name, layout_name, "forward"};
      RecordingLaunch forward{context};
      cu::forward(set, layout, p, a, b, result, forward);
      context.op = "grad_input";
      RecordingLaunch grad_input{context};
      cu::grad_input(set, layout, p, a, b, result, grad_input);
      context.op = "grad_weight";
      RecordingLaunch grad_weight{context};
      cu::grad_weight(set, layout, p, a, b, result, grad_weight);
    }
    // In a channels_last model the layer's weight is a view of a channels_last convolution
    // output (B, G·KH·KW, Ho, Wo): taps innermost. Forward and grad_input read it.
    involution::Problem conv_view = p;
    const int64_t taps = p.height.kernel_size * p.width.kernel_size, channels = p.groups * taps;
    conv_view.weight = {p.height.output_size * p.width.output_size * channels, taps,
                        p.width.kernel_size, 1, p.width.output_size * channels, channels};
    Context context{name, dtype, set_name, "channels_last+conv_weight", "forward"};
    RecordingLaunch forward{context};
    cu::forward(set, cu::Layout::kChannelsLast, conv_view, a, b, result, forward);
    context.op = "grad_input";
    RecordingLaunch grad_input{context};
    cu::grad_input(set, cu::Layout::kChannelsLast, conv_view, a, b, result, grad_input);
  }
}

}  // namespace

int main() {
  std::string line;
  while (std::getline(std::cin, line)) {
    std::istringstream fields(line);
    std::string name;
    int64_t batch, channels, height, width, kernel, groups, stride, padding, dilation;
    if (!(fields >> name)) continue;  // blank line
    if (!(fields >> batch >> channels >> height >> width >> kernel >> groups >> stride >>
          padding >> dilation)) {
      std::fprintf(stderr, "kernel_plan: bad problem line: %s\n", line.c_str());
      return 2;
    }
    const int64_t out_h = involution::output_size(height, kernel, stride, padding, dilation);
    const int64_t out_w = involution::output_size(width, kernel, stride, padding, dilation);
    // Leading fields only: later members keep their default initialisers.
    const involution::Problem p{batch, channels, groups,
                                involution::Axis{height, out_h, kernel, stride, padding, dilation},
                                involution::Axis{width, out_w, kernel, stride, padding, dilation}};
    std::printf("{\"problem\": %s, \"output_height\": %lld, \"output_width\": %lld}\n",
                quoted(name).c_str(), static_cast<long long>(out_h),
                static_cast<long long>(out_w));
    plan_dtype<float>(name, "float32", p);
    plan_dtype<double>(name, "float64", p);
    plan_dtype<standin::Half>(name, "float16", p);
    plan_dtype<standin::BFloat16>(name, "bfloat16", p);
  }
  return 0;
}
