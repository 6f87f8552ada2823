// The C++ library against the conformance suite (conformance/manifest.json, docs/conformance.md): every
// case of a quantity and convention the C++ API computes — linear, RBF and polynomial CKA, HSIC on Grams,
// MMD² and the CKA–MMD decomposition — called as a user calls it, against the case's expected value and
// tolerance; float32 inputs through the float overloads; the undefined outcome as cka::domain_error.
// (The Python package runs conformance/check.py itself, losses and minibatch CKA included:
// tests/python/test_conformance.py.)
#include <cka/cka.hpp>
#include <cka/mmd_bound.hpp>
#include <cka/npy.hpp>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <cmath>
#include <fstream>
#include <functional>
#include <optional>
#include <string>

namespace {

using json = nlohmann::json;

const std::string root = CKA_CONFORMANCE_DIR;

json manifest() {
  std::ifstream in(root + "/manifest.json");
  REQUIRE(in.good());
  return json::parse(in);
}

cka::npy::array load(const json& c, const char* name) { return cka::npy::load(root + "/" + c["inputs"][name].get<std::string>()); }

cka::matrix<double> input(const json& c, const char* name) { return load(c, name).values; }

std::string field(const json& c, const char* name) {
  return c["convention"].contains(name) ? c["convention"][name].get<std::string>() : std::string();
}

/// The library's value for case c, or nullopt where the C++ API has no such convention.
std::optional<double> compute(const json& c) {
  const std::string q = c["quantity"];
  const json& p = c["parameters"];
  const auto est = field(c, "estimator") == "unbiased" ? cka::estimator::unbiased : cka::estimator::biased;
  if (q == "hsic") {
    if (field(c, "normalization") == "n^2") return std::nullopt;
    return cka::hsic(input(c, "k"), input(c, "l"), est);
  }
  if (q == "linear_cka" || q == "rbf_cka" || q == "polynomial_cka") {
    if (field(c, "estimator") == "lange") return std::nullopt;
    const cka::npy::array ax = load(c, "x");
    const cka::matrix<double>& x = ax.values;
    const cka::matrix<double> y = input(c, "y");
    auto run = [&](const auto& kernel) -> double {
      if (ax.float32) {
        const cka::matrix<float> xf = x.cast<float>(), yf = y.cast<float>();
        return double(q == "linear_cka" ? cka::linear_cka(xf, yf, est) : cka::kernel_cka(xf, yf, kernel, kernel, est));
      }
      return q == "linear_cka" ? cka::linear_cka(x, y, est) : cka::kernel_cka(x, y, kernel, kernel, est);
    };
    if (q == "linear_cka") return run(cka::linear_kernel{});
    if (q == "polynomial_cka") {
      return run(cka::polynomial_kernel{p["degree"].get<int>(), p["gamma"].get<double>(), p["coef0"].get<double>()});
    }
    if (field(c, "bandwidth") == "fixed") return run(cka::rbf_kernel{p["sigma"].get<double>()});
    if (field(c, "median_of") != "squared_distances" || field(c, "median_kind") != "mean_of_middle") return std::nullopt;
    const std::string pairs = field(c, "median_pairs");
    const auto rule = pairs == "all" ? cka::median_rule::all_pairs
                      : pairs == "off_diagonal" ? cka::median_rule::off_diagonal
                                                : cka::median_rule::nonzero;
    return run(cka::rbf_kernel::median(p["fraction"].get<double>(), rule));
  }
  if (q == "mmd2") {
    const cka::matrix<double> x = input(c, "x"), y = input(c, "y");
    if (field(c, "kernel") == "linear") return cka::mmd2(x, y, cka::linear_kernel{}, est);
    return cka::mmd2(x, y, cka::rbf_kernel{p["sigma"].get<double>()}, est);
  }
  if (q == "cka_mmd_decomposition") {
    const cka::matrix<double> x = input(c, "x"), y = input(c, "y");
    cka::mmd_bound_options o;
    o.centered = field(c, "centered") == "true";
    const auto r = field(c, "kernel") == "linear" ? cka::mmd_bound(x, y, cka::linear_kernel{}, o)
                                                  : cka::mmd_bound(x, y, cka::rbf_kernel{p["sigma"].get<double>()}, o);
    const std::string part = p["component"];
    return part == "alignment" ? r.alignment : part == "discrepancy" ? r.discrepancy : part == "mean_gap" ? r.mean_gap : r.bound;
  }
  return std::nullopt;  // the losses and minibatch CKA: through the Python package's checker
}

}  // namespace

TEST_CASE("conformance suite: every case the C++ API computes", "[conformance]") {
  const json m = manifest();
  REQUIRE(m["schema"] == "cka-conformance");
  REQUIRE(m["version"] == 1);
  int checked = 0;
  for (const json& c : m["cases"]) {
    const std::string id = c["id"];
    CAPTURE(id);
    if (c["outcome"] == "undefined") {
      if (c["quantity"] == "linear_cka" && field(c, "estimator") == "lange") continue;
      CHECK_THROWS_AS(compute(c), cka::domain_error);
      ++checked;
      continue;
    }
    const std::optional<double> got = compute(c);
    if (!got) continue;
    ++checked;
    const double expected = c["expected"];
    const json& tol = c["tolerance"];
    CAPTURE(*got, expected);
    if (tol.contains("absolute")) {
      CHECK(std::abs(*got - expected) <= tol["absolute"].get<double>());
    } else {
      CHECK(std::abs(*got - expected) <= tol["relative"].get<double>() * std::abs(expected));
    }
  }
  CHECK(checked >= 120);  // the cases the C++ API computes (all but Lange, other medians, n², losses, minibatch)
}
