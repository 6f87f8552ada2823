// HSIC, linear CKA, RBF kernel CKA and MMD, and the RCKA losses with their gradients on the CUDA context
// against the same Thrust code on the host (CPP system) in one binary: odd n,
// n not a multiple of a warp, every layout (row-major, column-major, padded rows), both estimators, float
// input, and the errors (a non-finite element named, an asymmetric Gram). Built by nvcc with CKA_CUDA=ON;
// exits 77 (CTest: skipped) where no CUDA device is present. Flags, combinable:
//   --small          only the small sizes (for compute-sanitizer: seconds, not minutes);
//   --large          n = 46,341 (n² > 2³¹): two 17 GB rank-one Grams generated on the device, against a
//                    closed form (an H100 or H200);
//   --time           timings with CUDA events, inputs generated on the device: linear CKA (float64 at four
//                    shapes, float32 at a million rows) against its bare DSYRKs, RBF CKA at n = 50,000
//                    against its tile DGEMMs, hsic at n = 46,341 (with --large) against one read of its
//                    Grams, the RCKA losses with their gradients;
//   --report FILE    the timings and values as JSON lines, for bench/gpu/torch_peer.py (the PyTorch peer and
//                    the float64 reference on the same inputs).
#include <cka/device/cuda.hpp>

#include <thrust/reduce.h>
#include <thrust/system/cpp/execution_policy.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <exception>
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

/// The relative tolerance of a result of type T: `for_double` for a double result; a float result is a
/// double rounded to float, and two such roundings of nearly equal doubles differ by up to one ulp (2⁻²³), so
/// 2⁻²² for float.
template <class T>
double tolerance_for(double for_double) {
  return std::is_same_v<T, float> ? std::max(for_double, 0x1p-22) : for_double;
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

/// The CPP system's backend with plain host products (no Eigen in a CUDA translation unit): the reference
/// that runs the same engines as the CUDA context.
struct plain_ops {
  void gram(const char*, const double* z, std::int64_t rows, std::int64_t cols, double* out) const {
    for (std::int64_t j = 0; j < rows; ++j)
      for (std::int64_t i = j; i < rows; ++i) {
        double s = 0;
        for (std::int64_t c = 0; c < cols; ++c) s += z[c * rows + i] * z[c * rows + j];
        out[j * rows + i] = s;
      }
  }
  void cross(const char*, const double* z, std::int64_t rows, std::int64_t cols, double* out, bool add) const {
    for (std::int64_t b = 0; b < cols; ++b)
      for (std::int64_t a = b; a < cols; ++a) {
        double s = 0;
        for (std::int64_t i = 0; i < rows; ++i) s += z[a * rows + i] * z[b * rows + i];
        out[b * cols + a] = (add ? out[b * cols + a] : 0.0) + s;
      }
  }
  void multiply(const char*, const double* w, std::int64_t n, const double* x, std::int64_t dd, double* out) const {
    for (std::int64_t j = 0; j < dd; ++j)
      for (std::int64_t i = 0; i < n; ++i) {
        double v = 0;
        for (std::int64_t k = 0; k < n; ++k) v += w[k * n + i] * x[j * n + k];
        out[j * n + i] = v;
      }
  }
  void tile_gemm(const char*, const double* a, const double* b, std::int64_t h, std::int64_t w, std::int64_t dd,
                 std::int64_t lda, double* out) const {
    for (std::int64_t j = 0; j < w; ++j)
      for (std::int64_t i = 0; i < h; ++i) {
        double s = 0;
        for (std::int64_t c = 0; c < dd; ++c) s += a[c * lda + i] * b[c * lda + j];
        out[j * h + i] = s;
      }
  }
  template <class Policy, class F, class V, class Op, class Out>
  void reduce_into(const Policy& policy, const char*, std::int64_t n, F f, V init, Op op, Out out) const {
    const thrust::counting_iterator<std::int64_t> first(0);
    *out = thrust::transform_reduce(policy, first, first + n, f, init, op);
  }
  void to_host(const char*, double* dst, const double* src, std::int64_t count) const {
    std::memcpy(dst, src, std::size_t(count) * sizeof(double));
  }
  template <class T>
  double read(const char*, const T* p) const {
    return double(*p);
  }
  cka::device::detail::host_scratch scratch(const char*, std::size_t count) const {
    return cka::device::detail::make_host_scratch(count);
  }
};

auto host_backend(const char* fn) { return cka::device::detail::make_backend(thrust::cpp::par, plain_ops{}, nullptr, fn); }

template <class T>
double host_hsic(const std::vector<T>& k, const std::vector<T>& l, std::int64_t n, bool unbiased) {
  const cka::device::detail::strided<T> sk{k.data(), n, n, n, 1}, sl{l.data(), n, n, n, 1};
  return cka::device::detail::gram_hsic(host_backend("hsic"), sk, sl, unbiased ? cka::estimator::unbiased : cka::estimator::biased, std::is_same_v<T, float> ? 1.2e-7 : 2.3e-16);
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
      check(std::abs(got - expected) <= tolerance_for<T>(tolerance) * std::abs(expected),
            "n = " + std::to_string(n) + " strides (" + std::to_string(s[0]) + ", " + std::to_string(s[1]) + ") unbiased " +
                std::to_string(unbiased) + ": " + std::to_string(got) + " vs " + std::to_string(expected));
    }
  }
  cudaStreamDestroy(stream);
}

/// Rank-one Grams K = uuᵀ and L = vvᵀ written on the device (n² entries; each symmetric bit for bit, the
/// product commutes), u and v from a hash of the index: at n = 46,341 (n² > 2³¹) nothing of size n² crosses
/// to the host.
__global__ void outer_product(double* k, const double* u, std::int64_t n) {
  const std::int64_t stride = std::int64_t(gridDim.x) * blockDim.x;
  for (std::int64_t e = std::int64_t(blockIdx.x) * blockDim.x + threadIdx.x; e < n * n; e += stride)
    k[e] = u[e / n] * u[e % n];
}

/// A value in [−1, 1) from splitmix64 of (seed, i), on the host and on the device. bench/gpu/torch_peer.py
/// writes the same values with PyTorch's int64 arithmetic; both pin the value below.
__host__ __device__ constexpr double hashed(std::uint64_t seed, std::uint64_t i) {
  std::uint64_t z = seed * 0x9E3779B97F4A7C15ull + i + 1;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  z ^= z >> 31;
  return double(z >> 11) * 0x1p-52 - 1.0;
}
static_assert(hashed(7, 12345) == 0x1.998e730c888a8p-2, "the hash torch_peer.py reproduces");

/// HSIC of the rank-one Grams uuᵀ and vvᵀ in closed form, in O(n) with long double sums (independent of
/// the library's code): biased (uᵀHv)²/(n−1)²; unbiased from Song et al.'s three terms, with K̃ = uuᵀ −
/// diag(u²): tr(K̃L̃) = (Σuv)² − Σu²v², 1ᵀK̃1 = (Σu)² − Σu², 1ᵀK̃L̃1 = Σᵢ (uᵢΣu − uᵢ²)(vᵢΣv − vᵢ²).
double rank_one_hsic(const std::vector<double>& u, const std::vector<double>& v, bool unbiased) {
  const long double n = (long double)u.size();
  long double su = 0, sv = 0, suv = 0, suu = 0, svv = 0, su2v2 = 0;
  for (std::size_t i = 0; i < u.size(); ++i) {
    su += u[i], sv += v[i], suv += (long double)u[i] * v[i], suu += (long double)u[i] * u[i], svv += (long double)v[i] * v[i];
    su2v2 += (long double)u[i] * u[i] * v[i] * v[i];
  }
  if (!unbiased) {
    const long double c = suv - su * sv / n;
    return double(c * c / ((n - 1) * (n - 1)));
  }
  long double t3 = 0;
  for (std::size_t i = 0; i < u.size(); ++i) t3 += ((long double)u[i] * su - (long double)u[i] * u[i]) * ((long double)v[i] * sv - (long double)v[i] * v[i]);
  const long double t1 = suv * suv - su2v2, ku = su * su - suu, kv = sv * sv - svv;
  return double((t1 + ku * kv / ((n - 1) * (n - 2)) - 2 * t3 / (n - 2)) / (n * (n - 3)));
}

void time_hsic(const cka::device::cuda& ctx, const double* k, const double* l, std::int64_t n, const std::string& fields);

/// `hsic` of two n×n Gram views on the device against the closed form: n = 46,341 puts n² past 2³¹ (two
/// 17 GB Grams: an H100 or H200). The Grams are generated on the device and the reference is O(n) on the
/// host, so the check takes seconds. With `timing`, the biased hsic is then timed (time_hsic).
void compare_rank_one(std::int64_t n, double tolerance, bool timing) {
  std::vector<double> u(static_cast<std::size_t>(n)), v(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) {
    u[std::size_t(i)] = 0.2 + hashed(1, std::uint64_t(i));
    v[std::size_t(i)] = 0.5 * u[std::size_t(i)] + hashed(2, std::uint64_t(i));
  }
  double *du = nullptr, *dv = nullptr, *dk = nullptr, *dl = nullptr;
  const std::size_t bytes = std::size_t(n) * std::size_t(n) * sizeof(double);
  cudaMalloc(reinterpret_cast<void**>(&du), std::size_t(n) * 8);
  cudaMalloc(reinterpret_cast<void**>(&dv), std::size_t(n) * 8);
  if (cudaMalloc(reinterpret_cast<void**>(&dk), bytes) != cudaSuccess || cudaMalloc(reinterpret_cast<void**>(&dl), bytes) != cudaSuccess) {
    std::printf("skipped: rank-one Grams at n = %lld need %.1f GB of device memory\n", (long long)n, 2e-9 * double(bytes));
    cudaFree(dk);
    cudaFree(du);
    cudaFree(dv);
    return;
  }
  cudaMemcpy(du, u.data(), std::size_t(n) * 8, cudaMemcpyHostToDevice);
  cudaMemcpy(dv, v.data(), std::size_t(n) * 8, cudaMemcpyHostToDevice);
  outer_product<<<4096, 256>>>(dk, du, n);
  outer_product<<<4096, 256>>>(dl, dv, n);
  cudaDeviceSynchronize();
  const cka::device::cuda ctx{};
  const cka::device::matrix_view<const double> vk{dk, n, n, n, 1}, vl{dl, n, n, n, 1};
  for (bool unbiased : {false, true}) {
    const double expected = rank_one_hsic(u, v, unbiased);
    const double got = cka::hsic(ctx, vk, vl, unbiased ? cka::estimator::unbiased : cka::estimator::biased);
    check(std::abs(got - expected) <= tolerance * std::abs(expected),
          "rank-one hsic n = " + std::to_string(n) + " unbiased " + std::to_string(unbiased) + ": " + std::to_string(got) +
              " vs " + std::to_string(expected));
  }
  if (timing) time_hsic(ctx, dk, dl, n, "\"case\": \"hsic\", \"n\": " + std::to_string(n) + ", \"dtype\": \"float64\"");
  cudaFree(du);
  cudaFree(dv);
  cudaFree(dk);
  cudaFree(dl);
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
  const cka::device::cuda ctx{};
  for (bool unbiased : {false, true}) {
    std::vector<double> scratch(std::size_t(cka::device::detail::linear_scratch(n, 8)));
    const cka::device::detail::strided<double> hx{x.data(), n, 5, 5, 1}, hy{y.data(), n, 3, 3, 1};
    const auto s = cka::device::detail::linear_sums(host_backend("linear_cka"), scratch.data(), hx, hy,
                                                    unbiased ? cka::estimator::unbiased : cka::estimator::biased);
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

/// Kernel CKA and MMD: the CUDA context (cuBLAS DGEMM tiles of up to 4096 rows) against the same engine on the
/// CPP system with a plain host product and 64-row tiles, for RBF kernels (both median rules that differ and a
/// fixed σ), a polynomial kernel on the raw rows, and the linear kernel (with RBF, alone: linear_cka; MMD:
/// its closed form), both estimators, a row-major X and a column-major Y; n = 4099 has two tiles a side on the
/// device.
template <class T>
void compare_kernels(std::int64_t n) {
  std::mt19937_64 g(300 + unsigned(n));
  std::normal_distribution<double> d(0.0, 1.0);
  std::vector<T> x(std::size_t(n * 6)), y(std::size_t(n * 4));  // x row-major, y column-major
  for (auto& v : x) v = T(d(g) + 50.0);
  for (std::int64_t i = 0; i < n; ++i)
    for (int c = 0; c < 4; ++c) y[std::size_t(c * n + i)] = T(double(x[std::size_t(i * 6 + c)]) * 0.7 + d(g));
  cka::device::detail::tile_plan plan;
  plan.tile = 64;
  const auto engine = cka::device::detail::make_tile_engine(host_backend("kernel_cka"), plan);
  T *dx = nullptr, *dy = nullptr;
  cudaMalloc(reinterpret_cast<void**>(&dx), x.size() * sizeof(T));
  cudaMalloc(reinterpret_cast<void**>(&dy), y.size() * sizeof(T));
  cudaMemcpy(dx, x.data(), x.size() * sizeof(T), cudaMemcpyHostToDevice);
  cudaMemcpy(dy, y.data(), y.size() * sizeof(T), cudaMemcpyHostToDevice);
  const cka::device::cuda ctx{};
  const cka::device::detail::strided<T> hx{x.data(), n, 6, 6, 1}, hy{y.data(), n, 4, 1, n}, hx4{x.data(), n, 4, 6, 1};
  const cka::device::matrix_view<const T> vx{dx, n, 6, 6, 1}, vy{dy, n, 4, 1, n}, vx4{dx, n, 4, 6, 1};
  // `tol` is the relative tolerance of a double result (tolerance_for widens it for a float one).
  auto run = [&](const auto& kx, const auto& ky, const std::string& name, double tol = 1e-12) {
    for (bool unbiased : {false, true}) {
      const auto est = unbiased ? cka::estimator::unbiased : cka::estimator::biased;
      const auto rx = cka::device::detail::tile_request_of(kx), ry = cka::device::detail::tile_request_of(ky);
      std::vector<double> scratch(std::size_t(cka::device::detail::kernel_cka_scratch(n, 6, 4, plan.tile)));
      const double expected = cka::device::detail::cka_of(
          "kernel_cka", cka::device::detail::kernel_cka_sums(engine, hx, hy, rx, ry, est, scratch.data()));
      const double got = double(cka::kernel_cka(ctx, vx, vy, kx, ky, est));
      const std::string what = name + " n = " + std::to_string(n) + " unbiased " + std::to_string(unbiased);
      check(std::abs(got - expected) <= tolerance_for<T>(tol) * std::abs(expected),
            "kernel_cka " + what + ": " + std::to_string(got) + " vs " + std::to_string(expected));
      // MMD between X's first 4 columns (a strided view) and Y with kx: the pooled sample has 2n rows.
      std::vector<double> pooled(std::size_t(std::max(cka::device::detail::kernel_mmd2_scratch(n, n, 4, plan.tile),
                                                       cka::device::detail::linear_mmd2_scratch(n, n, 4))));
      const double mmd_expected = rx.form == cka::device::detail::tile_form::linear
                                      ? cka::device::detail::linear_mmd2(host_backend("mmd2"), hx4, hy, est, pooled.data())
                                      : cka::device::detail::kernel_mmd2(
                                            cka::device::detail::make_tile_engine(host_backend("mmd2"), plan), hx4, hy, rx, est,
                                            pooled.data());
      const double mmd_got = double(cka::mmd2(ctx, vx4, vy, kx, est));
      check(std::abs(mmd_got - mmd_expected) <= tolerance_for<T>(tol) * std::abs(mmd_expected),
            "mmd2 " + what + ": " + std::to_string(mmd_got) + " vs " + std::to_string(mmd_expected));
    }
  };
  const auto median = cka::rbf_parameters::median(0.8), nonzero = cka::rbf_parameters::median(1.0, cka::median_rule::nonzero);
  const cka::rbf_parameters fixed(3.0);
  const cka::polynomial_kernel cubic{3, 0.02, 1.0};
  run(median, median, "rbf median");
  run(nonzero, nonzero, "rbf nonzero median");
  run(fixed, fixed, "rbf sigma 3");
  // The rows carry an offset of 50, so their inner products are ~15,000 ± 250: a kernel value's rounding
  // (cuBLAS and the host product sum in different orders) is tripled by the cube and magnified ~20× by
  // centering values that vary by ~5% of their size, and at n = 5 the unbiased estimator's three terms cancel
  // further (a plain double evaluation of this case is 3e-13 off its 50-digit value). 1e-10, not 1e-12.
  run(cubic, cubic, "polynomial", 1e-10);
  run(cka::linear_kernel{}, median, "linear with rbf");
  run(cka::linear_kernel{}, cka::linear_kernel{}, "linear");
  cudaFree(dx);
  cudaFree(dy);
}

/// The RCKA losses: the CUDA context (DSYRK, DGEMM) against the same engine on the CPP system with plain host
/// products, B×C logits row-major (PyTorch's) with a padded-row gradient, both estimators, the sample and
/// class relations and their weighted sum, centered CKA (both estimators) and the official code's alignment
/// (uncentered, rows scaled); B = 3 skips the unbiased sample term (too few rows).
template <class T>
void compare_losses(std::int64_t b, std::int64_t c) {
  std::mt19937_64 g(500 + unsigned(b));
  std::normal_distribution<double> d(0.0, 1.0);
  std::vector<T> s(std::size_t(b * c)), t(std::size_t(b * c));
  for (std::size_t k = 0; k < s.size(); ++k) {
    s[k] = T(d(g));
    t[k] = T(0.8 * double(s[k]) + d(g));
  }
  const std::int64_t pad = c + 2;  // the gradient's row stride
  T *ds = nullptr, *dt = nullptr, *dg = nullptr;
  cudaMalloc(reinterpret_cast<void**>(&ds), s.size() * sizeof(T));
  cudaMalloc(reinterpret_cast<void**>(&dt), t.size() * sizeof(T));
  cudaMalloc(reinterpret_cast<void**>(&dg), std::size_t(b * pad) * sizeof(T));
  cudaMemcpy(ds, s.data(), s.size() * sizeof(T), cudaMemcpyHostToDevice);
  cudaMemcpy(dt, t.data(), t.size() * sizeof(T), cudaMemcpyHostToDevice);
  const cka::device::cuda ctx{};
  const cka::device::matrix_view<const T> vs{ds, b, c, c, 1}, vt{dt, b, c, c, 1};
  const cka::device::matrix_view<T> vg{dg, b, c, pad, 1};
  for (int option = 0; option < 3; ++option)  // centered biased, centered unbiased, the official code's alignment
    for (int term = 0; term < 3; ++term) {  // sample, class, both (weights 15 and 3)
      const bool unbiased = option == 1;
      cka::rcka::relation_options opts;
      opts.est = unbiased ? cka::estimator::unbiased : cka::estimator::biased;
      if (option == 2) opts.centered = false, opts.row_normalize = true;
      cka::device::detail::relation_mode mode;
      mode.centered = opts.centered;
      mode.row_normalize = opts.row_normalize;
      mode.est = opts.est;
      // Expected: the engine on the CPP system, gradient row-major b×c.
      std::vector<T> expected_grad(std::size_t(b * c), T(0));
      const cka::device::detail::strided<T> hs{s.data(), b, c, c, 1}, ht{t.data(), b, c, c, 1};
      const cka::device::detail::strided_out<T> hg{expected_grad.data(), b, c, c, 1};
      auto ratio = [&](const cka::device::detail::centered_totals& x) {
        return cka::detail::cka_ratio("rcka", cka::detail::centered_sums<double>{x.kl, x.kk, x.ll, x.ref_k, x.ref_l},
                                      cka::detail::when_undefined::nan);
      };
      auto run = [&](bool columns, double weight, bool accumulate) {
        cka::device::detail::relation_mode m = mode;
        m.transposed = columns;
        return cka::device::detail::relation_term(host_backend("rcka"), ratio,
                                                  columns ? cka::device::detail::transposed(hs) : hs,
                                                  columns ? cka::device::detail::transposed(ht) : ht,
                                                  columns ? hg.transposed() : hg, m, weight, accumulate);
      };
      double expected = 0;
      cka::device::loss_value<T> got{};
      if (term == 0) {
        expected = run(false, 1.0, false).value;
        got = cka::rcka::sample_relation_loss(ctx, vs, vt, vg, opts);
      } else if (term == 1) {
        expected = run(true, 1.0, false).value;
        got = cka::rcka::class_relation_loss(ctx, vs, vt, vg, opts);
      } else {
        expected = 15.0 * run(false, 15.0, false).value + 3.0 * run(true, 3.0, true).value;
        got = cka::rcka::rcka_loss(ctx, vs, vt, vg, cka::rcka::rcka_weights{15.0, 3.0}, opts);
      }
      std::vector<T> laid(std::size_t(b * pad));
      cudaMemcpy(laid.data(), dg, laid.size() * sizeof(T), cudaMemcpyDeviceToHost);
      double worst = 0, top = 0;
      for (std::int64_t i = 0; i < b; ++i)
        for (std::int64_t j = 0; j < c; ++j) {
          const double e = double(expected_grad[std::size_t(i * c + j)]);
          worst = std::max(worst, std::abs(double(laid[std::size_t(i * pad + j)]) - e));
          top = std::max(top, std::abs(e));
        }
      const double tol = std::is_same_v<T, float> ? 1e-5 : 1e-12;
      const std::string what = "loss B = " + std::to_string(b) + " C = " + std::to_string(c) + " term " + std::to_string(term) +
                               " option " + std::to_string(option);
      check(std::abs(double(got.value) - expected) <= tol * std::max(1.0, std::abs(expected)),
            what + ": value " + std::to_string(double(got.value)) + " vs " + std::to_string(expected));
      check(worst <= tol * std::max(top, 1e-300), what + ": gradient off by " + std::to_string(worst));
    }
  // The loss_slot variant (nothing waited for) leaves the same value and gradient in device memory, and a
  // status: 0 here, loss_not_finite for a NaN in the student.
  {
    T* slot_value = nullptr;
    std::int64_t* slot_status = nullptr;
    cudaMalloc(reinterpret_cast<void**>(&slot_value), sizeof(T));
    cudaMalloc(reinterpret_cast<void**>(&slot_status), sizeof(std::int64_t));
    const auto waited = cka::rcka::rcka_loss(ctx, vs, vt, vg, cka::rcka::rcka_weights{15.0, 3.0});
    std::vector<T> waited_grad(std::size_t(b * pad)), slot_grad(std::size_t(b * pad));
    cudaMemcpy(waited_grad.data(), dg, waited_grad.size() * sizeof(T), cudaMemcpyDeviceToHost);
    cka::rcka::rcka_loss(ctx, vs, vt, vg, cka::device::loss_slot<T>{slot_value, slot_status}, cka::rcka::rcka_weights{15.0, 3.0});
    T value{};
    std::int64_t status = 99;
    cudaMemcpy(&value, slot_value, sizeof(T), cudaMemcpyDeviceToHost);
    cudaMemcpy(&status, slot_status, sizeof(std::int64_t), cudaMemcpyDeviceToHost);
    cudaMemcpy(slot_grad.data(), dg, slot_grad.size() * sizeof(T), cudaMemcpyDeviceToHost);
    double worst = 0;
    for (std::int64_t i = 0; i < b; ++i)
      for (std::int64_t j = 0; j < c; ++j)
        worst = std::max(worst, std::abs(double(slot_grad[std::size_t(i * pad + j)]) - double(waited_grad[std::size_t(i * pad + j)])));
    check(status == waited.skipped && std::abs(double(value) - double(waited.value)) <= 1e-12 * std::abs(double(waited.value)) &&
              worst == 0.0,
          "loss_slot B = " + std::to_string(b) + ": value " + std::to_string(double(value)) + " status " + std::to_string(status));
    const T nan = T(NAN);
    cudaMemcpy(ds + 1, &nan, sizeof(T), cudaMemcpyHostToDevice);
    cka::rcka::sample_relation_loss(ctx, vs, vt, vg, cka::device::loss_slot<T>{slot_value, slot_status});
    cudaMemcpy(&value, slot_value, sizeof(T), cudaMemcpyDeviceToHost);
    cudaMemcpy(&status, slot_status, sizeof(std::int64_t), cudaMemcpyDeviceToHost);
    check(status == cka::device::loss_not_finite && std::isnan(double(value)), "loss_slot reports a NaN in the student");
    cudaFree(slot_value);
    cudaFree(slot_status);
  }
  cudaFree(ds);
  cudaFree(dt);
  cudaFree(dg);
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


// ---- `--time`: the timings, each printed as a line and, with `--report FILE`, written to FILE as one JSON
// object per line, which bench/gpu/torch_peer.py reads: it writes the same inputs with PyTorch, computes
// each value again in float64 (the independent reference) and times PyTorch on them.

std::FILE* report = nullptr;

/// One timed case: `fields` names it (JSON members), ms is cka's median time, floor_ms the time of the bare
/// work it cannot avoid (its cuBLAS products, or one read of its input; negative: none), value its result.
void emit(const std::string& fields, double ms, double floor_ms, double value, const cka::device::work_counts& counts) {
  std::printf("%s: %.3f ms (floor %.3f ms), %lld launches, %lld synchronisations, value %.17g\n", fields.c_str(), ms,
              floor_ms, (long long)counts.launches, (long long)counts.syncs, value);
  if (report) {  // JSON has no NaN; Python's reader takes the token NaN (torch_peer.py then reports a disagreement)
    char v[32] = "NaN";
    if (std::isfinite(value)) std::snprintf(v, sizeof v, "%.17g", value);
    std::fprintf(report, "{%s, \"ms\": %.6g, \"floor_ms\": %.6g, \"value\": %s, \"launches\": %lld, \"syncs\": %lld}\n",
                 fields.c_str(), ms, floor_ms, v, (long long)counts.launches, (long long)counts.syncs);
    std::fflush(report);
  }
}

/// Milliseconds of f() on `stream` by CUDA events: the median of `repeats` calls after one warm-up call (the
/// cuBLAS handle, the memory pool).
template <class F>
double median_ms(cudaStream_t stream, int repeats, F&& f) {
  f();
  cudaEvent_t start, stop;
  cudaEventCreate(&start);
  cudaEventCreate(&stop);
  std::vector<double> ms;
  for (int r = 0; r < repeats; ++r) {
    cudaEventRecord(start, stream);
    f();
    cudaEventRecord(stop, stream);
    cudaEventSynchronize(stop);
    float t = 0;
    cudaEventElapsedTime(&t, start, stop);
    ms.push_back(double(t));
  }
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

/// The counts of one call of f on a copy of ctx that counts.
template <class F>
cka::device::work_counts counted(const cka::device::cuda& ctx, F&& f) {
  cka::device::work_counts counts;
  cka::device::cuda c = ctx;
  c.counts = &counts;
  f(c);
  return counts;
}

/// Two layers written on the device (torch_peer.py's `layers` writes the same values): X (n×d1, column-major)
/// holds x_e = hashed(seed, e) at flat index e, Y (n×d2, column-major) y_e = 0.5·x_{e mod n·d1} +
/// hashed(seed + 1, e), so Y's column c follows X's column c mod d1. Each value is formed in double and
/// rounded once to T (0.5·x is exact, so a fused multiply-add rounds the same).
template <class T>
__global__ void fill_layers(T* x, T* y, std::int64_t n, std::int64_t d1, std::int64_t d2, std::uint64_t seed) {
  const std::int64_t stride = std::int64_t(gridDim.x) * blockDim.x, nx = n * d1, ny = n * d2;
  for (std::int64_t e = std::int64_t(blockIdx.x) * blockDim.x + threadIdx.x; e < (nx > ny ? nx : ny); e += stride) {
    if (e < nx) x[e] = T(hashed(seed, std::uint64_t(e)));
    if (e < ny) y[e] = T(0.5 * double(T(hashed(seed, std::uint64_t(e % nx)))) + hashed(seed + 1, std::uint64_t(e)));
  }
}

/// Device memory for `count` values of T, freed on scope exit; null (and a message) where it does not fit.
template <class T>
struct device_buffer {
  T* ptr = nullptr;
  explicit device_buffer(std::size_t count) {
    if (cudaMalloc(reinterpret_cast<void**>(&ptr), std::max<std::size_t>(count, 1) * sizeof(T)) != cudaSuccess) {
      std::printf("FAILED: cudaMalloc of %.1f GB\n", 1e-9 * double(count * sizeof(T)));
      ++failures;
      ptr = nullptr;
    }
  }
  device_buffer(const device_buffer&) = delete;
  ~device_buffer() { cudaFree(ptr); }
};

const char* dtype_name(float) { return "float32"; }
const char* dtype_name(double) { return "float64"; }

/// Linear CKA of layers(n, d1, d2, seed 1) in T against its floor: the bare DSYRKs of its form on a double
/// n×(d1+d2) buffer (one D×D product, or two n×n Grams where n < d1 + d2).
template <class T>
void time_linear(std::int64_t n, std::int64_t d1, std::int64_t d2, int repeats) {
  const std::int64_t dd = d1 + d2;
  const bool grams = cka::device::detail::linear_by_grams(n, dd);
  device_buffer<T> x(std::size_t(n * d1)), y(std::size_t(n * d2));
  device_buffer<double> z(std::size_t(n * dd)), out(std::size_t(grams ? 2 * n * n : dd * dd));
  if (!x.ptr || !y.ptr || !z.ptr || !out.ptr) return;
  fill_layers<T><<<4096, 256>>>(x.ptr, y.ptr, n, d1, d2, 1);
  cudaMemset(z.ptr, 0, std::size_t(n * dd) * sizeof(double));
  cudaDeviceSynchronize();
  const cka::device::cuda ctx{};
  const cka::device::matrix_view<const T> vx{x.ptr, n, d1, 1, n}, vy{y.ptr, n, d2, 1, n};
  double value = 0;
  const double ms = median_ms(ctx.stream, repeats, [&] { value = double(cka::linear_cka(ctx, vx, vy)); });
  const cublasHandle_t blas = ctx.blas();
  const double one = 1.0, zero = 0.0;
  const double floor_ms = median_ms(ctx.stream, repeats, [&] {
    if (grams) {
      cublasDsyrk_64(blas, CUBLAS_FILL_MODE_LOWER, CUBLAS_OP_N, n, d1, &one, z.ptr, n, &zero, out.ptr, n);
      cublasDsyrk_64(blas, CUBLAS_FILL_MODE_LOWER, CUBLAS_OP_N, n, d2, &one, z.ptr + n * d1, n, &zero, out.ptr + n * n, n);
    } else {
      cublasDsyrk_64(blas, CUBLAS_FILL_MODE_LOWER, CUBLAS_OP_T, dd, n, &one, z.ptr, n, &zero, out.ptr, dd);
    }
  });
  emit("\"case\": \"linear_cka\", \"n\": " + std::to_string(n) + ", \"d1\": " + std::to_string(d1) + ", \"d2\": " +
           std::to_string(d2) + ", \"dtype\": \"" + dtype_name(T{}) + "\", \"form\": \"" + (grams ? "two Grams" : "features") + "\"",
       ms, floor_ms, value, counted(ctx, [&](const cka::device::cuda& c) { cka::linear_cka(c, vx, vy); }));
}

/// RBF kernel CKA of layers(n, d1, d2, seed 2) (no n×n buffer), σ fixed or (sigma = 0) by the median rule,
/// against its floor: one pass of its tile DGEMMs (the median rule makes four passes, a fixed σ two).
void time_rbf(std::int64_t n, std::int64_t d1, std::int64_t d2, double sigma, int repeats) {
  device_buffer<double> x(std::size_t(n * d1)), y(std::size_t(n * d2)), tile(std::size_t(4096) * 4096);
  if (!x.ptr || !y.ptr || !tile.ptr) return;
  fill_layers<double><<<4096, 256>>>(x.ptr, y.ptr, n, d1, d2, 2);
  cudaDeviceSynchronize();
  const cka::device::cuda ctx{};
  const cka::device::matrix_view<const double> vx{x.ptr, n, d1, 1, n}, vy{y.ptr, n, d2, 1, n};
  const auto k = sigma > 0 ? cka::rbf_parameters(sigma) : cka::rbf_parameters::median();
  double value = 0;
  const double ms = median_ms(ctx.stream, repeats, [&] { value = cka::kernel_cka(ctx, vx, vy, k, k); });
  const cublasHandle_t blas = ctx.blas();
  const double one = 1.0, zero = 0.0;
  const double floor_ms = median_ms(ctx.stream, repeats, [&] {
    for (std::int64_t i0 = 0; i0 < n; i0 += 4096)
      for (std::int64_t j0 = i0; j0 < n; j0 += 4096) {
        const std::int64_t h = std::min<std::int64_t>(4096, n - i0), w = std::min<std::int64_t>(4096, n - j0);
        cublasDgemm_64(blas, CUBLAS_OP_N, CUBLAS_OP_T, h, w, d1, &one, x.ptr + i0, n, x.ptr + j0, n, &zero, tile.ptr, h);
        cublasDgemm_64(blas, CUBLAS_OP_N, CUBLAS_OP_T, h, w, d2, &one, y.ptr + i0, n, y.ptr + j0, n, &zero, tile.ptr, h);
      }
  });
  char s[32];
  std::snprintf(s, sizeof s, "%.17g", sigma);
  emit("\"case\": \"rbf_cka\", \"n\": " + std::to_string(n) + ", \"d1\": " + std::to_string(d1) + ", \"d2\": " +
           std::to_string(d2) + ", \"dtype\": \"float64\", \"sigma\": " + s,
       ms, floor_ms, value, counted(ctx, [&](const cka::device::cuda& c) { cka::kernel_cka(c, vx, vy, k, k); }));
}

/// hsic of the rank-one Gram views K = uuᵀ, L = vvᵀ (compare_rank_one's) against its floor: one read of
/// both Grams (a device sum of each).
void time_hsic(const cka::device::cuda& ctx, const double* k, const double* l, std::int64_t n,
               const std::string& fields) {
  const cka::device::matrix_view<const double> vk{k, n, n, n, 1}, vl{l, n, n, n, 1};
  double value = 0;
  const double ms = median_ms(ctx.stream, 5, [&] { value = cka::hsic(ctx, vk, vl); });
  double sink = 0;
  const double floor_ms = median_ms(ctx.stream, 5, [&] {
    sink += thrust::reduce(thrust::cuda::par.on(ctx.stream), k, k + n * n) +
            thrust::reduce(thrust::cuda::par.on(ctx.stream), l, l + n * n);
  });
  emit(fields, ms, floor_ms, value, counted(ctx, [&](const cka::device::cuda& c) { cka::hsic(c, vk, vl); }));
  if (!std::isfinite(sink)) std::printf("(the floor's sums are not finite)\n");
}

/// The RCKA losses with their gradients on B×C float logits, row-major (PyTorch's): S from layers' X
/// (b·c values, seed 3) and T from its Y, each read as b×c row-major; weights 15 and 15. Also the loss_slot
/// variant, which never waits (no value: the peer is the same loss).
void time_losses(std::int64_t b, std::int64_t c) {
  device_buffer<float> s(std::size_t(b * c)), t(std::size_t(b * c)), grad(std::size_t(b * c)), slot(1);
  device_buffer<std::int64_t> status(1);
  if (!s.ptr || !t.ptr || !grad.ptr || !slot.ptr || !status.ptr) return;
  fill_layers<float><<<4096, 256>>>(s.ptr, t.ptr, b * c, 1, 1, 3);
  cudaDeviceSynchronize();
  const cka::device::cuda ctx{};
  const cka::device::matrix_view<const float> vs{s.ptr, b, c, c, 1}, vt{t.ptr, b, c, c, 1};
  const cka::device::matrix_view<float> vg{grad.ptr, b, c, c, 1};
  const cka::rcka::rcka_weights w{15.0, 15.0};
  const std::string shape = ", \"b\": " + std::to_string(b) + ", \"c\": " + std::to_string(c) + ", \"dtype\": \"float32\"";
  double value = 0;
  double ms = median_ms(ctx.stream, 21, [&] { value = double(cka::rcka::rcka_loss(ctx, vs, vt, vg, w).value); });
  emit("\"case\": \"rcka_loss\"" + shape, ms, -1, value,
       counted(ctx, [&](const cka::device::cuda& cc) { cka::rcka::rcka_loss(cc, vs, vt, vg, w); }));
  const cka::device::loss_slot<float> into{slot.ptr, status.ptr};
  ms = median_ms(ctx.stream, 21, [&] { cka::rcka::rcka_loss(ctx, vs, vt, vg, into, w); });
  float slot_value = 0;
  cudaMemcpy(&slot_value, slot.ptr, sizeof(float), cudaMemcpyDeviceToHost);
  emit("\"case\": \"rcka_loss_slot\"" + shape, ms, -1, double(slot_value),
       counted(ctx, [&](const cka::device::cuda& cc) { cka::rcka::rcka_loss(cc, vs, vt, vg, into, w); }));
  ms = median_ms(ctx.stream, 21, [&] { value = double(cka::rcka::sample_relation_loss(ctx, vs, vt, vg).value); });
  emit("\"case\": \"sample_relation_loss\"" + shape, ms, -1, value,
       counted(ctx, [&](const cka::device::cuda& cc) { cka::rcka::sample_relation_loss(cc, vs, vt, vg); }));
}

/// Runs one timing; an exception is a failed check, and the next timing still runs.
template <class F>
void guarded(F&& f) {
  try {
    f();
  } catch (const std::exception& e) {
    check(false, std::string("a timing threw: ") + e.what());
  }
}

}  // namespace

int main(int argc, char** argv) {
  bool small = false, large = false, timing = false;
  for (int a = 1; a < argc; ++a) {
    const std::string arg = argv[a];
    if (arg == "--small") {
      small = true;
    } else if (arg == "--large") {
      large = true;
    } else if (arg == "--time") {
      timing = true;
    } else if (arg == "--report" && a + 1 < argc) {
      report = std::fopen(argv[++a], "w");
      if (!report) {
        std::fprintf(stderr, "test_device_cuda: cannot write %s\n", argv[a]);
        return 2;
      }
    } else {
      std::fprintf(stderr, "usage: test_device_cuda [--small] [--large] [--time] [--report FILE]\n");
      return 2;
    }
  }
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
    std::printf("skipped: no CUDA device\n");
    return 77;
  }
  // --small: the sizes a sanitizer gets through in seconds (every code path but the multi-chunk and
  // multi-tile ones).
  for (std::int64_t n : {5, 41, 257, 1001})
    if (!small || n <= 41) compare<double>(n, 1e-12);
  compare<float>(small ? 41 : 301, 1e-12);  // float input, double accumulation on both sides, a float result
  for (std::int64_t n : {7, 1001, 100003, 600001})  // 600,001 rows: three chunks of rows
    if (!small || n <= 1001) compare_linear(n);
  for (std::int64_t n : {5, 301, 4099})  // 4099: two device tiles a side
    if (!small || n <= 301) compare_kernels<double>(n);
  compare_kernels<float>(small ? 301 : 1001);
  for (auto bc : {std::pair<std::int64_t, std::int64_t>{3, 10}, {17, 5}, {64, 100}, {257, 1000}})
    if (!small || bc.first <= 64) compare_losses<double>(bc.first, bc.second);
  compare_losses<float>(129, 37);
  errors();
  compare_rank_one(1001, 1e-12, false);
  if (large) guarded([&] { compare_rank_one(46341, 1e-11, timing); });
  if (timing) {
    guarded([] { time_linear<double>(1000000, 256, 256, 5); });  // many samples: the feature form
    guarded([] { time_linear<double>(100000, 1024, 1024, 5); });
    guarded([] { time_linear<double>(256, 4096, 4096, 21); });   // a distillation batch of wide layers: two Grams
    guarded([] { time_linear<double>(1024, 8192, 8192, 11); });
    guarded([] { time_linear<float>(1000000, 128, 128, 5); });   // two float layers of a million rows
    guarded([] { time_rbf(50000, 256, 256, 0.0, 3); });          // the median rule, no n×n buffer
    guarded([] { time_rbf(50000, 256, 256, 12.0, 3); });         // a fixed σ near the median rule's (σ² = 171, 213)
    guarded([] { time_losses(1024, 1000); });
  }
  if (report) std::fclose(report);
  std::printf(failures ? "%d check(s) failed\n" : "all CUDA device checks passed\n", failures);
  return failures ? 1 : 0;
}
