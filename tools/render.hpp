#pragma once
// cka-similarity: the CSV, JSON and SVG renderings of a result (a matrix_view).

#include "layers.hpp"

#include <Eigen/Core>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdint>
#include <limits>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

namespace tool {

/// What the renderings show besides the values.
struct matrix_view {
  std::vector<std::string> rows, cols;      ///< display names
  Eigen::MatrixXd values;                   ///< NaN: undefined
  std::string title;                        ///< the heatmap's title (kernel, estimator, n)
  std::string row_axis, col_axis;           ///< axis titles (empty for a square matrix)
  int precision = 12;                       ///< significant digits in the CSV
  double vmin = std::nan(""), vmax = std::nan("");  ///< colour range; NaN: from `unit_range`
  bool unit_range = false;                  ///< colour range 0–1 (else the data's range)
  nlohmann::json meta = nlohmann::json::object();  ///< extra JSON fields (kernel, estimator, n, undefined)
  Eigen::MatrixXd p_value, lower, upper;    ///< significance and intervals (empty when not asked for)
  double alpha = 0.05;                      ///< cells with p ≥ alpha are hatched in the heatmap
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

/// A value as text: "nan" for NaN, `digits` significant digits, and never "-0": a value that rounds to
/// zero at that precision prints with its exponent (-3e-17), an exact zero as 0.
inline std::string number(double v, int digits = 12) {
  if (std::isnan(v)) return "nan";
  if (v == 0.0) return "0";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*g", digits, v);
  return buf;
}

/// A fixed-point label (heatmap cells, legend ticks) that does not print a negative zero: a small
/// negative value keeps its sign with the digits that show it (-0.003 → "-3e-03" rather than "-0.00").
inline std::string short_number(double v, int decimals = 2) {
  if (std::isnan(v)) return "nan";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  const std::string s = buf;
  if (s.find_first_not_of("-0.") == std::string::npos) {
    if (v == 0.0 || s[0] != '-') return std::string(s[0] == '-' ? s.substr(1) : s);
    std::snprintf(buf, sizeof buf, "%.0e", v);
  }
  return buf;
}

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
  for (const auto& c : m.cols) out += "," + csv_field(c);
  out += "\n";
  for (Eigen::Index i = 0; i < m.values.rows(); ++i) {
    out += csv_field(m.rows[std::size_t(i)]);
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
      out += csv_field(m.rows[std::size_t(i)]) + "," + csv_field(m.cols[std::size_t(j)]) + "," +
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
  j["rows"] = m.rows;
  j["columns"] = m.cols;
  j["values"] = json_matrix(m.values);
  if (m.p_value.size() > 0) j["p_values"] = json_matrix(m.p_value);
  if (m.lower.size() > 0) {
    j["lower"] = json_matrix(m.lower);
    j["upper"] = json_matrix(m.upper);
  }
  return j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
}

/// Text for XML character data and attributes: well-formed UTF-8 (each invalid byte, and each character
/// XML 1.0 forbids — controls other than tab, LF, CR — becomes U+FFFD) with & < > " ' escaped.
inline std::string xml_text(const std::string& s) {
  std::string out;
  const std::string replacement = "\xEF\xBF\xBD";
  for (std::size_t i = 0; i < s.size();) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    std::size_t len = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 0;
    bool valid = len > 0 && i + len <= s.size();
    std::uint32_t cp = len == 1 ? c : len == 2 ? (c & 0x1Fu) : len == 3 ? (c & 0x0Fu) : (c & 0x07u);
    for (std::size_t k = 1; valid && k < len; ++k) {
      const unsigned char d = static_cast<unsigned char>(s[i + k]);
      valid = (d >> 6) == 0x2;
      cp = (cp << 6) | (d & 0x3Fu);
    }
    // Overlong forms, surrogates, values beyond U+10FFFF and the XML-forbidden characters.
    if (valid) {
      const std::uint32_t least[5] = {0, 0, 0x80, 0x800, 0x10000};
      valid = cp >= least[len] && cp <= 0x10FFFF && !(cp >= 0xD800 && cp <= 0xDFFF) && cp != 0xFFFE && cp != 0xFFFF &&
              !(cp < 0x20 && cp != 0x9 && cp != 0xA && cp != 0xD) && cp != 0x7F;
    }
    if (!valid) {
      out += replacement;
      i += 1;
      continue;
    }
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&apos;"; break;
      default: out.append(s, i, len);
    }
    i += len;
  }
  return out;
}

/// Number of characters (code points) of UTF-8 text, for sizing labels.
inline std::size_t text_length(const std::string& s) {
  std::size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

/// A long name shortened in the middle to at most `limit` characters ("sentence_tr…layer_11").
inline std::string ellipsize(const std::string& s, std::size_t limit) {
  if (text_length(s) <= limit) return s;
  // Cut at character boundaries: keep the head and the tail, which usually hold the distinguishing parts.
  const std::size_t head = (limit - 1) / 2, tail = limit - 1 - head;
  std::size_t i = 0, kept = 0;
  while (i < s.size() && kept < head) {
    ++i;
    while (i < s.size() && (static_cast<unsigned char>(s[i]) & 0xC0) == 0x80) ++i;
    ++kept;
  }
  std::size_t j = s.size(), back = 0;
  while (j > i && back < tail) {
    --j;
    while (j > i && (static_cast<unsigned char>(s[j]) & 0xC0) == 0x80) --j;
    ++back;
  }
  return s.substr(0, i) + "\xE2\x80\xA6" + s.substr(j);
}

/// Viridis-like colour for t in [0, 1].
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

/// The colour range [lo, hi] of a heatmap: the given bounds, else 0–1 (extended below 0 for negative
/// debiased values) with `unit_range`, else the range of the finite values (widened when they are equal).
inline std::pair<double, double> colour_range(const matrix_view& m) {
  double lo = std::numeric_limits<double>::infinity(), hi = -lo;
  for (Eigen::Index i = 0; i < m.values.size(); ++i) {
    const double v = m.values.data()[i];
    if (std::isfinite(v)) {
      lo = std::min(lo, v);
      hi = std::max(hi, v);
    }
  }
  if (!std::isfinite(lo)) {  // nothing defined: any range will do
    lo = 0;
    hi = 1;
  }
  if (m.unit_range) {
    lo = std::min(lo, 0.0);
    hi = 1.0;
  }
  if (!std::isnan(m.vmin)) lo = m.vmin;
  if (!std::isnan(m.vmax)) hi = m.vmax;
  if (!(hi > lo)) {  // one value: a small band around it
    hi = lo + 1e-3;
    lo -= 1e-3;
  }
  return {lo, hi};
}

/// The heatmap: margins sized to the (middle-ellipsised) labels with the full names as tooltips, cells
/// scaled so the whole picture is about 900 px, a viewBox so a browser scales it to its window, a colour
/// bar over the chosen range, and grey cells for undefined (NaN) values.
inline std::string svg(const matrix_view& m) {
  const Eigen::Index nr = m.values.rows(), nc = m.values.cols();
  const std::size_t limit = 32;
  auto longest = [&](const std::vector<std::string>& names) {
    std::size_t l = 0;
    for (const auto& s : names) l = std::max(l, text_length(ellipsize(s, limit)));
    return double(l);
  };
  const double char_w = 6.6, font = 11;
  const double cell = std::clamp(900.0 / double(std::max(nr, nc)), 8.0, 48.0);
  const bool numbers = cell >= 30;
  const double axis = m.row_axis.empty() ? 0 : 22;
  const double left = 16 + axis + char_w * longest(m.rows);
  const double top = 44 + axis + 0.87 * char_w * longest(m.cols) + 10;
  const double grid_w = cell * double(nc), grid_h = cell * double(nr);
  const double bar_x = left + grid_w + 24, bar_h = std::max(120.0, std::min(grid_h, 300.0));
  const double width = bar_x + 90, height = std::max(top + grid_h + 20, top + bar_h + 60);
  const auto [lo, hi] = colour_range(m);
  auto t_of = [&, lo = lo, hi = hi](double v) { return (v - lo) / (hi - lo); };
  std::ostringstream out;
  out.precision(6);
  // Only a viewBox: a browser fits the whole picture to its window, an <img> keeps the aspect ratio.
  out << "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 " << width << ' ' << height
      << "\" font-family=\"sans-serif\" font-size=\"" << font << "\">\n";
  out << "<title>" << xml_text(m.title) << "</title>\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
  const bool hatch = m.p_value.size() > 0;
  if (hatch) {
    out << "<defs><pattern id=\"ns\" patternUnits=\"userSpaceOnUse\" width=\"6\" height=\"6\" "
           "patternTransform=\"rotate(45)\"><rect width=\"2\" height=\"6\" fill=\"white\" fill-opacity=\"0.7\"/>"
           "</pattern></defs>\n";
  }
  out << "<text x=\"10\" y=\"22\" font-size=\"15\">" << xml_text(m.title) << "</text>\n";
  if (!m.row_axis.empty()) {
    // Axis titles as long as their side of the grid allows (full text in the tooltip).
    auto fit = [&](const std::string& s, double room) { return ellipsize(s, std::size_t(std::max(12.0, room / 7.2))); };
    out << "<text class=\"axis\" x=\"" << left + grid_w / 2 << "\" y=\"44\" text-anchor=\"middle\" font-weight=\"bold\"><title>"
        << xml_text(m.col_axis) << "</title>" << xml_text(fit(m.col_axis, grid_w + 2 * left)) << "</text>\n";
    out << "<text class=\"axis\" x=\"16\" y=\"" << top + grid_h / 2
        << "\" text-anchor=\"middle\" font-weight=\"bold\" transform=\"rotate(-90 16 " << top + grid_h / 2 << ")\"><title>"
        << xml_text(m.row_axis) << "</title>" << xml_text(fit(m.row_axis, grid_h + 40)) << "</text>\n";
  }
  for (Eigen::Index j = 0; j < nc; ++j) {
    const double x = left + cell * (double(j) + 0.5);
    const std::string& name = m.cols[std::size_t(j)];
    out << "<text class=\"label\" x=\"" << x << "\" y=\"" << top - 6 << "\" transform=\"rotate(-60 " << x << ' ' << top - 6
        << ")\"><title>" << xml_text(name) << "</title>" << xml_text(ellipsize(name, limit)) << "</text>\n";
  }
  for (Eigen::Index i = 0; i < nr; ++i) {
    const double y = top + cell * (double(i) + 0.5);
    const std::string& name = m.rows[std::size_t(i)];
    out << "<text class=\"label\" x=\"" << left - 6 << "\" y=\"" << y + 4 << "\" text-anchor=\"end\"><title>"
        << xml_text(name) << "</title>" << xml_text(ellipsize(name, limit)) << "</text>\n";
    for (Eigen::Index j = 0; j < nc; ++j) {
      const double v = m.values(i, j), x = left + cell * double(j), yy = top + cell * double(i);
      const double t = std::isnan(v) ? 0 : t_of(v);
      std::string tip = name + " vs " + m.cols[std::size_t(j)] + ": " + number(v, 6);
      if (hatch) tip += ", p = " + number(m.p_value(i, j), 3);
      if (m.lower.size() > 0) tip += ", interval [" + number(m.lower(i, j), 4) + ", " + number(m.upper(i, j), 4) + "]";
      out << "<rect class=\"cell\" x=\"" << x << "\" y=\"" << yy << "\" width=\"" << cell << "\" height=\"" << cell
          << "\" fill=\"" << (std::isnan(v) ? "#cccccc" : colour(t)) << "\"><title>" << xml_text(tip) << "</title></rect>\n";
      if (hatch && !std::isnan(v) && !(m.p_value(i, j) < m.alpha)) {
        out << "<rect class=\"not-significant\" x=\"" << x << "\" y=\"" << yy << "\" width=\"" << cell << "\" height=\""
            << cell << "\" fill=\"url(#ns)\" pointer-events=\"none\"/>\n";
      }
      if (numbers) {
        out << "<text x=\"" << x + cell / 2 << "\" y=\"" << yy + cell / 2 + 4 << "\" text-anchor=\"middle\" fill=\""
            << (t > 0.6 && !std::isnan(v) ? "black" : "white") << "\">" << short_number(v) << "</text>\n";
      }
    }
  }
  // Colour bar from lo to hi with five ticks.
  for (int k = 0; k < 50; ++k) {
    out << "<rect x=\"" << bar_x << "\" y=\"" << top + bar_h * (1 - (k + 1) / 50.0) << "\" width=\"16\" height=\""
        << bar_h / 50 + 0.5 << "\" fill=\"" << colour((k + 0.5) / 50) << "\"/>\n";
  }
  const double span = hi - lo;
  const int decimals = span >= 0.2 ? 2 : span >= 0.02 ? 3 : 4;
  for (int k = 0; k <= 4; ++k) {
    out << "<text x=\"" << bar_x + 22 << "\" y=\"" << top + bar_h * (1 - k / 4.0) + 4 << "\">"
        << short_number(lo + span * k / 4.0, decimals) << "</text>\n";
  }
  out << "<text x=\"" << bar_x << "\" y=\"" << top - 12 << "\">CKA</text>\n";
  if (hatch) {  // legend of the hatching
    const double ly = top + bar_h + 16;
    out << "<rect x=\"" << bar_x << "\" y=\"" << ly << "\" width=\"16\" height=\"16\" fill=\"" << colour(0.5) << "\"/>\n"
        << "<rect x=\"" << bar_x << "\" y=\"" << ly << "\" width=\"16\" height=\"16\" fill=\"url(#ns)\"/>\n"
        << "<text x=\"" << bar_x + 22 << "\" y=\"" << ly + 12 << "\">p &#8805; " << number(m.alpha, 3) << "</text>\n";
  }
  out << "</svg>\n";
  return out.str();
}

}  // namespace tool
