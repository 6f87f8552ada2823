#pragma once
// Private: the median of the squared distances held in a full n×n matrix — its checks and the source that
// select_median (select.hpp) draws on: passes over the values below the diagonal, column by column.

#include <cka/detail/checks.hpp>
#include <cka/detail/fail.hpp>
#include <cka/detail/ratio.hpp>
#include <cka/detail/scalar.hpp>
#include <cka/detail/select.hpp>
#include <cka/median_rule.hpp>

#include <Eigen/Core>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <type_traits>
#include <utility>
#include <vector>

namespace cka::detail {

/// The values below the diagonal of a full distance matrix d as a select_median source. A value's key is
/// that of its nearest double (order-preserving), exact for float and double, so that long double and
/// multiprecision values are collected before a single key decides. No sample: 2^12 buckets of the keys
/// between the smallest and the largest value make one count and one collection enough for typical data.
template <class T>
struct dense_distances : no_sample {
  using value_type = T;
  static constexpr std::uint64_t buckets = std::uint64_t(1) << 12;
  static constexpr bool exact_keys = std::is_same<T, double>::value || std::is_same<T, float>::value;
  static constexpr std::uint64_t cap = std::numeric_limits<std::uint64_t>::max();  // d is in memory anyway

  const matrix<T>& d;
  key_range whole;  // the keys of the smallest and the largest value

  key_range span() const { return whole; }

  /// The double that orders v: its nearest, or the largest double beyond their range.
  static double ordered(const T& v) { return std::min(static_cast<double>(v), std::numeric_limits<double>::max()); }

  /// f(value) for every value below the diagonal, column by column.
  template <class F>
  void for_values(F&& f) const {
    const Eigen::Index n = d.rows();
    for (Eigen::Index j = 0; j + 1 < n; ++j) {
      const T* p = d.data() + j * n + j + 1;
      for (Eigen::Index i = 0; i < n - j - 1; ++i) f(p[i]);
    }
  }

  key_counts count(const key_range& r, int shift, bool) const {
    key_counts c;
    c.buckets.assign(std::size_t(buckets), 0);
    const double lo = r.lo_value(), hi = r.hi_value();
    for_values([&](const T& v) {
      const double x = ordered(v);
      c.zeros += v == T(0);
      c.below += x < lo;
      if (x >= lo && x <= hi) ++c.buckets[std::size_t((distance_key(x) - r.lo) >> shift)];
    });
    return c;
  }

  std::pair<T, T> pick(const key_range& r, std::uint64_t before, std::uint64_t inside, rank_pair want) const {
    std::vector<T> v;
    v.reserve(std::size_t(inside));
    const double lo = r.lo_value(), hi = r.hi_value();
    for_values([&](const T& e) {
      const double x = ordered(e);
      if (x >= lo && x <= hi) v.push_back(e);
    });
    return order_values("median_squared_distance", v, before, want);
  }
};

/// The checks of median_squared_distance (at least 2 rows, square, every value below the diagonal finite
/// and non-negative) and the source over its values.
template <class T>
dense_distances<T> dense_distances_of(const char* fn, const matrix<T>& d) {
  const Eigen::Index n = d.rows();
  require_samples(fn, "the distance matrix", n, 2, "a median bandwidth");
  if (d.cols() != n) fail_argument(fn, "the distance matrix is ", n, "x", d.cols(), "; it must be square");
  T tmin = d(1, 0), tmax = d(1, 0);
  for (Eigen::Index j = 0; j + 1 < n; ++j) {  // vectorised checks, then the place of a bad value
    const auto below = d.col(j).tail(n - j - 1);
    if (!below.allFinite() || (below.array() < T(0)).any()) {
      for (Eigen::Index i = j + 1; i < n; ++i)
        if (!is_finite_value(d(i, j)) || d(i, j) < T(0)) {
          fail_argument(fn, "d(", i, ", ", j, ") = ", d(i, j), " is not a squared distance (it must be finite and non-negative)");
        }
    }
    tmin = std::min<T>(tmin, below.minCoeff());
    tmax = std::max<T>(tmax, below.maxCoeff());
  }
  using source = dense_distances<T>;
  return source{{}, d, key_range{distance_key(source::ordered(tmin)), distance_key(source::ordered(tmax))}};
}

}  // namespace cka::detail
