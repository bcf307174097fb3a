// Choice of the fast kernel for a problem and its layout, and the entry points that launch it:
//   fast::forward / grad_input / grad_weight(problem, layout, a, b, result, launch)
// call `launch(functor)` with the functor of channels_first.h (NCHW) or channels_last.h (NHWC,
// 16-byte packs when the tensors and the groups allow, else one channel per pack); forward and
// grad_input in NHWC take the row kernels of rows.h where they apply (rows_apply), grad_weight
// in NHWC the row kernel of grad_weight_rows.h (grad_weight_rows_apply), all three in NCHW
// those of rows_channels_first.h (cf_rows_apply), except that the 2-byte types take the tile
// kernels of tiles_channels_first.h where they apply (tiles_apply and a plan that fits).
// `launch` is launchers.cu's Launcher on the GPU, or the emulated launch of the CPU tests.
#pragma once

#include <initializer_list>
#include <type_traits>

#include "../plumbing.h"
#include "channels_first.h"
#include "channels_last.h"
#include "grad_weight_rows.h"
#include "packs.h"
#include "rows.h"
#include "rows_channels_first.h"
#include "tiles_channels_first.h"

namespace involution {
namespace cuda {
namespace fast {

// Launches First<T> on channels-first tensors; on channels_last ones Last<T, N> with 16-byte
// packs when `packed` (the channels_last tensors' bases) and the groups allow, else N = 1.
// Tensors are contiguous in `layout`; the weight is always (B, G, KH, KW, Ho, Wo).
template <template <typename> class First, template <typename, int> class Last, typename T,
          typename Launch>
void launch_for_layout(const Problem& p, Layout layout, const T* a, const T* b, T* result,
                       std::initializer_list<const void*> packed, Launch&& launch) {
  if (layout == Layout::kChannelsFirst) {
    launch(First<T>{p, a, b, result});
  } else if (channels_last_pack<T>(p, packed) > 1) {
    launch(Last<T, kWidePack<T>>{p, a, b, result});
  } else {
    launch(Last<T, 1>{p, a, b, result});
  }
}

// Calls try_width(std::integral_constant<int, KW>) for the kernel widths the row kernels are
// built for (7, then 3) until one returns true, as it does when it launched a kernel.
template <typename TryWidth>
bool for_row_kernel_widths(const TryWidth& try_width) {
  return try_width(std::integral_constant<int, 7>{}) ||
         try_width(std::integral_constant<int, 3>{});
}

// Whether a row kernel has a kPixelPairs version (its kReadsWeightPairs; none without one).
template <typename Rows, typename = void>
struct ReadsWeightPairs : std::false_type {};
template <typename Rows>
struct ReadsWeightPairs<Rows, decltype(void(Rows::kReadsWeightPairs))>
    : std::integral_constant<bool, Rows::kReadsWeightPairs> {};

// Launches Rows<T, KW, order>{p, a, b, result, extra...}, with the order whose weight stride is
// 1 (rows_apply, cf_rows_apply and tiles_apply accept only such weights), in pairs where the
// kernel and the weight allow it. `b` is the weight.
template <template <typename, int, WeightOrder> class Rows, int KW, typename T, typename Launch,
          typename... Extra>
void launch_in_weight_order(const Problem& p, const T* a, const T* b, T* result,
                            Launch&& launch, const Extra&... extra) {
  if constexpr (ReadsWeightPairs<Rows<T, KW, WeightOrder::kPixelPairs>>::value) {
    if (weight_pairs_aligned<T>(p, b)) {
      return launch(Rows<T, KW, WeightOrder::kPixelPairs>{p, a, b, result, extra...});
    }
  }
  if (p.weight.col == 1) {
    launch(Rows<T, KW, WeightOrder::kPixelsInner>{p, a, b, result, extra...});
  } else {
    launch(Rows<T, KW, WeightOrder::kTapsInner>{p, a, b, result, extra...});
  }
}

// Launches Rows<T, KW, order> when the row kernels apply to a channels_last problem (kernel
// width KW of 3 or 7) and returns true; else false, launching nothing.
template <template <typename, int, WeightOrder> class Rows, typename T, typename Launch>
bool launch_rows(const Problem& p, Layout layout, const T* a, const T* b, T* result,
                 std::initializer_list<const void*> packed, bool unit_height_stride,
                 Launch&& launch) {
  return layout == Layout::kChannelsLast && for_row_kernel_widths([&](auto width) {
           constexpr int KW = decltype(width)::value;
           if (!rows_apply<T>(p, KW, packed, unit_height_stride)) return false;
           launch_in_weight_order<Rows, KW>(p, a, b, result, launch);
           return true;
         });
}

// The same for the channels-first row kernels.
template <template <typename, int, WeightOrder> class Rows, typename T, typename Launch>
bool launch_cf_rows(const Problem& p, Layout layout, const T* a, const T* b, T* result,
                    Launch&& launch) {
  return layout == Layout::kChannelsFirst && for_row_kernel_widths([&](auto width) {
           constexpr int KW = decltype(width)::value;
           if (!cf_rows_apply<T>(p, KW, true, Rows<T, KW, WeightOrder::kPixelsInner>::V)) {
             return false;
           }
           launch_in_weight_order<Rows, KW>(p, a, b, result, launch);
           return true;
         });
}

// Launches Tiles<T, KW, order> when the channels-first tile kernels apply (`unit_height_stride`:
// grad_input's also need stride 1 along the height) and returns true; else false.
template <template <typename, int, WeightOrder> class Tiles, typename T, typename Launch>
bool launch_cf_tiles(const Problem& p, Layout layout, const T* a, const T* b, T* result,
                     bool unit_height_stride, Launch&& launch) {
  if constexpr (kTileTypes<T>) {
    return layout == Layout::kChannelsFirst && for_row_kernel_widths([&](auto width) {
             constexpr int KW = decltype(width)::value;
             if (!tiles_apply<T>(p, KW, true) || (unit_height_stride && p.height.stride != 1)) {
               return false;
             }
             const TilePlan plan = Tiles<T, KW, WeightOrder::kPixelsInner>::make_plan(p);
             if (!plan.fits()) return false;
             launch_in_weight_order<Tiles, KW>(p, a, b, result, launch, plan);
             return true;
           });
  }
  return false;
}

// The grad_weight row kernels (they read no weight): channels_last or channels-first.
template <typename T, typename Launch>
bool launch_grad_weight_rows(const Problem& p, Layout layout, const T* grad_output,
                             const T* input, T* grad_weight, Launch&& launch) {
  return for_row_kernel_widths([&](auto width) {
    constexpr int KW = decltype(width)::value;
    if (layout == Layout::kChannelsLast) {
      if (!grad_weight_rows_apply<T>(p, KW, {grad_output, input})) return false;
      launch(GradWeightRowsChannelsLast<T, KW>::make(p, grad_output, input, grad_weight));
    } else {
      if constexpr (kTileTypes<T>) {
        if (tiles_apply<T>(p, KW, false)) {
          const TilePlan plan = GradWeightTilesChannelsFirst<T, KW>::make_plan(p);
          if (plan.fits()) {
            launch(GradWeightTilesChannelsFirst<T, KW>{p, grad_output, input, grad_weight, plan});
            return true;
          }
        }
      }
      if (!cf_rows_apply<T>(p, KW, false, GradWeightRowsChannelsFirst<T, KW>::V)) return false;
      launch(GradWeightRowsChannelsFirst<T, KW>{p, grad_output, input, grad_weight});
    }
    return true;
  });
}

template <typename T, typename Launch>
void forward(const Problem& p, Layout layout, const T* input, const T* weight, T* output,
             Launch&& launch) {
  if (launch_rows<ForwardRowsChannelsLast>(p, layout, input, weight, output, {input, output},
                                           /*unit_height_stride=*/false, launch) ||
      launch_cf_tiles<ForwardTilesChannelsFirst>(p, layout, input, weight, output,
                                                 /*unit_height_stride=*/false, launch) ||
      launch_cf_rows<ForwardRowsChannelsFirst>(p, layout, input, weight, output, launch)) {
    return;
  }
  launch_for_layout<ForwardChannelsFirst, ForwardChannelsLast>(p, layout, input, weight, output,
                                                               {input, output}, launch);
}

template <typename T, typename Launch>
void grad_input(const Problem& p, Layout layout, const T* grad_output, const T* weight,
                T* grad_input, Launch&& launch) {
  if (launch_rows<GradInputRowsChannelsLast>(p, layout, grad_output, weight, grad_input,
                                             {grad_output, grad_input},
                                             /*unit_height_stride=*/true, launch) ||
      launch_cf_tiles<GradInputTilesChannelsFirst>(p, layout, grad_output, weight, grad_input,
                                                   /*unit_height_stride=*/true, launch) ||
      launch_cf_rows<GradInputRowsChannelsFirst>(p, layout, grad_output, weight, grad_input,
                                                 launch)) {
    return;
  }
  launch_for_layout<GradInputChannelsFirst, GradInputChannelsLast>(
      p, layout, grad_output, weight, grad_input, {grad_output, grad_input}, launch);
}

template <typename T, typename Launch>
void grad_weight(const Problem& p, Layout layout, const T* grad_output, const T* input,
                 T* grad_weight, Launch&& launch) {
  if (launch_grad_weight_rows(p, layout, grad_output, input, grad_weight, launch)) return;
  launch_for_layout<GradWeightChannelsFirst, GradWeightChannelsLast>(
      p, layout, grad_output, input, grad_weight, {grad_output, input}, launch);
}

}  // namespace fast
}  // namespace cuda
}  // namespace involution
