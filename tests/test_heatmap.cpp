// The heatmap (cka::heatmap_svg): one cell per value with the colour of its place in the range, grey for
// undefined cells, hatching exactly where p ≥ alpha, names and titles as well-formed XML, and a clear error
// for every malformed input. That the tool draws the same picture is tests/tool's byte-for-byte check of
// docs/cka-demo.svg against `cka-similarity --demo`.
#include <cka/heatmap.hpp>

#include <catch2/catch.hpp>

#include <Eigen/Core>

#include <cmath>
#include <functional>
#include <limits>
#include <string>
#include <vector>

using Catch::Matchers::Contains;

namespace {

const double undefined = std::numeric_limits<double>::quiet_NaN();

std::size_t count(const std::string& text, const std::string& what) {
  std::size_t n = 0;
  for (std::size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + what.size())) ++n;
  return n;
}

/// The fill of the cell whose tooltip starts with `tip`.
std::string fill_of(const std::string& svg, const std::string& tip) {
  const std::size_t at = svg.find("<title>" + tip);
  REQUIRE(at != std::string::npos);
  const std::size_t fill = svg.rfind("fill=\"", at);
  return svg.substr(fill + 6, 7);
}

Eigen::MatrixXd values3() {
  Eigen::MatrixXd v(3, 3);
  v << 1.0, 0.8, undefined, 0.8, 1.0, 0.5, undefined, 0.5, 1.0;
  return v;
}

}  // namespace

TEST_CASE("heatmap: a cell per value, coloured by its place in the range, grey when undefined", "[heatmap]") {
  cka::heatmap_options o;
  o.rows = {"a", "b", "c"};
  o.title = "linear CKA";
  const std::string svg = cka::heatmap_svg(values3(), o);
  CHECK(svg.rfind("<svg xmlns=\"http://www.w3.org/2000/svg\"", 0) == 0);
  CHECK(svg.substr(svg.size() - 7) == "</svg>\n");
  CHECK(count(svg, "class=\"cell\"") == 9);
  CHECK(count(svg, "class=\"label\"") == 6);  // the rows' names serve the columns of a square matrix
  CHECK(count(svg, "fill=\"#cccccc\"") == 2);
  CHECK(count(svg, "not-significant") == 0);
  CHECK(count(svg, "<title>linear CKA</title>") == 1);
  // The data span 0.5–1: the lowest value takes the scale's first colour, the highest its last.
  CHECK(fill_of(svg, "b vs c: 0.5") == "#440154");
  CHECK(fill_of(svg, "a vs a: 1") == "#fde725");
  CHECK(fill_of(svg, "a vs c: nan") == "#cccccc");

  o.unit_range = true;  // 0–1: 0.5 sits in the middle of the scale
  CHECK(fill_of(cka::heatmap_svg(values3(), o), "b vs c: 0.5") == "#21918c");
  o.unit_range = false;
  o.vmin = 0.5;
  o.vmax = 0.6;  // beyond vmax: the last colour
  CHECK(fill_of(cka::heatmap_svg(values3(), o), "a vs b: 0.8") == "#fde725");
}

TEST_CASE("heatmap: default names, a rectangular matrix and axis titles", "[heatmap]") {
  const Eigen::MatrixXd v = Eigen::MatrixXd::Constant(2, 4, 0.7);
  const std::string plain = cka::heatmap_svg(v);
  CHECK(count(plain, "class=\"cell\"") == 8);
  CHECK(count(plain, "<title>1 vs 3: 0.7</title>") == 1);
  cka::heatmap_options o;
  o.rows = {"net_a.1", "net_a.2"};
  o.cols = {"w", "x", "y", "z"};
  o.row_axis = "net_a";
  o.col_axis = "net_b";
  const std::string svg = cka::heatmap_svg(v, o);
  CHECK(count(svg, "class=\"axis\"") == 2);
  CHECK(count(svg, "<title>net_a.2 vs z: 0.7</title>") == 1);
  // One value: a small band around it, so the cells take the middle colour.
  CHECK(fill_of(svg, "net_a.1 vs w: 0.7") == "#21918c");
}

TEST_CASE("heatmap: hatching exactly where p >= alpha, p-values and intervals in the tooltips", "[heatmap]") {
  Eigen::MatrixXd p(3, 3), lower(3, 3), upper(3, 3);
  p << 0.001, 0.04, undefined, 0.04, 0.001, 0.05, undefined, 0.05, 0.2;
  lower = values3().array() - 0.1;
  upper = values3().array() + 0.1;
  cka::heatmap_options o;
  o.rows = {"a", "b", "c"};
  const std::string svg = cka::heatmap_svg(values3(), o, p);
  CHECK(count(svg, "class=\"not-significant\"") == 3);  // 0.05 twice and 0.2; the undefined cells are grey
  CHECK(count(svg, "p &#8805; 0.05") == 1);
  CHECK(count(svg, "<title>b vs c: 0.5, p = 0.05</title>") == 1);
  o.alpha = 0.01;
  CHECK(count(cka::heatmap_svg(values3(), o, p), "class=\"not-significant\"") == 5);
  const std::string ci = cka::heatmap_svg(values3(), o, p, lower, upper);
  CHECK(count(ci, "<title>a vs b: 0.8, p = 0.04, interval [0.7, 0.9]</title>") == 1);
  CHECK(count(ci, "<title>b vs a: 0.8, p = 0.04, interval [0.7, 0.9]</title>") == 1);
}

TEST_CASE("heatmap: names and titles as well-formed XML", "[heatmap]") {
  cka::heatmap_options o;
  o.rows = {"<b>&\"'", std::string("bad\xff") + "byte"};
  o.title = "a < b";
  const std::string svg = cka::heatmap_svg(Eigen::MatrixXd::Identity(2, 2), o);
  CHECK(count(svg, "&lt;b&gt;&amp;&quot;&apos;") > 0);
  CHECK(count(svg, "bad\xEF\xBF\xBD" "byte") > 0);
  CHECK(count(svg, "<title>a &lt; b</title>") == 1);
  CHECK(count(svg, "<b>") == 0);
}

TEST_CASE("heatmap: every malformed input is a cka::invalid_argument naming the fault", "[heatmap][errors]") {
  const Eigen::MatrixXd v = values3();
  Eigen::MatrixXd inf = v, p = Eigen::MatrixXd::Constant(3, 3, 0.5), p_bad = p;
  inf(1, 2) = std::numeric_limits<double>::infinity();
  p_bad(2, 0) = 1.5;
  cka::heatmap_options names, alpha, inf_bound, order;
  names.rows = {"a", "b"};
  alpha.alpha = 0;
  inf_bound.vmax = std::numeric_limits<double>::infinity();
  order.vmin = 0.9;
  order.vmax = 0.9;
  struct row {
    const char* what;
    std::function<std::string()> call;
    std::vector<std::string> says;
  };
  const std::vector<row> rows = {
      {"empty", [] { return cka::heatmap_svg(Eigen::MatrixXd(0, 3)); }, {"0x3", "at least one cell"}},
      {"infinite value", [&] { return cka::heatmap_svg(inf); }, {"values(1, 2) = inf", "not finite"}},
      {"name count", [&] { return cka::heatmap_svg(v, names); }, {"options.rows has 2 names", "3 rows"}},
      {"p shape", [&] { return cka::heatmap_svg(v, {}, Eigen::MatrixXd::Zero(2, 3)); }, {"p_value is 2x3", "3x3"}},
      {"p out of range", [&] { return cka::heatmap_svg(v, {}, p_bad); }, {"p_value(2, 0) = 1.5", "[0, 1]"}},
      {"lower alone", [&] { return cka::heatmap_svg(v, {}, p, v); }, {"lower and upper go together"}},
      {"upper shape", [&] { return cka::heatmap_svg(v, {}, p, v, Eigen::MatrixXd::Zero(3, 2)); }, {"upper is 3x2"}},
      {"alpha 0", [&] { return cka::heatmap_svg(v, alpha); }, {"options.alpha = 0", "(0, 1]"}},
      {"infinite vmax", [&] { return cka::heatmap_svg(v, inf_bound); }, {"must be finite"}},
      {"vmax = vmin", [&] { return cka::heatmap_svg(v, order); }, {"options.vmax = 0.9", "must exceed"}},
  };
  for (const row& r : rows) {
    INFO(r.what);
    try {
      r.call();
      FAIL("no exception");
    } catch (const cka::invalid_argument& e) {
      const std::string message = e.what();
      CHECK_THAT(message, Contains("cka::heatmap_svg"));
      for (const std::string& s : r.says) CHECK_THAT(message, Contains(s));
    }
  }
}
