// Throughput of the core estimators next to Eigen's own GEMM rate, measured in the same binary.
//
// Each benchmark reports GFLOP/s for the flops the routine must do (multiply-add = 2 flops):
//   linear_cka, feature space (d1 + d2 < n):  n·D² with D = d1 + d2 (one symmetric GEMM ZᵀZ, Z = [Xc Yc])
//   linear_cka, Gram space:                   n²·D (two symmetric GEMMs XcXcᵀ and YcYcᵀ)
//   kernel_cka RBF:                           n²·D for the distance GEMMs (the exp and O(n²) passes extra)
//   mmd2 RBF:                                 (m+n)²·d
//   gemm:                                     2·m·k·n, Eigen's C = A·B (the floor)
#include <cka/cka.hpp>
#include <cka/interrupt.hpp>
#include <cka/npy.hpp>
#include <cka/npy_map.hpp>
#include <cka/similarity_matrix.hpp>
#include <cka/state.hpp>

#include "bench_data.hpp"

#include <benchmark/benchmark.h>

#include <cmath>
#include <chrono>
#include <cstdio>
#include <optional>
#include <string>

namespace {

using bench::data;

void set_flops(benchmark::State& state, double flops) {
  state.counters["GFLOP/s"] = benchmark::Counter(flops * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}

template <class T>
void BM_eigen_gemm(benchmark::State& state) {
  const Eigen::Index m = state.range(0), k = state.range(1), n = state.range(2);
  const auto a = data<T>(m, k, 1), b = data<T>(k, n, 2);
  cka::matrix<T> c(m, n);
  for (auto _ : state) {
    c.noalias() = a * b;
    benchmark::DoNotOptimize(c.data());
  }
  set_flops(state, 2.0 * double(m) * double(k) * double(n));
}

template <class T>
void BM_linear_cka(benchmark::State& state) {
  const Eigen::Index n = state.range(0), d = state.range(1);
  const auto x = data<T>(n, d, 3), y = data<T>(n, d, 4);
  for (auto _ : state) benchmark::DoNotOptimize(cka::linear_cka(x, y));
  const double dd = 2.0 * double(d), nn = double(n);
  set_flops(state, dd < nn ? nn * dd * dd : nn * nn * dd);
}

void BM_linear_cka_debiased(benchmark::State& state) {
  const Eigen::Index n = state.range(0), d = state.range(1);
  const auto x = data<double>(n, d, 3), y = data<double>(n, d, 4);
  for (auto _ : state) benchmark::DoNotOptimize(cka::linear_cka(x, y, cka::estimator::unbiased));
  const double dd = 2.0 * double(d), nn = double(n);
  set_flops(state, dd < nn ? nn * dd * dd : nn * nn * dd);
}

template <class T>
void BM_kernel_cka_rbf(benchmark::State& state) {
  const Eigen::Index n = state.range(0), d = state.range(1);
  const auto x = data<T>(n, d, 5), y = data<T>(n, d, 6);
  const auto kernel = cka::rbf_kernel::median(0.5);
  for (auto _ : state) benchmark::DoNotOptimize(cka::kernel_cka(x, y, kernel));
  set_flops(state, double(n) * double(n) * 2.0 * double(d));  // the upper distance tiles of both, n²·d each
}

// The recomputed tiles (no n×n matrix): per representation a median pass, pass A and pass B, each
// computing the upper distance tiles (n²·d flops); the counter shows the stored route's n²·2d flops.
void BM_kernel_cka_rbf_tiled(benchmark::State& state) {
  const Eigen::Index n = state.range(0), d = state.range(1);
  const auto x = data<double>(n, d, 5), y = data<double>(n, d, 6);
  const auto kernel = cka::rbf_kernel::median(0.5);
  cka::compute_options tiles;
  tiles.max_bytes = 1;
  for (auto _ : state) benchmark::DoNotOptimize(cka::kernel_cka(x, y, kernel, cka::estimator::biased, tiles));
  set_flops(state, double(n) * double(n) * 2.0 * double(d));
}

/// A kernel of the generic form (called per pair): Laplacian exp(−‖x − y‖₁ / s).
struct laplacian_kernel {
  double s;
  template <class RX, class RY>
  double operator()(const RX& a, const RY& b) const {
    return std::exp(-double((a - b).cwiseAbs().sum()) / s);
  }
};

// Kernel CKA with a generic kernel (n²/2 kernel calls per representation and pass): the tile engine, its
// tiles stored (range(2) = 0) or recomputed in each pass (1), against two n×n Grams (gram + gram_cka).
void BM_kernel_cka_generic(benchmark::State& state) {
  const Eigen::Index n = state.range(0), d = state.range(1);
  const auto x = data<double>(n, d, 5), y = data<double>(n, d, 6);
  const laplacian_kernel kernel{double(d)};
  cka::compute_options co;
  co.max_bytes = state.range(2) ? 1 : 0;
  for (auto _ : state) benchmark::DoNotOptimize(cka::kernel_cka(x, y, kernel, cka::estimator::biased, co));
}

void BM_kernel_cka_generic_grams(benchmark::State& state) {
  const Eigen::Index n = state.range(0), d = state.range(1);
  const auto x = data<double>(n, d, 5), y = data<double>(n, d, 6);
  const laplacian_kernel kernel{double(d)};
  for (auto _ : state) benchmark::DoNotOptimize(cka::gram_cka(cka::gram(x, kernel), cka::gram(y, kernel)));
}

void BM_gram_rbf(benchmark::State& state) {
  const Eigen::Index n = state.range(0), d = state.range(1);
  const auto x = data<double>(n, d, 5);
  for (auto _ : state) benchmark::DoNotOptimize(cka::gram(x, cka::rbf_kernel{1.0}).data());
  set_flops(state, double(n) * double(n) * double(d));
}

void BM_hsic_from_grams(benchmark::State& state) {
  const Eigen::Index n = state.range(0);
  const auto x = data<double>(n, 16, 7), y = data<double>(n, 16, 8);
  const cka::matrix<double> k = x * x.transpose(), l = y * y.transpose();
  for (auto _ : state) benchmark::DoNotOptimize(cka::gram_cka(k, l));
  state.counters["entries/s"] =
      benchmark::Counter(double(n) * double(n), benchmark::Counter::kIsIterationInvariantRate);
}

void BM_mmd2_rbf(benchmark::State& state) {
  const Eigen::Index n = state.range(0), d = state.range(1);
  const auto x = data<double>(n, d, 9), y = data<double>(n, d, 10);
  for (auto _ : state) benchmark::DoNotOptimize(cka::mmd2(x, y, cka::rbf_kernel{4.0}));
  set_flops(state, 4.0 * double(n) * double(n) * double(d));
}

// L layers of n×d: the once-per-layer Grams of similarity_matrix against L(L+1)/2 pairwise linear_cka calls.
std::vector<cka::matrix<double>> layer_stack(Eigen::Index layers, Eigen::Index n, Eigen::Index d) {
  std::vector<cka::matrix<double>> out;
  for (Eigen::Index l = 0; l < layers; ++l) out.push_back(data<double>(n, d, 100 + unsigned(l)));
  return out;
}
void BM_matrix_once_per_layer(benchmark::State& state) {
  const auto layers = layer_stack(state.range(0), state.range(1), state.range(2));
  for (auto _ : state) benchmark::DoNotOptimize(cka::similarity_matrix(layers).values.data());
}
void BM_matrix_pairwise(benchmark::State& state) {
  const auto layers = layer_stack(state.range(0), state.range(1), state.range(2));
  for (auto _ : state) {
    double sum = 0;
    for (std::size_t a = 0; a < layers.size(); ++a)
      for (std::size_t b = a; b < layers.size(); ++b) sum += cka::linear_cka(layers[a], layers[b]);
    benchmark::DoNotOptimize(sum);
  }
}

// Streaming: two float32 layers n×d written once as .npy files, then per iteration memory-mapped and fed
// to a linear_state in chunks of 8192 rows as views of the mapped bytes, against linear_cka on the same
// float32 data held in memory. Both do n·(2d+3)² flops of rank-h updates.
struct npy_pair {
  Eigen::Index n, d;
  std::string a, b;
  cka::matrix<float> x, y;
  npy_pair(Eigen::Index n_, Eigen::Index d_) : n(n_), d(d_) {
    x = data<float>(n, d, 21);
    y = (x * data<float>(d, d, 22) / std::sqrt(float(d)) + data<float>(n, d, 23)).eval();
    a = "cka_bench_a_" + std::to_string(n) + ".npy";
    b = "cka_bench_b_" + std::to_string(n) + ".npy";
    cka::npy::save(a, x, true);
    cka::npy::save(b, y, true);
  }
  ~npy_pair() {
    std::remove(a.c_str());
    std::remove(b.c_str());
  }
};

void BM_linear_streamed_mmap(benchmark::State& state) {
  const npy_pair files(state.range(0), state.range(1));
  const Eigen::Index chunk = 8192;
  for (auto _ : state) {
    cka::npy::mapped_file fa(files.a), fb(files.b);
    cka::linear_state s(files.d, files.d);
    for (Eigen::Index r0 = 0; r0 < files.n; r0 += chunk) {
      const Eigen::Index h = std::min(chunk, files.n - r0);
      fa.visit_rows(r0, h, [&](const auto& x) { fb.visit_rows(r0, h, [&](const auto& y) { s.add(x, y); }); });
    }
    benchmark::DoNotOptimize(s.cka());
  }
  const double p = 2.0 * double(files.d) + 3.0;
  set_flops(state, double(files.n) * p * p);
}

// The same chunks of 8192 rows, from memory: separates the cost of the mapping from that of chunking.
void BM_linear_chunked_in_memory(benchmark::State& state) {
  const npy_pair files(state.range(0), state.range(1));
  using row_major = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  const row_major x = files.x, y = files.y;
  const Eigen::Index chunk = 8192;
  for (auto _ : state) {
    cka::linear_state s(files.d, files.d);
    for (Eigen::Index r0 = 0; r0 < files.n; r0 += chunk) {
      const Eigen::Index h = std::min(chunk, files.n - r0);
      s.add(x.middleRows(r0, h), y.middleRows(r0, h));
    }
    benchmark::DoNotOptimize(s.cka());
  }
  const double p = 2.0 * double(files.d) + 3.0;
  set_flops(state, double(files.n) * p * p);
}

void BM_linear_in_memory_float(benchmark::State& state) {
  const npy_pair files(state.range(0), state.range(1));
  for (auto _ : state) benchmark::DoNotOptimize(cka::linear_cka(files.x, files.y));
  const double p = 2.0 * double(files.d) + 3.0;
  set_flops(state, double(files.n) * p * p);
}

/// The cost of an installed cka::interrupt_check (the Python package installs one for every call): args
/// route (0: linear CKA of 20000 × (256 + 256), chunks of rows; 1: RBF CKA with a median bandwidth in
/// tiles, 2048 × (64 + 64); 2: linear CKA of 8 × (2 + 2), a call's fixed cost), check (0: none; 1: one
/// that returns, at the default interval of 50 ms; 2: the same at interval 0, called at every unit).
void BM_interrupt_cost(benchmark::State& state) {
  const int route = int(state.range(0)), mode = int(state.range(1));
  const Eigen::Index n = route == 0 ? 20000 : route == 1 ? 2048 : 8, d = route == 0 ? 256 : route == 1 ? 64 : 2;
  const auto x = data<double>(n, d, 31), y = data<double>(n, d, 32);
  cka::compute_options tiles;
  tiles.max_bytes = 1;
  long calls = 0;
  std::optional<cka::interrupt_check> check;
  if (mode > 0) check.emplace([&calls] { ++calls; }, mode == 1 ? std::chrono::milliseconds(50) : std::chrono::milliseconds(0));
  for (auto _ : state) {
    if (route == 1) {
      benchmark::DoNotOptimize(cka::kernel_cka(x, y, cka::rbf_kernel::median(1.0), cka::estimator::biased, tiles));
    } else {
      benchmark::DoNotOptimize(cka::linear_cka(x, y));
    }
  }
  state.counters["checks/call"] = double(calls) / double(state.iterations());
}

}  // namespace

BENCHMARK(BM_interrupt_cost)->ArgsProduct({{0, 1, 2}, {0, 1, 2}})->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK(BM_linear_streamed_mmap)->Args({200000, 256})->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_linear_chunked_in_memory)->Args({200000, 256})->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_linear_in_memory_float)->Args({200000, 256})->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_matrix_once_per_layer)->Args({12, 1000, 2048})->Args({12, 2000, 256})->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_matrix_pairwise)->Args({12, 1000, 2048})->Args({12, 2000, 256})->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_TEMPLATE(BM_eigen_gemm, double)->Args({2048, 2048, 2048})->Args({1024, 4096, 1024})->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_TEMPLATE(BM_eigen_gemm, float)->Args({2048, 2048, 2048})->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_TEMPLATE(BM_linear_cka, double)->Args({4096, 512})->Args({20000, 256})->Args({512, 8192})->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_TEMPLATE(BM_linear_cka, float)->Args({4096, 512})->Args({20000, 256})->Args({512, 8192})->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_linear_cka_debiased)->Args({4096, 512})->Args({512, 8192})->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_TEMPLATE(BM_kernel_cka_rbf, double)->Args({1024, 256})->Args({4096, 256})->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_TEMPLATE(BM_kernel_cka_rbf, float)->Args({4096, 256})->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_TEMPLATE(BM_kernel_cka_rbf, double)->Args({2000, 64})->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_kernel_cka_rbf_tiled)->Args({1024, 256})->Args({4096, 256})->Args({20000, 256})->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_kernel_cka_generic)->Args({2000, 64, 0})->Args({2000, 64, 1})->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_kernel_cka_generic_grams)->Args({2000, 64})->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_gram_rbf)->Args({4096, 256})->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_hsic_from_grams)->Arg(4096)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_mmd2_rbf)->Args({2048, 64})->Unit(benchmark::kMillisecond)->UseRealTime();

BENCHMARK_MAIN();
