// Significance tests (cka/inference.hpp): the permutation test in both routes, the analytic test and the
// jackknife. Peer: the same permutation test in NumPy (bench/numpy_inference.py), measured in the same run
// and recorded in docs/performance.md.
#include <cka/inference.hpp>
#include <cka/interrupt.hpp>

#include <benchmark/benchmark.h>

#include <chrono>
#include <optional>
#include <random>

namespace {

cka::matrix<double> normal(Eigen::Index n, Eigen::Index d, unsigned seed) {
  std::mt19937_64 engine(seed);
  std::normal_distribution<double> dist;
  cka::matrix<double> m(n, d);
  for (Eigen::Index i = 0; i < m.size(); ++i) m.data()[i] = dist(engine);
  return m;
}

// args: n, d1, d2; 1000 permutations of linear CKA (feature space: 2n·d1·d2 flops each).
void BM_permutation_linear(benchmark::State& state) {
  const auto x = normal(state.range(0), state.range(1), 1), y = normal(state.range(0), state.range(2), 2);
  cka::permutation_options o;
  o.count = 1000;
  for (auto _ : state) benchmark::DoNotOptimize(cka::permutation_test(x, y, cka::linear_kernel{}, cka::estimator::biased, o));
  state.counters["perm/s"] = benchmark::Counter(1000.0 * double(state.iterations()), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_permutation_linear)->Args({2000, 64, 32})->Args({10000, 64, 64})->Unit(benchmark::kMillisecond)->UseRealTime();

// The permutation test of n = 2000, d = 64 + 32 with an installed cka::interrupt_check that returns (the
// Python package installs one for every call). arg: 0 none; 1 at the default interval (50 ms); 2 at
// interval 0, called between every batch of permutations.
void BM_permutation_interrupt_cost(benchmark::State& state) {
  const auto x = normal(2000, 64, 1), y = normal(2000, 32, 2);
  cka::permutation_options o;
  o.count = 1000;
  long calls = 0;
  std::optional<cka::interrupt_check> check;
  if (state.range(0) > 0)
    check.emplace([&calls] { ++calls; }, state.range(0) == 1 ? std::chrono::milliseconds(50) : std::chrono::milliseconds(0));
  for (auto _ : state) benchmark::DoNotOptimize(cka::permutation_test(x, y, cka::linear_kernel{}, cka::estimator::biased, o));
  state.counters["checks/call"] = double(calls) / double(state.iterations());
}
BENCHMARK(BM_permutation_interrupt_cost)->Arg(0)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime();

// args: n; 1000 permutations of RBF CKA (median bandwidth) on the centered Grams: O(n²) each.
void BM_permutation_rbf(benchmark::State& state) {
  const auto x = normal(state.range(0), 64, 3), y = normal(state.range(0), 32, 4);
  cka::permutation_options o;
  o.count = 1000;
  for (auto _ : state) benchmark::DoNotOptimize(cka::permutation_test(x, y, cka::rbf_kernel::median(), cka::estimator::biased, o));
  state.counters["perm/s"] = benchmark::Counter(1000.0 * double(state.iterations()), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_permutation_rbf)->Arg(1000)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_independence_rbf(benchmark::State& state) {
  const auto x = normal(state.range(0), 64, 5), y = normal(state.range(0), 32, 6);
  for (auto _ : state) benchmark::DoNotOptimize(cka::independence_test(x, y, cka::rbf_kernel::median(), cka::estimator::unbiased));
}
BENCHMARK(BM_independence_rbf)->Arg(1000)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_jackknife_rbf(benchmark::State& state) {
  const auto x = normal(state.range(0), 64, 7), y = normal(state.range(0), 32, 8);
  for (auto _ : state) benchmark::DoNotOptimize(cka::jackknife(x, y, cka::rbf_kernel::median()));
}
BENCHMARK(BM_jackknife_rbf)->Arg(1000)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
