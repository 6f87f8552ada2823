#pragma once
// Private: kernel matrices as the passes read them, one tile at a time — the RBF kernel (bandwidth resolved
// from the exact median of the same distance tiles) and the inner-product and generic kernels — computed
// in every pass or stored once.

#include <cka/detail/kernel_id.hpp>
#include <cka/detail/rbf_map.hpp>
#include <cka/detail/scalar.hpp>
#include <cka/detail/team.hpp>
#include <cka/detail/tiles/grid.hpp>
#include <cka/detail/tiles/median.hpp>
#include <cka/detail/tiles/rows.hpp>
#include <cka/detail/tiles/storage.hpp>
#include <cka/rbf_parameters.hpp>

#include <Eigen/Core>

#include <algorithm>
#include <optional>
#include <type_traits>

namespace cka::detail {

/// A kernel matrix as the passes read it: its grid, and tile(ti, tj, scratch), the kernel values of an upper
/// tile (stored, or computed into scratch). Layers of different kernels meet in one pass through this base.
class tile_layer {
 public:
  virtual ~tile_layer() = default;
  virtual const tile_grid& grid() const = 0;
  virtual const double* tile(Eigen::Index ti, Eigen::Index tj, matrix<double>& scratch) const = 0;

 protected:
  tile_layer() = default;
  tile_layer(const tile_layer&) = default;
  tile_layer& operator=(const tile_layer&) = default;
  tile_layer(tile_layer&&) = default;
  tile_layer& operator=(tile_layer&&) = default;
};

/// One representation's RBF kernel matrix for the passes, with its bandwidth resolved: computed tile by
/// tile from the centered features in every pass (memory 8·n·d bytes), or computed once and stored
/// (packed_tiles, 4·n² bytes). A median bandwidth comes from the exact median of the same distance tiles
/// (tiled_median), stored or computed.
class rbf_tiles final : public tile_layer {
 public:
  /// On a team (`members`), every member passes the same x and holds (stores) only its share of the tiles;
  /// a member with other data than rank 0's makes every member throw cka::invalid_argument.
  template <class V>
  rbf_tiles(const char* fn, const V& x, const rbf_parameters& k, bool store, int threads, tile_meter* meter = nullptr,
            const team* members = nullptr)
      : rbf_tiles(prepared{}, fn, [&] { return tiled_rows_of<double>(x, k.uses_median() ? safe_scale<double>(x) : 1.0); },
                  k, store, threads, meter, members) {}

  /// The pooled sample [X; Y] (MMD), without a stacked copy of it.
  template <class VX, class VY>
  rbf_tiles(const char* fn, const VX& x, const VY& y, const rbf_parameters& k, bool store, int threads,
            tile_meter* meter = nullptr, const team* members = nullptr)
      : rbf_tiles(prepared{}, fn, [&] {
          const double top = std::max(x.size() ? double(x.cwiseAbs().maxCoeff()) : 0.0,
                                      y.size() ? double(y.cwiseAbs().maxCoeff()) : 0.0);
          return tiled_rows_of<double>(x, y, k.uses_median() ? safe_scale_for<double>(top) : 1.0);
        }, k, store, threads, meter, members) {}

  /// Bytes the stored route holds for n samples (on each of `members` members).
  static double stored_bytes(Eigen::Index n, int members = 1) { return packed_tiles::bytes(n, members); }
  /// Tile passes the constructor makes (for a meter): the stored distances, or the median's counting pass.
  static std::size_t planned_passes(const rbf_parameters& k, bool store) { return store || k.uses_median() ? 1 : 0; }
  bool stored() const { return stored_.has_value(); }

  const tile_grid& grid() const override { return grid_; }
  double bandwidth_squared() const { return s2_; }
  /// Kernel values of tile (ti, tj): stored, or computed into scratch.
  const double* tile(Eigen::Index ti, Eigen::Index tj, matrix<double>& scratch) const override {
    if (stored_) return stored_->tile(ti, tj);
    tile_distances(fn_, rows_, ti, tj, scratch);
    apply_rbf(kernel_, scratch, s2_);
    return scratch.data();
  }

 private:
  // The common constructor: rows from make_rows(), then the stored distances, the bandwidth, the kernel map.
  struct prepared {};
  template <class Make>
  rbf_tiles(prepared, const char* fn, Make&& make_rows, const rbf_parameters& k, bool store, int threads, tile_meter* meter,
            const team* members)
      : fn_(fn), kernel_(k), share_(tile_share::of(members)) {
    together(members, [&] { rows_ = make_rows(); });
    if (share_.size > 1) require_same_rows(fn_, rows_, members);
    const tile_grid g{rows_.rows()};
    if (store) {
      together(members, [&] { stored_.emplace(stored_distances(fn_, rows_, threads, meter, share_)); });
    }
    if (k.uses_median()) {
      s2_ = k.bandwidth_from_median(stored_ ? tiled_median(fn_, *stored_, k.rule(), threads, nullptr, members,
                                                           share_.size > 1 ? &rows_ : nullptr)
                                            : tiled_median(fn_, rows_, k.rule(), threads, meter, members));
    } else {
      s2_ = k.sigma() * k.sigma();
    }
    if (store) {
      for_owned_tiles(g, threads, share_, nullptr, [&](int, Eigen::Index ti, Eigen::Index tj) {
        Eigen::Map<matrix<double>> t(stored_->tile(ti, tj), g.size(ti), g.size(tj));
        apply_rbf(kernel_, t, s2_);
      });
      rows_ = tiled_rows<double>{};  // the features are not needed again
    }
    grid_ = g;
  }

  const char* fn_;
  rbf_parameters kernel_;
  tile_share share_;
  tiled_rows<double> rows_;
  std::optional<packed_tiles> stored_;
  tile_grid grid_;
  double s2_ = 0;
};

/// Kernels whose values value_tiles forms: linear_kernel, polynomial_kernel, and kernels of the generic form
/// (k(x, y) called per pair). Kernels of another form map a whole n×n matrix (kernels.hpp) and keep it.
template <class K>
constexpr bool has_value_tiles = is_builtin<K>(builtin_kernel::linear) || is_builtin<K>(builtin_kernel::polynomial) ||
                                 kernel_traits<K>::form == kernel_form::generic;

/// One representation's kernel matrix for the passes, its tiles formed from the rows R:
/// - inner-product kernels: the tile R_I R_Jᵀ (one GEMM of h·w·d multiply-adds) mapped to kernel values. R
///   is X column-centered for the linear kernel (its centered Gram is the same, and an offset costs no
///   digits; one representation's rows are also scaled by a power of two where their magnitudes are
///   extreme, since its CKA does not depend on its scale) and X as given for the polynomial kernel, as the
///   device engine takes them;
/// - generic kernels: k(r_i, r_j) for each pair of the tile, R = X as given (a diagonal tile's pairs i ≤ j,
///   mirrored, as gram calls them).
/// The tiles are computed in every pass (memory 8·n·d bytes) or once and stored (4·n² bytes). On a team,
/// every member passes the same x and holds only its share, as for rbf_tiles. Throws cka::domain_error
/// (overflow) for a kernel value that is not finite in double; an exception of the kernel passes through.
template <class Kernel>
class value_tiles final : public tile_layer {
 public:
  static_assert(has_value_tiles<Kernel>, "cka: value_tiles takes an inner-product or a generic kernel");

  template <class V>
  value_tiles(const char* fn, const V& x, const Kernel& k, bool store, int threads, tile_meter* meter = nullptr,
                const team* members = nullptr)
      : value_tiles(prepared{}, fn, [&] {
          return tiled_rows_of<double>(x, is_builtin<Kernel>(builtin_kernel::linear) ? safe_scale<double>(x) : 1.0, form());
        }, k, store, threads, meter, members) {}

  /// The pooled sample [X; Y] (MMD), without a stacked copy of it.
  template <class VX, class VY>
  value_tiles(const char* fn, const VX& x, const VY& y, const Kernel& k, bool store, int threads,
                tile_meter* meter = nullptr, const team* members = nullptr)
      : value_tiles(prepared{}, fn, [&] { return tiled_rows_of<double>(x, y, 1.0, form()); }, k, store, threads,
                      meter, members) {}

  /// Tile passes the constructor makes (for a meter): the stored tiles.
  static std::size_t planned_passes(const Kernel&, bool store) { return store ? 1 : 0; }

  const tile_grid& grid() const override { return grid_; }
  const double* tile(Eigen::Index ti, Eigen::Index tj, matrix<double>& scratch) const override {
    if (stored_) return stored_->tile(ti, tj);
    scratch.resize(grid_.size(ti), grid_.size(tj));
    values(ti, tj, scratch.data());
    return scratch.data();
  }

 private:
  static constexpr row_form form() {
    return is_builtin<Kernel>(builtin_kernel::linear) ? row_form::centered : row_form::raw;
  }

  struct prepared {};
  template <class Make>
  value_tiles(prepared, const char* fn, Make&& make_rows, const Kernel& k, bool store, int threads,
                tile_meter* meter, const team* members)
      : fn_(fn), kernel_(k), grid_{0} {
    if constexpr (is_builtin<Kernel>(builtin_kernel::polynomial)) k.require_valid();
    const tile_share share = tile_share::of(members);
    together(members, [&] { rows_ = make_rows(); });
    if (share.size > 1) require_same_rows(fn_, rows_, members);
    grid_ = tile_grid{rows_.rows()};
    if (!store) return;
    together(members, [&] {
      stored_.emplace(grid_.n, share);
      for_owned_tiles(grid_, threads, share, meter,
                      [&](int, Eigen::Index ti, Eigen::Index tj) { values(ti, tj, stored_->tile(ti, tj)); });
    });
    rows_ = tiled_rows<double>{};  // the features are not needed again
  }

  // The kernel values of tile (ti, tj) into out (h×w, column-major).
  void values(Eigen::Index ti, Eigen::Index tj, double* out) const {
    const Eigen::Index i0 = grid_.start(ti), j0 = grid_.start(tj), h = grid_.size(ti), w = grid_.size(tj);
    Eigen::Map<matrix<double>> t(out, h, w);
    if constexpr (kernel_traits<Kernel>::form == kernel_form::generic) {
      const bool diagonal = ti == tj;
      for (Eigen::Index j = 0; j < w; ++j)
        for (Eigen::Index i = 0; i < (diagonal ? j + 1 : h); ++i) {
          t(i, j) = double(kernel_(rows_.xc.row(i0 + i), rows_.xc.row(j0 + j)));
        }
      if (diagonal)
        for (Eigen::Index j = 0; j < w; ++j)
          for (Eigen::Index i = j + 1; i < h; ++i) t(i, j) = t(j, i);
    } else {
      product_into(t, rows_.xc.middleRows(i0, h), rows_.xc.middleRows(j0, w).transpose());
      if constexpr (is_builtin<Kernel>(builtin_kernel::polynomial)) {
        t = t.unaryExpr([this](double p) { return kernel_.from_inner_product(p); });
      }
    }
    if (!t.allFinite()) fail_kernel_overflow(fn_);
  }

  const char* fn_;
  Kernel kernel_;
  tiled_rows<double> rows_;
  std::optional<packed_tiles> stored_;
  tile_grid grid_;
};

/// Whether the tile engine evaluates kernel type K: the RBF, inner-product and generic kernels.
template <class K>
constexpr bool in_tile_engine = is_builtin<K>(builtin_kernel::rbf) || has_value_tiles<K>;

/// The tile layer type of kernel K: rbf_tiles or value_tiles<K>.
template <class K>
using tiles_for = std::conditional_t<is_builtin<K>(builtin_kernel::rbf), rbf_tiles, value_tiles<K>>;

/// The tile layer of x under kernel k; store, meter and members as rbf_tiles and value_tiles take them.
template <class V, class K>
tiles_for<K> tiles_of(const char* fn, const V& x, const K& k, bool store, int threads, const team* members) {
  return tiles_for<K>(fn, x, k, store, threads, nullptr, members);
}
/// The tile layer of the pooled sample [X; Y] under kernel k.
template <class VX, class VY, class K>
tiles_for<K> tiles_of(const char* fn, const VX& x, const VY& y, const K& k, bool store, int threads,
                      const team* members) {
  return tiles_for<K>(fn, x, y, k, store, threads, nullptr, members);
}

}  // namespace cka::detail
