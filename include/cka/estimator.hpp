#pragma once
/// \file estimator.hpp
/// The two HSIC estimators. A vocabulary header: it includes nothing of cka's, so private code may use it.

#include <cstddef>

namespace cka {

/// Which HSIC estimator to use.
/// - `biased`: HSIC = tr(K H L H) / (n−1)², H = I − 11ᵀ/n (Gretton et al. 2005; the convention of
///   Kornblith et al.'s reference code). Needs n ≥ 2.
/// - `unbiased`: Song et al. 2012 (JMLR 13), eq. 5, with K̃, L̃ the Grams with zeroed diagonals:
///   HSIC = [tr(K̃L̃) + 1ᵀK̃1·1ᵀL̃1/((n−1)(n−2)) − 2/(n−2)·1ᵀK̃L̃1] / (n(n−3)); equal to the inner product of
///   the U-centered Grams (Székely & Rizzo 2014) over n(n−3). Needs n ≥ 4. May be negative.
///   CKA with this estimator in all three HSIC terms is the "debiased CKA" of Kornblith et al. 2019.
enum class estimator { biased, unbiased };

/// Smallest sample count the estimator accepts: 2 (biased) or 4 (unbiased).
/// (std::ptrdiff_t is Eigen::Index; this header stays free of Eigen so that CUDA translation units can use it.)
constexpr std::ptrdiff_t min_samples(estimator est) { return est == estimator::biased ? 2 : 4; }

}  // namespace cka
