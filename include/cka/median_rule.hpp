#pragma once
/// \file median_rule.hpp
/// Which squared distances a median-rule RBF bandwidth is taken over. A vocabulary header: it includes
/// nothing of cka's, so private code may use it.

namespace cka {

/// Which squared distances a median bandwidth is taken over.
/// - `all_pairs`: all n² entries of the distance matrix, the n zeros of its diagonal included, with NumPy's
///   median (the mean of the two middle values when the count is even) — Kornblith et al.'s reference code.
/// - `off_diagonal`: the n(n−1)/2 distinct pairs i < j, same median definition.
/// - `nonzero`: the distinct pairs i < j at a positive distance only (duplicated rows left out), same
///   median definition — a convention some implementations use so that repeated samples, sparse layers
///   or one-hot labels still get a positive bandwidth; zero only when all rows coincide.
enum class median_rule { all_pairs, off_diagonal, nonzero };

}  // namespace cka
