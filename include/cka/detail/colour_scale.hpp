#pragma once
// Private: the heatmap's colour scale — a viridis-like map of [0, 1] and the range of values it spans.
// Free of Eigen.

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>
#include <utility>

namespace cka::detail {

/// Viridis-like colour for t in [0, 1] (t outside is taken as the nearer end) as "#rrggbb".
inline std::string colour(double t) {
  static const double stops[5][3] = {{68, 1, 84}, {59, 82, 139}, {33, 145, 140}, {94, 201, 98}, {253, 231, 37}};
  t = std::min(1.0, std::max(0.0, t)) * 4.0;
  const int k = std::min(3, int(t));
  const double f = t - k;
  char buf[8];
  std::snprintf(buf, sizeof buf, "#%02x%02x%02x", int(stops[k][0] + f * (stops[k + 1][0] - stops[k][0]) + 0.5),
                int(stops[k][1] + f * (stops[k + 1][1] - stops[k][1]) + 0.5),
                int(stops[k][2] + f * (stops[k + 1][2] - stops[k][2]) + 0.5));
  return buf;
}

/// The colour range [lo, hi] of values whose finite ones span [lo, hi] (lo = +inf when none is finite):
/// vmin and vmax where given (not NaN), else 0–1 (extended below 0 for negative debiased values) with
/// `unit_range`, else the data's span (widened when it is one value; 0–1 when nothing is finite).
inline std::pair<double, double> colour_range(double lo, double hi, double vmin, double vmax, bool unit_range) {
  if (!std::isfinite(lo)) {  // nothing defined: any range will do
    lo = 0;
    hi = 1;
  }
  if (unit_range) {
    lo = std::min(lo, 0.0);
    hi = 1.0;
  }
  if (!std::isnan(vmin)) lo = vmin;
  if (!std::isnan(vmax)) hi = vmax;
  if (!(hi > lo)) {  // one value: a small band around it
    hi = lo + 1e-3;
    lo -= 1e-3;
  }
  return {lo, hi};
}

}  // namespace cka::detail
