// HSIC on the CUDA context against the same Thrust code on the host (CPP system) in one binary: odd n,
// n not a multiple of a warp, every layout (row-major, column-major, padded rows), both estimators, float
// input, and the errors (a non-finite element named, an asymmetric Gram). Built by nvcc with CKA_CUDA=ON;
// exits 77 (CTest: skipped) where no CUDA device is present. `--large` adds n = 46,341 (n² > 2³¹,
// two 17 GB Grams: an H100 or H200); `--time` times linear CKA against cuBLAS DSYRK (CUDA events).
#include <cka/device/cuda.hpp>

#include <thrust/system/cpp/execution_policy.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

namespace {

int failures = 0;

void check(bool ok, const std::string& what) {
  if (!ok) {
    ++failures;
    std::printf("FAILED: %s\n", what.c_str());
  }
}

/// An RBF Gram (exactly symmetric: each pair computed once) of n random points in 5 dimensions.
template <class T>
std::vector<T> rbf_gram(std::int64_t n, unsigned seed, double sigma) {
  std::mt19937_64 g(seed);
  std::normal_distribution<double> d(0.0, 1.0);
  std::vector<double> x(std::size_t(n * 5));
  for (auto& v : x) v = d(g);
  std::vector<T> k(std::size_t(n * n));
  for (std::int64_t i = 0; i < n; ++i)
    for (std::int64_t j = 0; j <= i; ++j) {
      double s = 0;
      for (int c = 0; c < 5; ++c) s += (x[std::size_t(i * 5 + c)] - x[std::size_t(j * 5 + c)]) * (x[std::size_t(i * 5 + c)] - x[std::size_t(j * 5 + c)]);
      k[std::size_t(i * n + j)] = k[std::size_t(j * n + i)] = T(std::exp(-s / (2 * sigma * sigma)));
    }
  return k;
}

/// A matrix (row-major host values) laid out on the device with the given strides.
template <class T>
struct on_device {
  T* ptr = nullptr;
  cka::device::matrix_view<const T> view;
  on_device(const std::vector<T>& m, std::int64_t n, std::int64_t rs, std::int64_t cs) {
    const std::int64_t extent = (n - 1) * rs + (n - 1) * cs + 1;
    std::vector<T> laid(std::size_t(extent), T(NAN));
    for (std::int64_t i = 0; i < n; ++i)
      for (std::int64_t j = 0; j < n; ++j) laid[std::size_t(i * rs + j * cs)] = m[std::size_t(i * n + j)];
    cudaMalloc(reinterpret_cast<void**>(&ptr), std::size_t(extent) * sizeof(T));
    cudaMemcpy(ptr, laid.data(), std::size_t(extent) * sizeof(T), cudaMemcpyHostToDevice);
    view = {ptr, n, n, rs, cs};
  }
  on_device(const on_device&) = delete;
  ~on_device() { cudaFree(ptr); }
};

template <class T>
double host_hsic(const std::vector<T>& k, const std::vector<T>& l, std::int64_t n, bool unbiased) {
  const cka::device::detail::strided<T> sk{k.data(), n, n, n, 1}, sl{l.data(), n, n, n, 1};
  return cka::device::detail::gram_hsic(thrust::cpp::par, cka::device::detail::host_read{},
                                        cka::device::detail::make_host_scratch, "hsic", sk, sl, unbiased,
                                        std::is_same_v<T, float> ? 1.2e-7 : 2.3e-16);
}

template <class T>
void compare(std::int64_t n, double tolerance) {
  const std::vector<T> k = rbf_gram<T>(n, 1 + unsigned(n), 1.5), l = rbf_gram<T>(n, 2 + unsigned(n), 0.8);
  cudaStream_t stream;
  cudaStreamCreate(&stream);
  const cka::device::cuda ctx{stream};
  for (bool unbiased : {false, true}) {
    const double expected = host_hsic(k, l, n, unbiased);
    const std::int64_t layouts[3][2] = {{n, 1}, {1, n}, {n + 3, 1}};
    for (const auto& s : layouts) {
      const on_device<T> dk(k, n, s[0], s[1]), dl(l, n, s[1] == 1 ? n : 1, s[1] == 1 ? 1 : n);
      const double got = double(cka::hsic(ctx, dk.view, dl.view, unbiased ? cka::estimator::unbiased : cka::estimator::biased));
      check(std::abs(got - expected) <= tolerance * std::abs(expected),
            "n = " + std::to_string(n) + " strides (" + std::to_string(s[0]) + ", " + std::to_string(s[1]) + ") unbiased " +
                std::to_string(unbiased) + ": " + std::to_string(got) + " vs " + std::to_string(expected));
    }
  }
  cudaStreamDestroy(stream);
}

/// Linear CKA: the CUDA context (cuBLAS DSYRK) against the same Thrust code on the CPP system with plain
/// host products, for row-major, column-major and padded views of X (n×5) and Y (n×3); n = 7 < 8 features
/// takes the sample-space form (two n×n Grams), the others the feature-space one.
void compare_linear(std::int64_t n) {
  std::mt19937_64 g(100 + unsigned(n));
  std::normal_distribution<double> d(0.0, 1.0);
  std::vector<double> x(std::size_t(n * 5)), y(std::size_t(n * 3));
  for (auto& v : x) v = d(g) + 1000.0;  // a large offset: centering must keep the digits
  for (std::int64_t i = 0; i < n; ++i)
    for (int c = 0; c < 3; ++c) y[std::size_t(i * 3 + c)] = x[std::size_t(i * 5 + c)] * 0.5 + d(g);
  auto host_product = [](const double* z, std::int64_t rows, std::int64_t cols, double* out) {
    for (std::int64_t b = 0; b < cols; ++b)
      for (std::int64_t a = b; a < cols; ++a) {
        double s = 0;
        for (std::int64_t i = 0; i < rows; ++i) s += z[a * rows + i] * z[b * rows + i];
        out[b * cols + a] = s;
      }
  };
  auto host_gram = [](const double* z, std::int64_t rows, std::int64_t cols, double* out) {
    for (std::int64_t j = 0; j < rows; ++j)
      for (std::int64_t i = j; i < rows; ++i) {
        double s = 0;
        for (std::int64_t c = 0; c < cols; ++c) s += z[c * rows + i] * z[c * rows + j];
        out[j * rows + i] = s;
      }
  };
  auto host_copy = [](double* dst, const double* src, std::int64_t count) { std::memcpy(dst, src, std::size_t(count) * 8); };
  const cka::device::cuda ctx{};
  for (bool unbiased : {false, true}) {
    std::vector<double> scratch(std::size_t(cka::device::detail::linear_scratch(n, 8)));
    const cka::device::detail::strided<double> hx{x.data(), n, 5, 5, 1}, hy{y.data(), n, 3, 3, 1};
    const auto s = cka::device::detail::linear_sums(thrust::cpp::par, host_product, host_gram, host_copy, scratch.data(), hx,
                                                    hy, unbiased);
    const double expected = s.kl / std::sqrt(s.kk) / std::sqrt(s.ll);
    for (int layout = 0; layout < 3; ++layout) {
      const std::int64_t pad = layout == 2 ? 2 : 0;
      // X laid out row-major (+ padding) or column-major on the device; Y row-major.
      std::vector<double> xl(std::size_t(n * (5 + pad)), NAN);
      for (std::int64_t i = 0; i < n; ++i)
        for (int c = 0; c < 5; ++c)
          xl[std::size_t(layout == 1 ? c * n + i : i * (5 + pad) + c)] = x[std::size_t(i * 5 + c)];
      double *dx = nullptr, *dy = nullptr;
      cudaMalloc(reinterpret_cast<void**>(&dx), xl.size() * 8);
      cudaMalloc(reinterpret_cast<void**>(&dy), y.size() * 8);
      cudaMemcpy(dx, xl.data(), xl.size() * 8, cudaMemcpyHostToDevice);
      cudaMemcpy(dy, y.data(), y.size() * 8, cudaMemcpyHostToDevice);
      const cka::device::matrix_view<const double> vx{dx, n, 5, layout == 1 ? 1 : 5 + pad, layout == 1 ? n : 1};
      const cka::device::matrix_view<const double> vy{dy, n, 3, 3, 1};
      const double got = cka::linear_cka(ctx, vx, vy, unbiased ? cka::estimator::unbiased : cka::estimator::biased);
      check(std::abs(got - expected) <= 1e-12 * std::abs(expected),
            "linear n = " + std::to_string(n) + " layout " + std::to_string(layout) + " unbiased " + std::to_string(unbiased) +
                ": " + std::to_string(got) + " vs " + std::to_string(expected));
      cudaFree(dx);
      cudaFree(dy);
    }
  }
}

void errors() {
  const std::int64_t n = 33;
  std::vector<double> k = rbf_gram<double>(n, 5, 1.0);
  const cka::device::cuda ctx{};
  k[std::size_t(4 * n + 7)] = INFINITY;
  {
    const on_device<double> dk(k, n, n, 1);
    bool named = false;
    try {
      cka::hsic(ctx, dk.view, dk.view);
    } catch (const cka::invalid_argument& e) {
      named = std::strstr(e.what(), "K(4, 7) = inf") != nullptr;
    }
    check(named, "a non-finite element is named");
  }
  k[std::size_t(4 * n + 7)] = 0.5;
  {
    const on_device<double> dk(k, n, n, 1);
    bool named = false;
    try {
      cka::hsic(ctx, dk.view, dk.view);
    } catch (const cka::invalid_argument& e) {
      named = std::strstr(e.what(), "not symmetric") != nullptr;
    }
    check(named, "an asymmetric Gram is refused");
  }
}

/// `--time`: linear CKA on the CUDA context timed with CUDA events against the bare DSYRKs of its form on
/// a buffer of the same size (the floor: its flops at cuBLAS's rate), for the feature form (many samples)
/// and the two-Gram form (a batch of wide layers). Prints the times and the fraction of the DSYRK rate.
void time_linear(std::int64_t n, std::int64_t d1, std::int64_t d2, int repeats) {
  const std::int64_t dd = d1 + d2;
  std::mt19937_64 g(7);
  std::normal_distribution<double> normal(0.0, 1.0);
  std::vector<double> host(std::size_t(n * dd));
  for (auto& v : host) v = normal(g);
  double* z = nullptr;
  double* out = nullptr;
  const bool grams = cka::device::detail::linear_by_grams(n, dd);
  const std::int64_t out_size = grams ? 2 * n * n : dd * dd;
  cudaMalloc(reinterpret_cast<void**>(&z), host.size() * 8);
  cudaMalloc(reinterpret_cast<void**>(&out), std::size_t(out_size) * 8);
  cudaMemcpy(z, host.data(), host.size() * 8, cudaMemcpyHostToDevice);
  const cka::device::cuda ctx{};
  // X is the first d1 columns of z, Y the rest: column-major views.
  const cka::device::matrix_view<const double> vx{z, n, d1, 1, n}, vy{z + n * d1, n, d2, 1, n};
  cudaEvent_t start, stop;
  cudaEventCreate(&start);
  cudaEventCreate(&stop);
  auto timed = [&](auto&& f) {
    f();  // warm-up (the cuBLAS handle, the pool)
    cudaEventRecord(start, ctx.stream);
    for (int r = 0; r < repeats; ++r) f();
    cudaEventRecord(stop, ctx.stream);
    cudaEventSynchronize(stop);
    float ms = 0;
    cudaEventElapsedTime(&ms, start, stop);
    return double(ms) / repeats;
  };
  double value = 0;
  const double t_cka = timed([&] { value = cka::linear_cka(ctx, vx, vy); });
  const cublasHandle_t blas = ctx.blas();
  const double one = 1.0, zero = 0.0;
  const double t_syrk = timed([&] {
    if (grams) {
      cublasDsyrk_64(blas, CUBLAS_FILL_MODE_LOWER, CUBLAS_OP_N, n, d1, &one, z, n, &zero, out, n);
      cublasDsyrk_64(blas, CUBLAS_FILL_MODE_LOWER, CUBLAS_OP_N, n, d2, &one, z + n * d1, n, &zero, out + n * n, n);
    } else {
      cublasDsyrk_64(blas, CUBLAS_FILL_MODE_LOWER, CUBLAS_OP_T, dd, n, &one, z, n, &zero, out, dd);
    }
  });
  const double flops = grams ? double(n) * double(n) * double(dd) : double(n) * double(dd) * double(dd);  // SYRK: half
  std::printf("linear_cka n = %lld, d1 = %lld, d2 = %lld (%s): %.3f ms; its DSYRKs alone %.3f ms (%.0f GFLOP/s); "
              "%.0f%% of the DSYRK rate; value %.6f\n",
              (long long)n, (long long)d1, (long long)d2, grams ? "two n x n Grams" : "D x D product", t_cka, t_syrk,
              flops / t_syrk * 1e-6, 100 * t_syrk / t_cka, value);
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  cudaFree(z);
  cudaFree(out);
}

}  // namespace

int main(int argc, char** argv) {
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
    std::printf("skipped: no CUDA device\n");
    return 77;
  }
  for (std::int64_t n : {5, 41, 257, 1001}) compare<double>(n, 1e-12);
  compare<float>(301, 1e-12);  // float input, double accumulation on both sides
  for (std::int64_t n : {7, 1001, 100003}) compare_linear(n);
  errors();
  if (argc > 1 && std::string(argv[1]) == "--large") compare<double>(46341, 1e-11);
  if (argc > 1 && std::string(argv[1]) == "--time") {
    time_linear(1000000, 256, 256, 5);  // many samples: the feature form
    time_linear(100000, 1024, 1024, 5);
    time_linear(256, 4096, 4096, 20);   // a distillation batch of wide layers: the two-Gram form
    time_linear(1024, 8192, 8192, 10);
  }
  std::printf(failures ? "%d check(s) failed\n" : "all CUDA device checks passed\n", failures);
  return failures ? 1 : 0;
}
