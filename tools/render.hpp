#pragma once
// cka-similarity: the CSV, JSON and SVG renderings of a result (a matrix_view); the SVG is cka::heatmap_svg.

#include "layers.hpp"

#include <cka/detail/text.hpp>
#include <cka/heatmap.hpp>

#include <Eigen/Core>
#include <nlohmann/json.hpp>

#include <cmath>
#include <string>
#include <vector>

namespace tool {

/// What the renderings show besides the values.
struct matrix_view {
  cka::heatmap_options picture;             ///< names (picture.rows, picture.cols), title, axes, colour range, alpha
  Eigen::MatrixXd values;                   ///< NaN: undefined
  int precision = 12;                       ///< significant digits in the CSV
  nlohmann::json meta = nlohmann::json::object();  ///< extra JSON fields (kernel, estimator, n, undefined)
  Eigen::MatrixXd p_value, lower, upper;    ///< significance and intervals (empty when not asked for)
  const std::vector<std::string>& rows() const { return picture.rows; }
  const std::vector<std::string>& cols() const { return picture.cols; }
};

/// A matrix as JSON rows, null for NaN.
inline nlohmann::json json_matrix(const Eigen::MatrixXd& v) {
  nlohmann::json rows = nlohmann::json::array();
  for (Eigen::Index i = 0; i < v.rows(); ++i) {
    nlohmann::json row = nlohmann::json::array();
    for (Eigen::Index k = 0; k < v.cols(); ++k) row.push_back(std::isnan(v(i, k)) ? nlohmann::json(nullptr) : nlohmann::json(v(i, k)));
    rows.push_back(row);
  }
  return rows;
}

using cka::detail::number;

/// One CSV field per RFC 4180: quoted (with doubled quotes) when it holds a comma, quote, CR or LF, or
/// starts or ends with a space.
inline std::string csv_field(const std::string& s) {
  const bool quote = s.find_first_of(",\"\r\n") != std::string::npos ||
                     (!s.empty() && (s.front() == ' ' || s.back() == ' '));
  if (!quote) return s;
  std::string out = "\"";
  for (char c : s) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

/// The matrix as CSV: a header row of column names after an empty corner, then one row per row layer.
inline std::string csv(const matrix_view& m) {
  std::string out;
  for (const auto& c : m.cols()) out += "," + csv_field(c);
  out += "\n";
  for (Eigen::Index i = 0; i < m.values.rows(); ++i) {
    out += csv_field(m.rows()[std::size_t(i)]);
    for (Eigen::Index j = 0; j < m.values.cols(); ++j) out += "," + number(m.values(i, j), m.precision);
    out += "\n";
  }
  return out;
}

/// The matrix as long-format CSV: row,column,cka — plus p_value and lower,upper when computed — one line
/// per cell.
inline std::string csv_long(const matrix_view& m) {
  const bool p = m.p_value.size() > 0, ci = m.lower.size() > 0;
  std::string out = std::string("row,column,cka") + (p ? ",p_value" : "") + (ci ? ",lower,upper" : "") + "\n";
  for (Eigen::Index i = 0; i < m.values.rows(); ++i)
    for (Eigen::Index j = 0; j < m.values.cols(); ++j) {
      out += csv_field(m.rows()[std::size_t(i)]) + "," + csv_field(m.cols()[std::size_t(j)]) + "," +
             number(m.values(i, j), m.precision);
      if (p) out += "," + number(m.p_value(i, j), m.precision);
      if (ci) out += "," + number(m.lower(i, j), m.precision) + "," + number(m.upper(i, j), m.precision);
      out += "\n";
    }
  return out;
}

/// The matrix as JSON: {"rows", "columns", "values" (null for NaN), plus m.meta}. Invalid UTF-8 in a
/// name is replaced by U+FFFD; control characters are escaped.
inline std::string json(const matrix_view& m) {
  nlohmann::json j = m.meta;
  j["rows"] = m.rows();
  j["columns"] = m.cols();
  j["values"] = json_matrix(m.values);
  if (m.p_value.size() > 0) j["p_values"] = json_matrix(m.p_value);
  if (m.lower.size() > 0) {
    j["lower"] = json_matrix(m.lower);
    j["upper"] = json_matrix(m.upper);
  }
  return j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
}

/// The heatmap of a result (cka::heatmap_svg).
inline std::string svg(const matrix_view& m) { return cka::heatmap_svg(m.values, m.picture, m.p_value, m.lower, m.upper); }

}  // namespace tool
