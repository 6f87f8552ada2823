#pragma once
// Private: the library's large products — the symmetric rank-k update (?syrk) and the general product
// (?gemm) — through an external BLAS, for programs built with CKA_USE_BLAS and linked against one (CMake:
// cka::blas; README, docs/performance.md). OpenBLAS picks its kernels for the processor at run time, so a
// portable build gets the full product rate too. Without CKA_USE_BLAS this header declares nothing from a
// BLAS, both functions return false, and every product stays Eigen's (detail/products.hpp).

#include <Eigen/Core>

#include <algorithm>
#include <climits>
#include <type_traits>

#if defined(CKA_USE_BLAS)
#include <Eigen/src/misc/blas.h>  // the Fortran prototypes, as Eigen's own EIGEN_USE_BLAS declares them
#endif

namespace cka::detail {

/// Whether this build sends the products that blas_product and blas_lower_outer accept to a BLAS.
#if defined(CKA_USE_BLAS)
constexpr bool blas_products = true;
#else
constexpr bool blas_products = false;
#endif

/// The fewest multiply-adds a product must have to go to the BLAS: below this Eigen's products are as
/// fast or faster (OpenBLAS's call and thread start-up cost more than the product itself; measured on 2
/// Zen 5 cores, the class relation loss of 128 × 100 logits — a 100 × 100 × 128 product — took 0.53–0.97 ms
/// through OpenBLAS against 0.19 ms through Eigen, while 128 × 128 × 1000 took 0.35 ms against 0.81 ms).
constexpr double blas_min_work = 4194304.0;  // 2^22

/// Whether an Eigen expression type can be handed to a BLAS as it is: memory with strides (Matrix, Map,
/// Block, Transpose of those, Ref).
template <class M>
constexpr bool direct_access = (int(Eigen::internal::traits<M>::Flags) & Eigen::DirectAccessBit) != 0;

/// The types the BLAS takes, the one rule of both functions below: a build with one; a column-major
/// result; float or double alike throughout; every operand with direct access.
template <class Out, class... In>
constexpr bool blas_types = blas_products && direct_access<Out> && !bool(Out::IsRowMajor) &&
                            (std::is_same_v<typename Out::Scalar, double> || std::is_same_v<typename Out::Scalar, float>) &&
                            ((direct_access<In> && std::is_same_v<typename In::Scalar, typename Out::Scalar>) && ...);

/// An operand as a BLAS reads it: column-major storage, 'N', or row-major storage read as the transpose
/// of a column-major array, 'T', with its leading dimension; `ok` false where the BLAS cannot take it (an
/// inner stride, a size or stride beyond its int, a leading dimension below the stored rows), so that no
/// call is made that the BLAS would reject — its error handler prints and returns without computing.
struct blas_operand {
  char trans;
  int ld;
  bool ok;
};
template <class M>
blas_operand blas_operand_of(const M& m) {
  const Eigen::Index stored_rows = M::IsRowMajor ? m.cols() : m.rows(), ld = m.outerStride();
  const bool ok = m.innerStride() == 1 && ld <= Eigen::Index(INT_MAX) && ld >= std::max<Eigen::Index>(1, stored_rows) &&
                  m.rows() <= Eigen::Index(INT_MAX) && m.cols() <= Eigen::Index(INT_MAX);
  return {M::IsRowMajor ? 'T' : 'N', ok ? int(ld) : 0, ok};
}

/// out = L·R, or out += L·R when `accumulate` (out m×n column-major, L m×k, R k×n), in one ?gemm call —
/// 2mnk flops — where the build has a BLAS and the operands allow it (float or double alike, each a
/// direct-access operand with unit inner stride, transposes included, sizes within the BLAS's int, at
/// least blas_min_work multiply-adds). Returns whether it did; when it returns false it has done nothing.
/// Inside the library's OpenMP loops OpenBLAS runs it on the calling thread.
template <class O, class L, class R>
bool blas_product([[maybe_unused]] O& out, [[maybe_unused]] const L& lhs, [[maybe_unused]] const R& rhs,
                  [[maybe_unused]] bool accumulate = false) {
  if constexpr (blas_types<O, L, R>) {
#if defined(CKA_USE_BLAS)
    using S = typename O::Scalar;
    const blas_operand a = blas_operand_of(lhs), b = blas_operand_of(rhs), c = blas_operand_of(out);
    if (!a.ok || !b.ok || !c.ok || lhs.cols() != rhs.rows() || out.rows() != lhs.rows() || out.cols() != rhs.cols()) return false;
    const int m = int(out.rows()), n = int(out.cols()), k = int(lhs.cols());
    if (double(m) * double(n) * double(k) < blas_min_work) return false;
    const S one = 1, beta = accumulate ? 1 : 0;
    if constexpr (std::is_same_v<S, double>) {
      dgemm_(&a.trans, &b.trans, &m, &n, &k, &one, lhs.data(), &a.ld, rhs.data(), &b.ld, &beta, out.data(), &c.ld);
    } else {
      sgemm_(&a.trans, &b.trans, &m, &n, &k, &one, lhs.data(), &a.ld, rhs.data(), &b.ld, &beta, out.data(), &c.ld);
    }
    return true;
#endif
  }
  return false;
}

/// Lower triangle of g (p×p, column-major) += R·Rᵀ for R of size p×q in one ?syrk call — p²q flops —
/// where the build has a BLAS and the operands allow it: float or double alike, both with direct access
/// and unit inner stride, every size within the BLAS's int, at least blas_min_work multiply-adds (p²q).
/// Returns whether it did; when it returns false it has done nothing.
template <class G, class M>
bool blas_lower_outer([[maybe_unused]] G& g, [[maybe_unused]] const M& r) {
  if constexpr (blas_types<G, M>) {
#if defined(CKA_USE_BLAS)
    using S = typename G::Scalar;
    const blas_operand a = blas_operand_of(r), c = blas_operand_of(g);
    if (!a.ok || !c.ok || g.rows() != r.rows() || g.cols() != r.rows()) return false;
    if (double(r.rows()) * double(r.rows()) * double(r.cols()) < blas_min_work) return false;
    const char uplo = 'L';  // a row-major R is the column-major Rᵀ, and trans 'T' gives (Rᵀ)ᵀ·Rᵀ = R·Rᵀ
    const int n = int(r.rows()), k = int(r.cols());
    const S one = 1;
    if constexpr (std::is_same_v<S, double>) {
      dsyrk_(&uplo, &a.trans, &n, &k, &one, r.data(), &a.ld, &one, g.data(), &c.ld);
    } else {
      ssyrk_(&uplo, &a.trans, &n, &k, &one, r.data(), &a.ld, &one, g.data(), &c.ld);
    }
    return true;
#endif
  }
  return false;
}

}  // namespace cka::detail
