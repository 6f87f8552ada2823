#pragma once
// Private: kernel CKA with two Gaussian RBF kernels, and the block sums of MMD, on the context's memory,
// without an n×n buffer — the device twin of the host's tile engine (cka/detail/tiles.hpp). The features
// are centered once into Z (n×d, column-major, double); then every pass walks the upper tiles I ≤ J of the
// n×n matrices: the caller's gemm writes G = Z_I·Z_Jᵀ (h×w) into a tile buffer, one Thrust transform turns
// it into kernel values in place (distance ‖z_i‖² + ‖z_j‖² − 2g clamped at 0, exactly 0 on the diagonal,
// then exp(−d/(2σ²)) as rbf_parameters::exponent_for forms it), and Thrust reductions consume the tile:
// - the median (a median-rule bandwidth): exact, by selection on the bit patterns of the squared distances
//   (non-negative doubles order like their patterns): a counting pass tallies the values below a bracket,
//   the exact zeros and 16 buckets of the bracket; if the bracket holds both middle ranks and at most `cap`
//   values, one pass collects it and a sort picks them; otherwise each middle rank is narrowed to its
//   bucket (16× per pass) until the bucket can be collected or is one bit pattern. Beyond 2^16 pairs a
//   sample of pairs/64 pair distances (2^12 … 2^20) brackets the middle first, so that the collected values
//   are few (about 10/√draws of the pairs);
// - pass A: the row sums of K and L (the diagonal left out for the unbiased estimator), and per row the
//   squares Σ K_ij², Σ L_ij² (the references for a vanishing centered Gram);
// - pass B: Σ C(K)∘C(L), Σ C(K)², Σ C(L)² with the centering of hsic.hpp, a tile I < J counted twice.
// - MMD: the pooled sample [X; Y] centered with its means, its median, then one pass of block sums.
// Passes run tile after tile and add the tiles' sums in tile order. Memory: Z (8·n·d bytes per
// representation), 6n doubles, two tiles (one for MMD and the median), and the collected bracket.

#include <cka/device/detail/hsic.hpp>
#include <cka/device/detail/linear.hpp>
#include <cka/detail/mmd_sums.hpp>
#include <cka/rbf_parameters.hpp>  // Eigen-free: the kernels' parameters and the median's ranks

#include <thrust/copy.h>
#include <thrust/fill.h>
#include <thrust/for_each.h>
#include <thrust/iterator/counting_iterator.h>
#include <thrust/iterator/transform_iterator.h>
#include <thrust/reduce.h>
#include <thrust/sort.h>
#include <thrust/transform.h>
#include <thrust/transform_reduce.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

namespace cka::device::detail {

/// exp(−d/(2σ²)) in the form rbf_parameters::exponent_for chose: exp(d·scale), or where 1/(2σ²)
/// overflows exp((d/root)·half) with 1 at d = 0.
struct rbf_exponent {
  double scale = 0, root = 0, half = 0;
  bool split = false;
  CKA_HD double operator()(double d) const {
    if (!split) return exp(d * scale);
    return d == 0.0 ? 1.0 : exp((d / root) * half);
  }
};

/// The bit pattern of a double (its order is the value's for non-negative doubles).
CKA_HD inline std::uint64_t bits_of(double v) {
#if defined(__CUDA_ARCH__)
  return std::uint64_t(__double_as_longlong(v));
#else
  std::uint64_t u;
  std::memcpy(&u, &v, sizeof u);
  return u;
#endif
}
inline double double_of(std::uint64_t u) {
  double v;
  std::memcpy(&v, &u, sizeof v);
  return v;
}

/// A representation centered for tiles: Z (n×d, column-major) and its squared row norms.
struct tile_rows {
  const double* z;
  const double* norms;
  std::int64_t n, d;
};

/// One tile (rows i0 … i0+h−1 against j0 … j0+w−1) of an n×n symmetric matrix, column-major in `buffer`.
struct tile_place {
  std::int64_t i0, j0, h, w;
  bool diagonal() const { return i0 == j0; }
};

/// Squared distance at flat index k of a tile holding G = Z_I·Z_Jᵀ, as the host's tile_distances forms it.
struct tile_distance {
  const double* g;
  const double* ni;  // norms of the tile's rows
  const double* nj;  // and of its columns
  std::int64_t h;
  bool diagonal;
  CKA_HD double operator()(std::int64_t k) const {
    const std::int64_t i = k % h, j = k / h;
    if (diagonal && i == j) return 0.0;
    const double v = ni[i] + nj[j] - 2.0 * g[k];
    return v > 0.0 ? v : (v == v ? 0.0 : v);  // clamped at +0; NaN kept (an overflow)
  }
};

/// The tile's distances replaced by kernel values; a non-finite distance becomes NaN (found in pass A).
struct tile_kernel {
  tile_distance dist;
  rbf_exponent f;
  double* out;
  CKA_HD void operator()(std::int64_t k) const {
    const double v = dist(k);
    out[k] = v - v == 0.0 ? f(v) : v - v;
  }
};

/// Row sums of a column-major h×w tile into r[i] (+=), the squares (times `weight`) into q[i]; the entry on
/// the matrix diagonal is left out when skip_diagonal (a diagonal tile's i = j).
struct tile_row_sums {
  const double* t;
  std::int64_t h, w;
  bool diagonal, skip_diagonal;
  double weight;
  double* r;
  double* q;
  CKA_HD void operator()(std::int64_t i) const {
    double s = 0, s2 = 0;
    for (std::int64_t j = 0; j < w; ++j) {
      if (diagonal && skip_diagonal && i == j) continue;
      const double v = t[j * h + i];
      s += v;
      s2 += v * v;
    }
    r[i] += s;
    q[i] += weight * s2;
  }
};

/// Column sums of a tile above the diagonal into r[j] (+=).
struct tile_column_sums {
  const double* t;
  std::int64_t h;
  double* r;
  CKA_HD void operator()(std::int64_t j) const {
    double s = 0;
    for (std::int64_t i = 0; i < h; ++i) s += t[j * h + i];
    r[j] += s;
  }
};

/// The centered products of a tile of K and L (pass B), a tile above the diagonal counted twice.
struct tile_centered_products {
  const double* k;
  const double* l;
  const double* rki;
  const double* rkj;
  const double* rli;
  const double* rlj;
  centering_scale ck, cl;
  std::int64_t h;
  bool diagonal, unbiased;
  CKA_HD sums3 operator()(std::int64_t flat) const {
    const std::int64_t i = flat % h, j = flat / h;
    if (diagonal && unbiased && i == j) return sums3(0.0, 0.0, 0.0);
    const double a = k[flat] - ck.u * (rki[i] + rkj[j]) + ck.c;
    const double b = l[flat] - cl.u * (rli[i] + rlj[j]) + cl.c;
    const double wgt = diagonal ? 1.0 : 2.0;
    return sums3(wgt * a * b, wgt * a * a, wgt * b * b);
  }
};

/// The block sums of a pooled tile (rows before m are X's): Σ Kxx, Σ Kyy, Σ Kxy over the full symmetric
/// matrix (each mixed pair twice), and the diagonals of Kxx and Kyy; a tile above the diagonal counted twice.
struct tile_block_terms {
  const double* k;
  std::int64_t h, i0, j0, m;
  bool diagonal;
  CKA_HD sums5 operator()(std::int64_t flat) const {
    const std::int64_t i = i0 + flat % h, j = j0 + flat / h;
    const double v = k[flat], wgt = diagonal ? 1.0 : 2.0;
    const bool xi = i < m, xj = j < m;
    const double on_diagonal = i == j ? v : 0.0;
    if (xi && xj) return sums5(wgt * v, 0.0, 0.0, on_diagonal, 0.0);
    if (!xi && !xj) return sums5(0.0, wgt * v, 0.0, 0.0, on_diagonal);
    return sums5(0.0, 0.0, wgt * v, 0.0, 0.0);
  }
};

/// The tally of one counting pass of the median over the distinct pairs i < j: values below the bracket's
/// first pattern, exact zeros, non-finite values, and 16 buckets of patterns in [lo, hi] ((u − lo) >> shift).
struct median_tally {
  std::uint64_t below = 0, zeros = 0, bad = 0;
  std::uint64_t bucket[16] = {};
};
struct add_tally {
  CKA_HD median_tally operator()(const median_tally& a, const median_tally& b) const {
    median_tally s;
    s.below = a.below + b.below;
    s.zeros = a.zeros + b.zeros;
    s.bad = a.bad + b.bad;
    for (int q = 0; q < 16; ++q) s.bucket[q] = a.bucket[q] + b.bucket[q];
    return s;
  }
};
struct tally_at {
  tile_distance dist;
  std::uint64_t lo, hi;
  int shift;
  CKA_HD median_tally operator()(std::int64_t k) const {
    median_tally t;
    if (dist.diagonal && k % dist.h >= k / dist.h) return t;  // a diagonal tile's pairs i < j only
    const double v = dist(k);
    if (!(v - v == 0.0)) {
      t.bad = 1;
      return t;
    }
    const std::uint64_t u = bits_of(v);
    t.zeros = v == 0.0;
    if (u < lo) {
      t.below = 1;
    } else if (u <= hi) {
      t.bucket[(u - lo) >> shift] = 1;
    }
    return t;
  }
};
/// Whether the pair at flat index k is a distinct pair whose distance lies in [lo, hi] (collect pass).
struct in_bracket {
  tile_distance dist;
  std::uint64_t lo, hi;
  CKA_HD bool operator()(std::int64_t k) const {
    if (dist.diagonal && k % dist.h >= k / dist.h) return false;
    const std::uint64_t u = bits_of(dist(k));
    return u >= lo && u <= hi;
  }
};

/// The squared distance of a sampled pair, from the features (the sample only brackets; counting decides).
struct sampled_distance {
  const double* z;
  std::int64_t n, d;
  std::uint64_t seed;
  CKA_HD double operator()(std::int64_t s) const {
    // splitmix64 of the draw's index gives a pair i ≠ j
    std::uint64_t x = seed + std::uint64_t(s) * 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    x ^= x >> 31;
    const std::uint64_t nn = std::uint64_t(n);
    const std::int64_t i = std::int64_t((x >> 32) % nn);
    std::int64_t j = std::int64_t((x & 0xFFFFFFFFull) % (nn - 1));
    if (j >= i) ++j;
    double v = 0;
    for (std::int64_t c = 0; c < d; ++c) {
      const double e = z[c * n + i] - z[c * n + j];
      v += e * e;
    }
    return v;
  }
};

/// Row i's squared norm in Z.
struct row_norm {
  const double* z;
  std::int64_t n, d;
  CKA_HD double operator()(std::int64_t i) const {
    double s = 0;
    for (std::int64_t c = 0; c < d; ++c) s += z[c * n + i] * z[c * n + i];
    return s;
  }
};

/// Z(offset + i, j) = (x_ij − mean_j)·keep_j·scale for the rows of a pooled sample stacked in Z (total rows).
template <class T>
struct center_rows_into {
  strided<T> m;
  const double* mean;
  const double* keep;
  double scale;
  double* z;
  std::int64_t total, offset;
  CKA_HD void operator()(std::int64_t flat) const {
    const std::int64_t i = flat % m.rows, j = flat / m.rows;
    z[j * total + offset + i] = (double(m.ptr[i * m.row_stride + j * m.col_stride]) - mean[j]) * keep[j] * scale;
  }
};

/// The tile size and the median's collect limit of the device RBF engine.
struct rbf_plan {
  std::int64_t tile = 256;                       // rows per tile side
  std::uint64_t cap = std::uint64_t(1) << 25;    // most bracket values collected at once
  std::uint64_t draws = std::uint64_t(1) << 20;  // most sampled pairs (pairs/64 of them, at least 2^12)
  std::uint64_t sample_above = std::uint64_t(1) << 16;  // pairs beyond which a sample brackets the median
};

/// Calls f(place) for every upper tile I ≤ J of an n×n matrix, row of tiles after row of tiles.
template <class F>
void for_upper_tiles(std::int64_t n, std::int64_t b, F&& f) {
  for (std::int64_t i0 = 0; i0 < n; i0 += b)
    for (std::int64_t j0 = i0; j0 < n; j0 += b) f(tile_place{i0, j0, std::min(b, n - i0), std::min(b, n - j0)});
}

/// The engine over a context: policy runs Thrust, gemm(a, b, h, w, d, lda, g) writes G = A·Bᵀ (h×w,
/// column-major, ld h) for A = rows of Z from a (h of them) and B from b (w), both with leading dimension
/// lda and d columns; to_host(dst, src, count) copies doubles back; make(count) allocates count doubles on
/// the context's memory (an owner with get()).
template <class Policy, class Gemm, class ToHost, class Make>
struct rbf_engine {
  Policy policy;
  Gemm gemm;
  ToHost to_host;
  Make make;
  const char* fn;
  rbf_plan plan;

  using counter = thrust::counting_iterator<std::int64_t>;

  /// G for tile p of representation t into buf.
  void product(const tile_rows& t, const tile_place& p, double* buf) const {
    gemm(t.z + p.i0, t.z + p.j0, p.h, p.w, t.d, t.n, buf);
  }
  tile_distance distances(const tile_rows& t, const tile_place& p, const double* buf) const {
    return tile_distance{buf, t.norms + p.i0, t.norms + p.j0, p.h, p.diagonal()};
  }
  [[noreturn]] void overflow() const {
    cka::detail::fail_domain(fn, "overflow: a squared distance exceeds the range of the accumulation type; rescale the inputs "
                                 "and the bandwidth together (a median-rule bandwidth does so itself)");
  }

  /// Column-centered (constant columns exactly zero), scaled rows of a view, or of two stacked views (y
  /// may have no rows), into z (n×d) with their squared norms; stats holds 2d doubles.
  template <class T>
  void center(const strided<T>& x, const strided<T>& y, double scale, double* z, double* norms, double* stats) const {
    const std::int64_t n = x.rows + y.rows, d = x.cols;
    const counter first(0);
    thrust::for_each(policy, first, first + d, column_moments<T>{x, stats, stats + d, y});
    thrust::for_each(policy, first, first + x.rows * d, center_rows_into<T>{x, stats, stats + d, scale, z, n, 0});
    if (y.rows > 0) thrust::for_each(policy, first, first + y.rows * d, center_rows_into<T>{y, stats, stats + d, scale, z, n, x.rows});
    thrust::transform(policy, first, first + n, norms, row_norm{z, n, d});
  }

  /// The exact median of the squared distances between the rows of t (NumPy's definition, as
  /// median_squared_distance); ranks(zeros) gives the middle ranks among the distinct pairs.
  template <class Ranks>
  double median(const tile_rows& t, Ranks&& ranks) const {
    const std::uint64_t n = std::uint64_t(t.n), pairs = n * (n - 1) / 2;
    auto buffer = make(std::size_t(plan.tile * plan.tile));
    double* buf = buffer.get();
    std::uint64_t lo = 0, hi = top_pattern();
    bool sampled = false;
    if (pairs > plan.sample_above && plan.draws > 0) sampled = sample_bracket(t, ranks(0), pairs, lo, hi);
    const median_tally c = tally(t, buf, lo, hi, shift_for(lo, hi));
    const auto r = ranks(c.zeros);
    if (r.hi < 0) return 0.0;
    const std::uint64_t inside = total(c);
    auto within = [&](std::int64_t w) { return w < 0 || (std::uint64_t(w) >= c.below && std::uint64_t(w) < c.below + inside); };
    if (within(r.lo) && within(r.hi) && inside <= plan.cap) {  // usual: one pass collects both middle values
      std::vector<double> v = collect(t, buf, lo, hi, inside, c.below, {r.lo, r.hi});
      return r.lo == r.hi ? v[1] : cka::detail::median_midpoint(r.lo < 0 ? 0.0 : v[0], v[1]);
    }
    if (sampled && !(within(r.lo) && within(r.hi))) lo = 0, hi = top_pattern();  // the sample missed
    const double upper = select(t, buf, std::uint64_t(r.hi), lo, hi);
    if (r.lo == r.hi) return upper;
    return cka::detail::median_midpoint(r.lo < 0 ? 0.0 : select(t, buf, std::uint64_t(r.lo), lo, bits_of(upper)), upper);
  }

  static std::uint64_t top_pattern() { return bits_of(1.7976931348623157e308); }
  static int shift_for(std::uint64_t lo, std::uint64_t hi) {
    int shift = 0;
    while (((hi - lo) >> shift) >= 16) ++shift;
    return shift;
  }
  static std::uint64_t total(const median_tally& c) {
    std::uint64_t inside = 0;
    for (int q = 0; q < 16; ++q) inside += c.bucket[q];
    return inside;
  }

  /// Brackets the middle from a sample of pair distances: its quantiles around the middle rank, widened by
  /// 5 standard errors. False if the sample gave no finite bracket.
  template <class R>
  bool sample_bracket(const tile_rows& t, const R& guess, std::uint64_t pairs, std::uint64_t& lo, std::uint64_t& hi) const {
    const std::uint64_t m = std::min(plan.draws, std::max<std::uint64_t>(pairs / 64, std::uint64_t(1) << 12));
    auto sample = make(std::size_t(m));
    const counter first(0);
    thrust::transform(policy, first, first + std::int64_t(m), sample.get(), sampled_distance{t.z, t.n, t.d, 0x2545F4914F6CDD1Dull});
    thrust::sort(policy, sample.get(), sample.get() + m);
    const double q = double(std::max<std::int64_t>(guess.hi, 0)) / double(pairs);
    const double spread = 5.0 * std::sqrt(double(m) * q * (1 - q)) + 1;
    const double at_lo = std::max(0.0, double(m) * q - spread), at_hi = std::min(double(m - 1), double(m) * q + spread);
    double vlo = 0, vhi = 0;
    to_host(&vlo, sample.get() + std::int64_t(at_lo), 1);
    to_host(&vhi, sample.get() + std::int64_t(at_hi), 1);
    if (!(vlo - vlo == 0.0) || !(vhi - vhi == 0.0)) return false;
    lo = bits_of(vlo > 0 ? vlo : 0.0);
    hi = bits_of(vhi);
    return true;
  }

  /// The value at one rank among the distinct pairs, known to lie in [lo, hi]: counting passes narrow the
  /// range to the rank's bucket (16× each) until it holds at most cap values (then one pass collects them)
  /// or a bucket is a single bit pattern (then the pattern is the value).
  double select(const tile_rows& t, double* buf, std::uint64_t rank, std::uint64_t lo, std::uint64_t hi) const {
    for (;;) {
      const int shift = shift_for(lo, hi);
      const median_tally c = tally(t, buf, lo, hi, shift);
      const std::uint64_t inside = total(c);
      if (rank < c.below || rank >= c.below + inside) {
        cka::detail::fail_domain(fn, "internal error: a median rank fell outside its bracket");
      }
      if (inside <= plan.cap) return collect(t, buf, lo, hi, inside, c.below, {std::int64_t(rank), std::int64_t(rank)})[1];
      std::uint64_t seen = c.below;
      int q = 0;
      while (rank >= seen + c.bucket[q]) seen += c.bucket[q++];
      if (shift == 0) return double_of(lo + std::uint64_t(q));
      const std::uint64_t new_lo = lo + (std::uint64_t(q) << shift);
      hi = std::min(hi, new_lo + ((std::uint64_t(1) << shift) - 1));
      lo = new_lo;
    }
  }

  /// One counting pass over every distinct pair (tile after tile); throws on an overflowed distance.
  median_tally tally(const tile_rows& t, double* buf, std::uint64_t lo, std::uint64_t hi, int shift) const {
    median_tally sum;
    for_upper_tiles(t.n, plan.tile, [&](const tile_place& p) {
      product(t, p, buf);
      const counter first(0);
      sum = add_tally{}(sum, thrust::transform_reduce(policy, first, first + p.h * p.w, tally_at{distances(t, p, buf), lo, hi, shift},
                                                      median_tally{}, add_tally{}));
    });
    if (sum.bad > 0) overflow();
    return sum;
  }

  /// The values in [lo, hi] (`inside` of them, `below` values under lo) collected and sorted; returns the
  /// values at ranks want[0] and want[1] (a negative rank gives 0).
  std::vector<double> collect(const tile_rows& t, double* buf, std::uint64_t lo, std::uint64_t hi, std::uint64_t inside,
                              std::uint64_t below, const std::int64_t (&want)[2]) const {
    auto values = make(std::size_t(inside));
    double* out = values.get();
    std::int64_t at = 0;
    for_upper_tiles(t.n, plan.tile, [&](const tile_place& p) {
      product(t, p, buf);
      const counter first(0);
      const tile_distance dist = distances(t, p, buf);
      const auto d = thrust::make_transform_iterator(first, dist);
      at = thrust::copy_if(policy, d, d + p.h * p.w, first, out + at, in_bracket{dist, lo, hi}) - out;
    });
    thrust::sort(policy, out, out + at);
    std::vector<double> v(2, 0.0);
    for (int q = 0; q < 2; ++q)
      if (want[q] >= 0) to_host(&v[std::size_t(q)], out + (want[q] - std::int64_t(below)), 1);
    return v;
  }

  /// Kernel values of tile p of representation t in buf.
  void kernel_tile(const tile_rows& t, const tile_place& p, const rbf_exponent& f, double* buf) const {
    product(t, p, buf);
    const counter first(0);
    thrust::for_each(policy, first, first + p.h * p.w, tile_kernel{distances(t, p, buf), f, buf});
  }

  /// The centered sums of the RBF kernel matrices of x and y (pass A, then pass B): kl, kk, ll and the
  /// references Σ K_ij², Σ L_ij² (off the diagonal for the unbiased estimator). rows: 4n doubles.
  centered_totals cka_sums(const tile_rows& x, const rbf_exponent& fx, const tile_rows& y, const rbf_exponent& fy,
                              bool unbiased, double* rows) const {
    const std::int64_t n = x.n;
    double* rk = rows;
    double* rl = rows + n;
    double* qk = rows + 2 * n;
    double* ql = rows + 3 * n;
    const counter first(0);
    thrust::fill(policy, rows, rows + 4 * n, 0.0);
    auto bk = make(std::size_t(plan.tile * plan.tile));
    auto bl = make(std::size_t(plan.tile * plan.tile));
    double* kt = bk.get();
    double* lt = bl.get();
    for_upper_tiles(n, plan.tile, [&](const tile_place& p) {
      kernel_tile(x, p, fx, kt);
      kernel_tile(y, p, fy, lt);
      const double weight = p.diagonal() ? 1.0 : 2.0;
      thrust::for_each(policy, first, first + p.h, tile_row_sums{kt, p.h, p.w, p.diagonal(), unbiased, weight, rk + p.i0, qk + p.i0});
      thrust::for_each(policy, first, first + p.h, tile_row_sums{lt, p.h, p.w, p.diagonal(), unbiased, weight, rl + p.i0, ql + p.i0});
      if (!p.diagonal()) {
        thrust::for_each(policy, first, first + p.w, tile_column_sums{kt + 0, p.h, rk + p.j0});
        thrust::for_each(policy, first, first + p.w, tile_column_sums{lt + 0, p.h, rl + p.j0});
      }
    });
    const double tk = thrust::reduce(policy, rk, rk + n, 0.0), tl = thrust::reduce(policy, rl, rl + n, 0.0);
    if (!(tk - tk == 0.0) || !(tl - tl == 0.0)) overflow();
    const double refk = thrust::reduce(policy, qk, qk + n, 0.0), refl = thrust::reduce(policy, ql, ql + n, 0.0);
    const centering_scale ck = centering_scales(n, tk, unbiased), cl = centering_scales(n, tl, unbiased);
    double kl = 0, kk = 0, ll = 0;
    for_upper_tiles(n, plan.tile, [&](const tile_place& p) {
      kernel_tile(x, p, fx, kt);
      kernel_tile(y, p, fy, lt);
      const tile_centered_products f{kt, lt, rk + p.i0, rk + p.j0, rl + p.i0, rl + p.j0, ck, cl, p.h, p.diagonal(), unbiased};
      const sums3 s = thrust::transform_reduce(policy, first, first + p.h * p.w, f, sums3(0.0, 0.0, 0.0), add3{});
      kl += thrust::get<0>(s);
      kk += thrust::get<1>(s);
      ll += thrust::get<2>(s);
    });
    return {kl, kk, ll, refk, refl};
  }
};

/// The middle ranks of a median rule over n samples, given the count of zero distances (rbf_engine::median).
struct rule_ranks {
  median_rule rule;
  std::uint64_t n;
  cka::detail::middle_ranks operator()(std::uint64_t zeros) const {
    if (rule == median_rule::nonzero && zeros == n * (n - 1) / 2) return {-1, -1};  // all coincide: 0
    return cka::detail::median_ranks(n, rule, zeros);
  }
};

/// σ² of kernel k for the rows t (the median of their distances for a median rule), as the exponent form.
template <class Engine>
rbf_exponent resolve_bandwidth(const Engine& e, const tile_rows& t, const rbf_parameters& k) {
  const double s2 = k.uses_median() ? k.bandwidth_from_median(e.median(t, rule_ranks{k.rule(), std::uint64_t(t.n)}))
                                    : k.sigma() * k.sigma();
  const cka::detail::rbf_exponent_form<double> f = k.exponent_for(s2);
  return rbf_exponent{f.scale, f.root, f.half, f.split};
}

/// Scratch doubles of rbf_cka_sums: Z of both (n·(d1 + d2)), their norms (2n), column statistics (2·max d),
/// the row sums and squares (4n).
inline std::int64_t rbf_cka_scratch(std::int64_t n, std::int64_t d1, std::int64_t d2) {
  return n * (d1 + d2) + 6 * n + 2 * std::max(d1, d2);
}

/// The centered sums of kernel CKA with RBF kernels kx on x and ky on y (checked views, same rows) on the
/// engine's context: rows centered (scaled by a power of two for a median rule, as the host scales them),
/// the bandwidths resolved, then passes A and B. scratch: rbf_cka_scratch(n, d1, d2) doubles.
template <class Engine, class T>
centered_totals rbf_cka_sums(const Engine& e, const strided<T>& x, const strided<T>& y, const rbf_parameters& kx,
                             const rbf_parameters& ky, bool unbiased, double* scratch) {
  const std::int64_t n = x.rows, d1 = x.cols, d2 = y.cols;
  double* zx = scratch;
  double* zy = zx + n * d1;
  double* nx = zy + n * d2;
  double* ny = nx + n;
  double* rows = ny + n;  // 4n
  double* stats = rows + 4 * n;
  e.center(x, strided<T>{x.ptr, 0, d1, 0, 0}, kx.uses_median() ? magnitude_scale(e.policy, x) : 1.0, zx, nx, stats);
  e.center(y, strided<T>{y.ptr, 0, d2, 0, 0}, ky.uses_median() ? magnitude_scale(e.policy, y) : 1.0, zy, ny, stats);
  const tile_rows tx{zx, nx, n, d1}, ty{zy, ny, n, d2};
  const rbf_exponent fx = resolve_bandwidth(e, tx, kx), fy = resolve_bandwidth(e, ty, ky);
  return e.cka_sums(tx, fx, ty, fy, unbiased, rows);
}

/// Scratch doubles of rbf_mmd2: Z of the pooled sample ((m+n)·d), its norms, its column statistics (2d).
inline std::int64_t rbf_mmd2_scratch(std::int64_t m, std::int64_t n, std::int64_t d) { return (m + n) * (d + 1) + 2 * d; }

/// Squared MMD with an RBF kernel between the rows of x (m) and y (n) (checked views, same width) on the
/// engine's context: the pooled sample centered with its means (scaled by a power of two for a median
/// rule, from the larger magnitude of the two, as the host scales it), the bandwidth from its (m+n)²
/// distances, then one pass of block sums. scratch: rbf_mmd2_scratch(m, n, d) doubles.
template <class Engine, class T>
double rbf_mmd2(const Engine& e, const strided<T>& x, const strided<T>& y, const rbf_parameters& k, estimator est,
                double* scratch) {
  const std::int64_t m = x.rows, n = y.rows, total = m + n, d = x.cols;
  double* z = scratch;
  double* norms = z + total * d;
  double* stats = norms + total;
  const double scale =
      k.uses_median() ? scale_for_top(std::max(magnitude_top(e.policy, x), magnitude_top(e.policy, y))) : 1.0;
  e.center(x, y, scale, z, norms, stats);
  const tile_rows t{z, norms, total, d};
  const rbf_exponent f = resolve_bandwidth(e, t, k);
  auto buffer = e.make(std::size_t(e.plan.tile * e.plan.tile));
  double* kt = buffer.get();
  double xx = 0, yy = 0, xy = 0, dx = 0, dy = 0;
  for_upper_tiles(total, e.plan.tile, [&](const tile_place& p) {
    e.kernel_tile(t, p, f, kt);
    const thrust::counting_iterator<std::int64_t> first(0);
    const sums5 s = thrust::transform_reduce(e.policy, first, first + p.h * p.w, tile_block_terms{kt, p.h, p.i0, p.j0, m, p.diagonal()},
                                             sums5(0.0, 0.0, 0.0, 0.0, 0.0), add5{});
    xx += thrust::get<0>(s);
    yy += thrust::get<1>(s);
    xy += thrust::get<2>(s);
    dx += thrust::get<3>(s);
    dy += thrust::get<4>(s);
  });
  const double all = xx + yy + xy;  // NaN where a distance overflowed
  if (!(all - all == 0.0)) e.overflow();
  return cka::detail::mmd2_from_sums<double>(xx, yy, xy / 2, dx, dy, m, n, est);
}

template <class Policy, class Gemm, class ToHost, class Make>
rbf_engine<Policy, Gemm, ToHost, Make> make_rbf_engine(const Policy& policy, Gemm gemm, ToHost to_host, Make make,
                                                       const char* fn, const rbf_plan& plan) {
  return {policy, gemm, to_host, make, fn, plan};
}

}  // namespace cka::device::detail
