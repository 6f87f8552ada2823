#pragma once
// The hostile-input table's rows and their check, shared by the host rows (test_hostile.cpp) and the
// device backend's (test_hostile_device.cpp): every row is an input a user can produce and the outcome the
// library promises for it — a value (checked against an independent one), a NaN cell that is reported, or
// an exception of the documented type whose message names the function and the fault.
#include "support.hpp"

#include <cka/errors.hpp>

#include <catch2/catch.hpp>

#include <cmath>
#include <functional>
#include <string>
#include <vector>

namespace hostile {

enum class outcome {
  value,            ///< a finite number within `tolerance` (relative) of `expected`
  nan,              ///< NaN, by documented policy (a matrix cell of an undefined layer)
  invalid_argument, ///< throws cka::invalid_argument (a std::invalid_argument)
  domain_error,     ///< throws cka::domain_error (a std::domain_error)
};

struct row {
  const char* name;
  std::function<double()> run;
  outcome expect;
  double expected = 0;   // outcome::value
  double tolerance = 0;  // relative; negative: the value is itself an error bounded by −tolerance
  std::vector<std::string> message = {};  // substrings the exception's message must contain
};

/// One-hot labels of an imbalanced two-class problem (70/30): over half the pairs coincide, so the
/// median squared distance is 0.
inline test::mat<double> one_hot() {
  test::mat<double> l = test::mat<double>::Zero(60, 2);
  for (Eigen::Index i = 0; i < 60; ++i) l(i, i % 10 < 7 ? 0 : 1) = 1.0;
  return l;
}

/// Runs every row in its own section and checks its outcome (call inside a TEST_CASE).
inline void check(const std::vector<row>& rows) {
  for (const row& r : rows) {
    SECTION(r.name) {
      CAPTURE(r.name);
      switch (r.expect) {
        case outcome::value: {
          const double v = r.run();
          CAPTURE(v, r.expected);
          REQUIRE(std::isfinite(v));
          if (r.tolerance < 0) {
            CHECK(v <= -r.tolerance);  // v is itself a relative error (or any finite value for 0)
          } else if (r.expected == 0.0) {
            CHECK(v == 0.0);
          } else {
            CHECK(test::rel_err(v, r.expected) <= r.tolerance);
          }
          break;
        }
        case outcome::nan:
          CHECK(std::isnan(r.run()));
          break;
        case outcome::invalid_argument:
        case outcome::domain_error:
          try {
            const double v = r.run();
            FAIL("no exception; returned " << v);
          } catch (const cka::invalid_argument& e) {
            CAPTURE(e.what());
            CHECK(r.expect == outcome::invalid_argument);
            for (const auto& part : r.message) CHECK_THAT(e.what(), Catch::Matchers::Contains(part));
          } catch (const cka::domain_error& e) {
            CAPTURE(e.what());
            CHECK(r.expect == outcome::domain_error);
            for (const auto& part : r.message) CHECK_THAT(e.what(), Catch::Matchers::Contains(part));
          }
          break;
      }
    }
  }
}

}  // namespace hostile
