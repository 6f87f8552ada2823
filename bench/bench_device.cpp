// The device backend on the CPU systems (cka::device::omp): linear CKA of strided views against the host
// linear_cka on the same data, in the same binary. Shapes: a distillation batch of wide layers (n = 256,
// d1 = d2 = 4096: the sample-space form, n²·D flops) and many samples of narrow ones (n = 4096, d = 256:
// the feature-space form, n·D² flops; and n = 200,000, d = 64, where the device form works in chunks of
// rows). GFLOP/s counts the form's flops. Also RBF kernel CKA (median
// bandwidths: the device tile engine against the host's), polynomial kernel CKA (the device tile engine
// against the host's Grams) and the RCKA loss with its gradient (the device
// relation engine against the host loss).
#include <cka/device.hpp>
#include <cka/rcka.hpp>
#include <cka/similarity.hpp>

#include "bench_data.hpp"

#include <benchmark/benchmark.h>


namespace {

cka::matrix<double> data(Eigen::Index n, Eigen::Index d, unsigned seed) { return bench::data<double>(n, d, seed); }

double form_flops(double n, double d1, double d2) {
  const double dd = d1 + d2;
  return 2 * (n < dd ? n * n * dd : n * dd * dd);
}

void BM_device_linear(benchmark::State& state) {
  const Eigen::Index n = state.range(0), d1 = state.range(1), d2 = state.range(2);
  const auto x = data(n, d1, 1), y = data(n, d2, 2);
  // Column-major Eigen storage, viewed as a torch tensor's transpose would be.
  const cka::device::matrix_view<const double> vx{x.data(), n, d1, 1, n}, vy{y.data(), n, d2, 1, n};
  for (auto _ : state) benchmark::DoNotOptimize(cka::linear_cka(cka::device::omp{}, vx, vy));
  state.counters["GFLOP/s"] = benchmark::Counter(form_flops(double(n), double(d1), double(d2)) * 1e-9,
                                                 benchmark::Counter::kIsIterationInvariantRate);
}

void BM_host_linear(benchmark::State& state) {
  const Eigen::Index n = state.range(0), d1 = state.range(1), d2 = state.range(2);
  const auto x = data(n, d1, 1), y = data(n, d2, 2);
  for (auto _ : state) benchmark::DoNotOptimize(cka::linear_cka(x, y));
  state.counters["GFLOP/s"] = benchmark::Counter(form_flops(double(n), double(d1), double(d2)) * 1e-9,
                                                 benchmark::Counter::kIsIterationInvariantRate);
}

/// RBF kernel CKA with median bandwidths: the device tile engine (omp) against the host's tile engine.
void BM_device_rbf(benchmark::State& state) {
  const Eigen::Index n = state.range(0), d = state.range(1);
  const auto x = data(n, d, 3), y = data(n, d, 4);
  const cka::device::matrix_view<const double> vx{x.data(), n, d, 1, n}, vy{y.data(), n, d, 1, n};
  const auto k = cka::rbf_kernel::median();
  for (auto _ : state) benchmark::DoNotOptimize(cka::kernel_cka(cka::device::omp{}, vx, vy, k, k));
}

void BM_host_rbf(benchmark::State& state) {
  const Eigen::Index n = state.range(0), d = state.range(1);
  const auto x = data(n, d, 3), y = data(n, d, 4);
  const auto k = cka::rbf_kernel::median();
  for (auto _ : state) benchmark::DoNotOptimize(cka::kernel_cka(x, y, k, k));
}

/// Polynomial kernel CKA (degree 3): the device tile engine (omp) against the host's tile engine (tiles
/// stored, and recomputed in each pass) and against two n×n Grams (gram + gram_cka, the host's route
/// before the tile engine took inner-product kernels).
void BM_device_polynomial(benchmark::State& state) {
  const Eigen::Index n = state.range(0), d = state.range(1);
  const auto x = data(n, d, 3), y = data(n, d, 4);
  const cka::device::matrix_view<const double> vx{x.data(), n, d, 1, n}, vy{y.data(), n, d, 1, n};
  const cka::polynomial_kernel k{3, 1.0 / double(d), 1.0};
  for (auto _ : state) benchmark::DoNotOptimize(cka::kernel_cka(cka::device::omp{}, vx, vy, k, k));
}

void BM_host_polynomial(benchmark::State& state) {
  const Eigen::Index n = state.range(0), d = state.range(1);
  const auto x = data(n, d, 3), y = data(n, d, 4);
  const cka::polynomial_kernel k{3, 1.0 / double(d), 1.0};
  cka::compute_options co;
  co.max_bytes = state.range(2) ? 1 : 0;  // 1 byte: nothing fits, every pass recomputes its tiles
  for (auto _ : state) benchmark::DoNotOptimize(cka::kernel_cka(x, y, k, k, cka::estimator::biased, co));
}

void BM_host_polynomial_grams(benchmark::State& state) {
  const Eigen::Index n = state.range(0), d = state.range(1);
  const auto x = data(n, d, 3), y = data(n, d, 4);
  const cka::polynomial_kernel k{3, 1.0 / double(d), 1.0};
  for (auto _ : state) benchmark::DoNotOptimize(cka::gram_cka(cka::gram(x, k), cka::gram(y, k)));
}

/// The RCKA loss with its gradient on a batch of logits: the device relation engine (omp) against the host.
void BM_device_rcka(benchmark::State& state) {
  const Eigen::Index b = state.range(0), c = state.range(1);
  const auto s = data(b, c, 5), t = data(b, c, 6);
  cka::matrix<double> grad(b, c);
  const cka::device::matrix_view<const double> vs{s.data(), b, c, 1, b}, vt{t.data(), b, c, 1, b};
  const cka::device::matrix_view<double> vg{grad.data(), b, c, 1, b};
  for (auto _ : state) benchmark::DoNotOptimize(cka::rcka::rcka_loss(cka::device::omp{}, vs, vt, vg).value);
}

void BM_host_rcka(benchmark::State& state) {
  const Eigen::Index b = state.range(0), c = state.range(1);
  const auto s = data(b, c, 5), t = data(b, c, 6);
  for (auto _ : state) benchmark::DoNotOptimize(cka::rcka::rcka_loss(s, t).value);
}

}  // namespace

BENCHMARK(BM_device_rbf)->Args({2000, 64})->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_host_rbf)->Args({2000, 64})->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_device_polynomial)->Args({2000, 64})->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_host_polynomial)->Args({2000, 64, 0})->Args({2000, 64, 1})->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_host_polynomial_grams)->Args({2000, 64})->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_device_rcka)->Args({256, 100})->Args({1024, 1000})->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_host_rcka)->Args({256, 100})->Args({1024, 1000})->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_device_linear)->Args({256, 4096, 4096})->Args({4096, 256, 256})->Args({200000, 64, 64})->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_host_linear)->Args({256, 4096, 4096})->Args({4096, 256, 256})->Args({200000, 64, 64})->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_MAIN();
