// The CKA–MMD decomposition: the identity holds exactly and the Jensen bound holds over random inputs.
#include "support.hpp"

#include <cka/mmd_bound.hpp>
#include <cka/similarity.hpp>

#include <catch2/catch.hpp>

namespace {
cka::mmd_bound_options centered_grams() {
  cka::mmd_bound_options o;
  o.centered = true;
  return o;
}
}  // namespace

TEST_CASE("alignment = constant − discrepancy, and alignment <= bound", "[mmd_bound]") {
  int checked = 0;
  for (std::uint64_t seed = 0; seed < 60; ++seed) {
    const Eigen::Index n = 3 + Eigen::Index(seed % 17);
    const auto x = test::normal<double>(n, 2 + Eigen::Index(seed % 5), 100 + seed);
    // Offsets make the uncentered Grams' means differ, so the bound is not trivially 1.
    const test::mat<double> y = (test::related<double>(x, 3, 200 + seed).array() + 0.1 * double(seed % 7)).matrix();
    for (int variant = 0; variant < 3; ++variant) {
      const auto r = variant == 0   ? cka::mmd_bound(x, y)
                     : variant == 1 ? cka::mmd_bound(x, y, cka::rbf_kernel::median())
                                    : cka::mmd_bound(x, y, cka::linear_kernel{}, centered_grams());
      CAPTURE(seed, variant, r.alignment, r.bound);
      CHECK(std::abs(r.alignment - (r.constant - r.discrepancy)) <= 1e-12 * std::abs(r.alignment));
      CHECK(r.alignment <= r.bound + 1e-15);  // stated margin: rounding when the bound is tight
      CHECK(r.bound <= 1.0);
      ++checked;
    }
  }
  CHECK(checked == 180);
}

TEST_CASE("the bound's terms on a hand-checked case and against CKA", "[mmd_bound]") {
  // Centered: the alignment is linear CKA and the centered Grams have zero mean, so the bound is 1.
  const auto x = test::normal<double>(20, 4, 1);
  const auto y = test::related<double>(x, 6, 2);
  const auto c = cka::mmd_bound(x, y, cka::linear_kernel{}, centered_grams());
  CHECK(test::rel_err(c.alignment, cka::linear_cka(x, y)) < 1e-13);
  CHECK(std::abs(c.mean_gap) < 1e-15);
  CHECK(c.bound == 1.0 - 200.0 * c.mean_gap * c.mean_gap);
  // X = [1; 0], Y = [1; 1] (N = 2, one feature): K = [[1,0],[0,0]], L = all ones.
  // K̂ = K, L̂ = L/2: alignment 1/2, mean gap 1/4 − 1/2 = −1/4, bound 1 − 2·(1/16) = 7/8,
  // discrepancy ½‖K̂ − L̂‖² = ½(0.25 + 0.25 + 0.25 + 0.25) = 1/2.
  test::mat<double> x2(2, 1), y2(2, 1);
  x2 << 1, 0;
  y2 << 1, 1;
  const auto h = cka::mmd_bound(x2, y2);
  CHECK(h.alignment == 0.5);
  CHECK(h.mean_gap == -0.25);
  CHECK(h.bound == 0.875);
  CHECK(h.discrepancy == 0.5);
}
