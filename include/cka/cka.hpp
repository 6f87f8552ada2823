#pragma once
/// \file cka.hpp
/// Umbrella header of the core: kernels, Gram matrices, centering, HSIC, CKA, the layer matrix
/// (similarity_matrix) and its heatmap, MMD and the significance tests over Eigen.
///
/// Conventions: rows are samples, columns are features. Every function takes any dense Eigen expression
/// (viewed without a copy when it is a matrix, Map or block with unit inner stride), returns the input's
/// scalar type, and accumulates float input in double. See docs/ for the mathematics.

#include <cka/centering.hpp>
#include <cka/errors.hpp>
#include <cka/gram.hpp>
#include <cka/heatmap.hpp>
#include <cka/hsic.hpp>
#include <cka/inference.hpp>
#include <cka/interrupt.hpp>
#include <cka/kernels.hpp>
#include <cka/mmd.hpp>
#include <cka/similarity.hpp>
#include <cka/similarity_matrix.hpp>
#include <cka/version.hpp>
