// heatmap: the SVG heatmap of a similarity matrix (cka::heatmap_svg), the picture cka-similarity --svg draws.

#include "common.hpp"

#include <cka/heatmap.hpp>

#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include <string>
#include <vector>

namespace cka::python {

using namespace nb::literals;

namespace {

/// A 2-D float array as a float64 matrix (a copy: a heatmap's matrix is small); None → empty.
Eigen::MatrixXd cells_of(const char* fn, const char* name, nb::handle h) {
  if (h.is_none()) return {};
  const matrix_arg m = to_matrix(fn, name, h, "layers × layers");
  return visit(m, [](const auto& v) { return Eigen::MatrixXd(v.template cast<double>()); });
}

}  // namespace

void register_heatmap(nb::module_& m) {
  m.def(
      "heatmap_svg",
      [](nb::handle values, nb::handle p_value, nb::handle lower, nb::handle upper, std::vector<std::string> rows,
         std::vector<std::string> cols, std::string title, std::string row_axis, std::string col_axis, double vmin,
         double vmax, bool unit_range, double alpha) {
        const char* fn = "heatmap";
        const Eigen::MatrixXd v = cells_of(fn, "values", values), p = cells_of(fn, "p_value", p_value);
        const Eigen::MatrixXd lo = cells_of(fn, "lower", lower), hi = cells_of(fn, "upper", upper);
        cka::heatmap_options o;
        o.rows = std::move(rows);
        o.cols = std::move(cols);
        o.title = std::move(title);
        o.row_axis = std::move(row_axis);
        o.col_axis = std::move(col_axis);
        o.vmin = vmin;
        o.vmax = vmax;
        o.unit_range = unit_range;
        o.alpha = alpha;
        return cka::heatmap_svg(v, o, p, lo, hi);
      },
      "values"_a, "p_value"_a = nb::none(), "lower"_a = nb::none(), "upper"_a = nb::none(), nb::kw_only(),
      "rows"_a = std::vector<std::string>(), "cols"_a = std::vector<std::string>(), "title"_a = "", "row_axis"_a = "",
      "col_axis"_a = "", "vmin"_a = std::numeric_limits<double>::quiet_NaN(),
      "vmax"_a = std::numeric_limits<double>::quiet_NaN(), "unit_range"_a = false, "alpha"_a = 0.05);
}

}  // namespace cka::python
