#pragma once
// The seam between the binding (nanobind, compiled by the C++ compiler) and the CUDA translation unit
// (cuda_losses.cu, compiled by nvcc, free of Python): the RCKA losses on device views, queued on a stream.

#include <cka/device/view.hpp>
#include <cka/rcka_options.hpp>

#include <cstdint>

namespace cka::python::cuda {

enum class loss { rcka, sample_relation, class_relation, feature };

/// Queues `which` on `stream` of CUDA device `device`: ∂loss/∂student into g, the value and the status
/// (skipped terms, or a cka::device::loss_* error code) into out; nothing waits. Shape errors throw
/// cka::invalid_argument at once; CUDA and cuBLAS failures cka::backend_error.
void queue_loss(loss which, int device, std::uintptr_t stream, device::matrix_view<const double> s,
                device::matrix_view<const double> t, device::matrix_view<double> g, device::loss_slot<double> out,
                const rcka::rcka_weights& w, const rcka::relation_options& o);
void queue_loss(loss which, int device, std::uintptr_t stream, device::matrix_view<const float> s,
                device::matrix_view<const float> t, device::matrix_view<float> g, device::loss_slot<float> out,
                const rcka::rcka_weights& w, const rcka::relation_options& o);

}  // namespace cka::python::cuda
