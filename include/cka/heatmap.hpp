#pragma once
/// \file heatmap.hpp
/// The heatmap of a similarity matrix as an SVG document — the picture `cka-similarity --svg` writes and
/// `cka.heatmap` returns in Python: one cell per layer pair coloured on a viridis-like scale, grey for
/// undefined (NaN) cells, cells with p ≥ alpha hatched when p-values are given, each cell's value (and
/// p-value, interval) in its tooltip, names shortened in the middle with the full name as a tooltip.

#include <cka/detail/colour_scale.hpp>
#include <cka/detail/fail.hpp>
#include <cka/detail/text.hpp>

#include <Eigen/Core>

#include <algorithm>
#include <cmath>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

namespace cka {

/// Options of heatmap_svg.
struct heatmap_options {
  std::vector<std::string> rows;  ///< row names; empty: 0, 1, …
  std::vector<std::string> cols;  ///< column names; empty: the row names for a square matrix, else 0, 1, …
  std::string title;              ///< shown above the grid and as the document's title
  std::string row_axis, col_axis;  ///< axis titles (e.g. the two networks); empty: none
  double vmin = std::numeric_limits<double>::quiet_NaN();  ///< colour scale minimum; NaN: from the data
  double vmax = std::numeric_limits<double>::quiet_NaN();  ///< colour scale maximum; NaN: from the data
  bool unit_range = false;  ///< colours over 0–1 (below 0 for negative values) instead of the data's range
  double alpha = 0.05;      ///< with p-values, cells with p ≥ alpha (or p undefined) are hatched
};

namespace detail {

/// Names for `count` cells of one axis: the given ones (as many as there are cells) or 0, 1, ….
inline std::vector<std::string> heatmap_names(const std::vector<std::string>& given, Eigen::Index count, const char* what,
                                              const char* along) {
  if (given.empty()) {
    std::vector<std::string> names;
    for (Eigen::Index i = 0; i < count; ++i) names.push_back(std::to_string(i));
    return names;
  }
  if (Eigen::Index(given.size()) != count) {
    fail_argument("heatmap_svg", "options.", what, " has ", given.size(), " names but the matrix has ", count, " ", along);
  }
  return given;
}

/// An optional per-cell statistic: empty, or of the matrix's shape.
inline void require_cells(const Eigen::Ref<const Eigen::MatrixXd>& m, const Eigen::Ref<const Eigen::MatrixXd>& values,
                          const char* what) {
  if (m.size() == 0 || (m.rows() == values.rows() && m.cols() == values.cols())) return;
  fail_argument("heatmap_svg", what, " is ", m.rows(), "x", m.cols(), " but the values are ", values.rows(), "x",
                values.cols());
}

}  // namespace detail

/// The heatmap of `values` (NaN: undefined, drawn grey) as an SVG document of about 900 px, scaled by a
/// viewBox to any window. With `p_value` (same shape; NaN where undefined) cells with p ≥ options.alpha
/// are hatched and a legend says so; `lower` and `upper` (same shape, both or neither) add each cell's
/// interval to its tooltip. Cost O(rows·cols) text. Throws cka::invalid_argument for an empty matrix, an
/// infinite value, a p-value outside [0, 1], shapes or name counts that differ from the values', only one
/// of lower and upper, alpha outside (0, 1], an infinite vmin or vmax, or vmax ≤ vmin.
inline std::string heatmap_svg(const Eigen::Ref<const Eigen::MatrixXd>& values, const heatmap_options& options = {},
                               const Eigen::Ref<const Eigen::MatrixXd>& p_value = Eigen::MatrixXd(),
                               const Eigen::Ref<const Eigen::MatrixXd>& lower = Eigen::MatrixXd(),
                               const Eigen::Ref<const Eigen::MatrixXd>& upper = Eigen::MatrixXd()) {
  using detail::fail_argument;
  using detail::number;
  using detail::xml_text;
  const char* fn = "heatmap_svg";
  const Eigen::Index nr = values.rows(), nc = values.cols();
  if (nr == 0 || nc == 0) fail_argument(fn, "the matrix is ", nr, "x", nc, "; a heatmap needs at least one cell");
  double data_lo = std::numeric_limits<double>::infinity(), data_hi = -data_lo;
  for (Eigen::Index j = 0; j < nc; ++j)
    for (Eigen::Index i = 0; i < nr; ++i) {
      const double v = values(i, j);
      if (std::isinf(v)) fail_argument(fn, "values(", i, ", ", j, ") = ", v, " is not finite (NaN marks an undefined cell)");
      if (std::isnan(v)) continue;
      data_lo = std::min(data_lo, v);
      data_hi = std::max(data_hi, v);
    }
  detail::require_cells(p_value, values, "p_value");
  detail::require_cells(lower, values, "lower");
  detail::require_cells(upper, values, "upper");
  if ((lower.size() == 0) != (upper.size() == 0)) fail_argument(fn, "lower and upper go together; only one was given");
  for (Eigen::Index j = 0; j < p_value.cols(); ++j)
    for (Eigen::Index i = 0; i < p_value.rows(); ++i) {
      const double p = p_value(i, j);
      if (!std::isnan(p) && !(p >= 0 && p <= 1)) fail_argument(fn, "p_value(", i, ", ", j, ") = ", p, " is not in [0, 1]");
    }
  if (!(options.alpha > 0 && options.alpha <= 1)) fail_argument(fn, "options.alpha = ", options.alpha, " is not in (0, 1]");
  for (const double bound : {options.vmin, options.vmax})
    if (std::isinf(bound)) fail_argument(fn, "options.vmin and vmax must be finite (NaN: from the data), got ", bound);
  if (!std::isnan(options.vmin) && !std::isnan(options.vmax) && !(options.vmax > options.vmin)) {
    fail_argument(fn, "options.vmax = ", options.vmax, " must exceed options.vmin = ", options.vmin);
  }
  const std::vector<std::string> rows = detail::heatmap_names(options.rows, nr, "rows", "rows");
  const std::vector<std::string> cols = options.cols.empty() && nr == nc ? rows : detail::heatmap_names(options.cols, nc, "cols", "columns");

  const std::size_t limit = 32;
  auto longest = [&](const std::vector<std::string>& names) {
    std::size_t l = 0;
    for (const auto& s : names) l = std::max(l, detail::text_length(detail::ellipsize(s, limit)));
    return double(l);
  };
  const double char_w = 6.6, font = 11;
  const double cell = std::clamp(900.0 / double(std::max(nr, nc)), 8.0, 48.0);
  const bool numbers = cell >= 30;
  const double axis = options.row_axis.empty() ? 0 : 22;
  const double left = 16 + axis + char_w * longest(rows);
  const double top = 44 + axis + 0.87 * char_w * longest(cols) + 10;
  const double grid_w = cell * double(nc), grid_h = cell * double(nr);
  const double bar_x = left + grid_w + 24, bar_h = std::max(120.0, std::min(grid_h, 300.0));
  const double width = bar_x + 90, height = std::max(top + grid_h + 20, top + bar_h + 60);
  const auto [lo, hi] = detail::colour_range(data_lo, data_hi, options.vmin, options.vmax, options.unit_range);
  auto t_of = [&, lo = lo, hi = hi](double v) { return (v - lo) / (hi - lo); };
  std::ostringstream out;
  out.precision(6);
  // Only a viewBox: a browser fits the whole picture to its window, an <img> keeps the aspect ratio.
  out << "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 " << width << ' ' << height
      << "\" font-family=\"sans-serif\" font-size=\"" << font << "\">\n";
  out << "<title>" << xml_text(options.title) << "</title>\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
  const bool hatch = p_value.size() > 0;
  if (hatch) {
    out << "<defs><pattern id=\"ns\" patternUnits=\"userSpaceOnUse\" width=\"6\" height=\"6\" "
           "patternTransform=\"rotate(45)\"><rect width=\"2\" height=\"6\" fill=\"white\" fill-opacity=\"0.7\"/>"
           "</pattern></defs>\n";
  }
  out << "<text x=\"10\" y=\"22\" font-size=\"15\">" << xml_text(options.title) << "</text>\n";
  if (!options.row_axis.empty()) {
    // Axis titles as long as their side of the grid allows (full text in the tooltip).
    auto fit = [&](const std::string& s, double room) { return detail::ellipsize(s, std::size_t(std::max(12.0, room / 7.2))); };
    out << "<text class=\"axis\" x=\"" << left + grid_w / 2 << "\" y=\"44\" text-anchor=\"middle\" font-weight=\"bold\"><title>"
        << xml_text(options.col_axis) << "</title>" << xml_text(fit(options.col_axis, grid_w + 2 * left)) << "</text>\n";
    out << "<text class=\"axis\" x=\"16\" y=\"" << top + grid_h / 2
        << "\" text-anchor=\"middle\" font-weight=\"bold\" transform=\"rotate(-90 16 " << top + grid_h / 2 << ")\"><title>"
        << xml_text(options.row_axis) << "</title>" << xml_text(fit(options.row_axis, grid_h + 40)) << "</text>\n";
  }
  for (Eigen::Index j = 0; j < nc; ++j) {
    const double x = left + cell * (double(j) + 0.5);
    const std::string& name = cols[std::size_t(j)];
    out << "<text class=\"label\" x=\"" << x << "\" y=\"" << top - 6 << "\" transform=\"rotate(-60 " << x << ' ' << top - 6
        << ")\"><title>" << xml_text(name) << "</title>" << xml_text(detail::ellipsize(name, limit)) << "</text>\n";
  }
  for (Eigen::Index i = 0; i < nr; ++i) {
    const double y = top + cell * (double(i) + 0.5);
    const std::string& name = rows[std::size_t(i)];
    out << "<text class=\"label\" x=\"" << left - 6 << "\" y=\"" << y + 4 << "\" text-anchor=\"end\"><title>"
        << xml_text(name) << "</title>" << xml_text(detail::ellipsize(name, limit)) << "</text>\n";
    for (Eigen::Index j = 0; j < nc; ++j) {
      const double v = values(i, j), x = left + cell * double(j), yy = top + cell * double(i);
      const double t = std::isnan(v) ? 0 : t_of(v);
      std::string tip = name + " vs " + cols[std::size_t(j)] + ": " + number(v, 6);
      if (hatch) tip += ", p = " + number(p_value(i, j), 3);
      if (lower.size() > 0) tip += ", interval [" + number(lower(i, j), 4) + ", " + number(upper(i, j), 4) + "]";
      out << "<rect class=\"cell\" x=\"" << x << "\" y=\"" << yy << "\" width=\"" << cell << "\" height=\"" << cell
          << "\" fill=\"" << (std::isnan(v) ? "#cccccc" : detail::colour(t)) << "\"><title>" << xml_text(tip)
          << "</title></rect>\n";
      if (hatch && !std::isnan(v) && !(p_value(i, j) < options.alpha)) {
        out << "<rect class=\"not-significant\" x=\"" << x << "\" y=\"" << yy << "\" width=\"" << cell << "\" height=\""
            << cell << "\" fill=\"url(#ns)\" pointer-events=\"none\"/>\n";
      }
      if (numbers) {
        out << "<text x=\"" << x + cell / 2 << "\" y=\"" << yy + cell / 2 + 4 << "\" text-anchor=\"middle\" fill=\""
            << (t > 0.6 && !std::isnan(v) ? "black" : "white") << "\">" << detail::short_number(v) << "</text>\n";
      }
    }
  }
  // Colour bar from lo to hi with five ticks.
  for (int k = 0; k < 50; ++k) {
    out << "<rect x=\"" << bar_x << "\" y=\"" << top + bar_h * (1 - (k + 1) / 50.0) << "\" width=\"16\" height=\""
        << bar_h / 50 + 0.5 << "\" fill=\"" << detail::colour((k + 0.5) / 50) << "\"/>\n";
  }
  const double span = hi - lo;
  const int decimals = span >= 0.2 ? 2 : span >= 0.02 ? 3 : 4;
  for (int k = 0; k <= 4; ++k) {
    out << "<text x=\"" << bar_x + 22 << "\" y=\"" << top + bar_h * (1 - k / 4.0) + 4 << "\">"
        << detail::short_number(lo + span * k / 4.0, decimals) << "</text>\n";
  }
  out << "<text x=\"" << bar_x << "\" y=\"" << top - 12 << "\">CKA</text>\n";
  if (hatch) {  // legend of the hatching
    const double ly = top + bar_h + 16;
    out << "<rect x=\"" << bar_x << "\" y=\"" << ly << "\" width=\"16\" height=\"16\" fill=\"" << detail::colour(0.5) << "\"/>\n"
        << "<rect x=\"" << bar_x << "\" y=\"" << ly << "\" width=\"16\" height=\"16\" fill=\"url(#ns)\"/>\n"
        << "<text x=\"" << bar_x + 22 << "\" y=\"" << ly + 12 << "\">p &#8805; " << number(options.alpha, 3) << "</text>\n";
  }
  out << "</svg>\n";
  return out.str();
}

}  // namespace cka
