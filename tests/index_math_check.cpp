// Drives the shared index math (csrc/involution_index.h) at offsets past 2^31 and checks every
// result against an independent computation in 128-bit integers. Run by test_reliability.py.
#include <cstdint>
#include <cstdio>
#include <cstdlib>

#include "involution_index.h"

using involution::Axis;
using involution::Problem;
using wide = __int128;

static int failures = 0;

static void expect(bool ok, const char* what, long long a, long long b) {
  if (!ok) {
    std::printf("FAILED %s: %lld != %lld\n", what, a, b);
    ++failures;
  }
}

int main() {
  // An axis long enough that products exceed 2^31 (stride * index, dilation * tap).
  const Axis axis{3'000'000'000LL, 1'500'000'000LL, 7, 2, 3, 5};
  const long long outs[] = {0, 1'073'741'824LL, 1'499'999'999LL};
  for (long long out : outs) {
    for (long long tap = 0; tap < axis.kernel_size; ++tap) {
      const long long in = involution::input_index(axis, out, tap);
      const wide want = wide(out) * axis.stride - axis.padding + wide(tap) * axis.dilation;
      expect(wide(in) == want, "input_index", in, (long long)want);
      int64_t back = -1;
      const bool found = involution::output_index(axis, in, tap, &back);
      expect(found && back == out, "output_index inverts input_index", back, out);
    }
  }
  expect(involution::output_size(int64_t{3'000'000'000}, int64_t{7}, 2, 3, 5) == 1'499'999'988LL, "output_size",
         involution::output_size(int64_t{3'000'000'000}, int64_t{7}, 2, 3, 5), 1'499'999'988LL);

  // Flat offsets of elements far past 2^31 in a (2, 4096, 512, 1024) tensor and its weight.
  const Problem p{2, 4096, 64, Axis{512, 512, 7, 1, 3, 1}, Axis{1024, 1024, 7, 1, 3, 1}};
  const long long plane = involution::plane_offset(4096, 512, 1024, 1, 4095, 511, 1023);
  expect(plane == 2LL * 4096 * 512 * 1024 - 1, "plane_offset", plane, 2LL * 4096 * 512 * 1024 - 1);
  const long long pixel = involution::pixel_offset(512, 1024, 4096, 1, 511, 1023, 4095);
  expect(pixel == 2LL * 4096 * 512 * 1024 - 1, "pixel_offset", pixel, 2LL * 4096 * 512 * 1024 - 1);
  const long long weight = involution::weight_offset(p, 1, 63, 6, 6, 511, 1023);
  expect(weight == 2LL * 64 * 49 * 512 * 1024 - 1, "weight_offset", weight, 2LL * 64 * 49 * 512 * 1024 - 1);
  expect(involution::group_of_channel(p, 4095) == 63, "group_of_channel",
         involution::group_of_channel(p, 4095), 63);
  if (failures == 0) std::printf("all index checks passed\n");
  return failures == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
