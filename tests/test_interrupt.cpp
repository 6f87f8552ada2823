// cka::interrupt_check: every long route calls the check between units of work, on the calling thread
// only, and stops when it throws (the exception reaches the caller, the next call is unaffected); a check
// that returns changes no result; the accumulation states never call it; an inner check restores the outer.
#include "support.hpp"

#include <cka/cka.hpp>
#include <cka/interrupt.hpp>
#include <cka/state.hpp>

#include <catch2/catch.hpp>

#include <chrono>
#include <cmath>
#include <cstddef>
#include <functional>
#include <thread>
#include <vector>

namespace {

struct stop {};  // what the tests' checks throw

constexpr std::chrono::nanoseconds every_unit{0};

/// A generic kernel (called once per pair): exp(−‖x − y‖₁).
struct laplacian_kernel {
  template <class RX, class RY>
  double operator()(const RX& x, const RY& y) const {
    return std::exp(-(x - y).cwiseAbs().sum());
  }
};

struct route {
  const char* name;
  std::function<double()> run;
};

std::vector<route> long_routes() {
  static const auto x = test::normal<double>(3000, 6, 1), y = test::related<double>(x, 5, 2);
  static const auto small_x = test::normal<double>(300, 6, 3), small_y = test::related<double>(small_x, 5, 4);
  static const auto tall_x = test::normal<double>(6000, 200, 5), tall_y = test::related<double>(tall_x, 200, 6);
  // Wide enough that a Gram is more than one chunk of columns (detail/products.hpp).
  static const auto wide_x = test::normal<double>(1200, 2000, 7), wide_y = test::related<double>(wide_x, 1500, 8);
  cka::compute_options tiles;
  tiles.max_bytes = std::size_t(1) << 20;  // forces the tile engine at n = 3000
  return {
      {"kernel_cka, RBF median in tiles",
       [=] { return cka::kernel_cka(x, y, cka::rbf_kernel::median(), cka::estimator::biased, tiles); }},
      {"similarity_matrix, RBF in tiles",
       [=] {
         return cka::similarity_matrix(std::vector<test::mat<double>>{x, x.leftCols(3), x * 2.0}, cka::rbf_kernel{2.0}, {}, tiles)
             .values(0, 1);
       }},
      {"similarity_matrix, minibatch Grams",
       [=] {
         cka::similarity_matrix_options o;
         o.minibatch = 100;
         return cka::similarity_matrix(std::vector<test::mat<double>>{small_x, small_y, test::mat<double>(small_x.array().square().matrix())}, cka::rbf_kernel{2.0}, o)
             .values(0, 1);
       }},
      // One dense Gram: chunks of columns (inner-product and squared-distance kernels), columns (generic).
      {"gram, linear kernel", [=] { return cka::gram(wide_x, cka::linear_kernel{})(3, 5); }},
      {"gram, generic kernel", [=] { return cka::gram(small_x, laplacian_kernel{})(3, 5); }},
      {"permutation_test, Grams of wide layers",
       [=] {
         cka::permutation_options o;
         o.count = 20;
         return cka::permutation_test(wide_x, wide_y, cka::rbf_kernel::median(), cka::estimator::biased, o).p_value;
       }},
      {"linear_cka, chunks of rows", [=] { return cka::linear_cka(tall_x, tall_y); }},
      {"permutation_test, Grams",
       [=] {
         cka::permutation_options o;
         o.count = 400;
         return cka::permutation_test(small_x, small_y, cka::rbf_kernel{2.0}, cka::estimator::biased, o).p_value;
       }},
      {"permutation_test, feature space",
       [=] {
         cka::permutation_options o;
         o.count = 4000;  // 29 batches of 139
         return cka::permutation_test(x, y, cka::linear_kernel{}, cka::estimator::biased, o).p_value;
       }},
      {"similarity_tests, pairs",
       [=] {
         cka::similarity_tests_options o;
         o.permutations = 20;
         return cka::similarity_tests(std::vector<test::mat<double>>{small_x, small_y, small_x * 3.0}, cka::rbf_kernel{2.0}, o)
             .p_value(0, 1);
       }},
  };
}

}  // namespace

TEST_CASE("long computations call the check and stop when it throws", "[interrupt]") {
  for (const route& r : long_routes()) {
    SECTION(r.name) {
      const double plain = r.run();
      std::size_t calls = 0;
      double checked = 0;
      {
        cka::interrupt_check counting([&] { ++calls; }, every_unit);
        checked = r.run();
      }
      CHECK(calls >= 2);
      CHECK(checked == plain);  // a check that returns changes nothing
      // The first call throws (which units the calling thread takes, and so how many calls there are,
      // depends on the scheduling; that it takes one does not).
      std::size_t until_stop = 0;
      {
        cka::interrupt_check stopping(
            [&] {
              ++until_stop;
              throw stop{};
            },
            every_unit);
        CHECK_THROWS_AS(r.run(), stop);
      }
      CHECK(until_stop == 1);   // stopped at once: no further unit asked
      CHECK(r.run() == plain);  // and the next call is unaffected
    }
  }
}

TEST_CASE("the check runs on its own thread only, at most once per interval, and nests", "[interrupt]") {
  const route r = long_routes()[0];
  std::size_t outer_calls = 0, inner_calls = 0;
  cka::interrupt_check outer([&] { ++outer_calls; }, every_unit);
  std::thread other([&] { r.run(); });  // a computation on another thread never calls this thread's check
  other.join();
  CHECK(outer_calls == 0);
  {
    cka::interrupt_check inner([&] { ++inner_calls; }, every_unit);
    r.run();
  }
  CHECK(inner_calls >= 2);
  CHECK(outer_calls == 0);
  r.run();  // the outer check is back
  CHECK(outer_calls >= 2);
  std::size_t slow_calls = 0;
  {
    cka::interrupt_check hourly([&] { ++slow_calls; }, std::chrono::hours(1));
    r.run();
  }
  CHECK(slow_calls == 0);
  cka::interrupt_check none(nullptr);  // an empty check is no check
  CHECK_NOTHROW(r.run());
}

TEST_CASE("the accumulation states never call the check: an add is done whole or not at all", "[interrupt]") {
  const auto x = test::normal<double>(6000, 200, 7), y = test::related<double>(x, 200, 8);
  cka::interrupt_check refusing([] { throw stop{}; }, every_unit);
  cka::linear_state s(200, 200);
  CHECK_NOTHROW(s.add(x, y));
  cka::layers_state l({200, 200});
  CHECK_NOTHROW(l.add(std::vector<test::mat<double>>{x, y}));
  CHECK(s.samples() == 6000);
  CHECK(l.samples() == 6000);
}
