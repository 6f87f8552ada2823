// RCKA losses: value + analytic gradient next to the value alone (the forward), at classification sizes
// and for PCKA on 4×256×64×64 maps. Goal: value + gradient ≤ 3× the forward.
#include <cka/rcka.hpp>

#include "bench_data.hpp"

#include <benchmark/benchmark.h>

#include <cstdint>


namespace {

// The logits: float, as a framework hands them over.
cka::matrix<float> data(Eigen::Index n, Eigen::Index d, unsigned seed) { return bench::data<float>(n, d, seed); }

const cka::detail::relation_spec opts = cka::rcka::detail::spec<float>(cka::rcka::relation_options{});  // the defaults

// The options of a value-and-gradient benchmark: the defaults, or float products where `input` is 1.
cka::rcka::relation_options products(std::int64_t input) {
  cka::rcka::relation_options o;
  if (input != 0) o.products = cka::rcka::product_precision::input;
  return o;
}

// Logits are float, as a framework hands them over; the library computes in double (the last argument of
// a value-and-gradient benchmark 1: its large products in float, relation_options::products).
void BM_sample_forward(benchmark::State& state) {
  const auto s = data(state.range(0), state.range(1), 1), t = data(state.range(0), state.range(1), 2);
  for (auto _ : state)
    benchmark::DoNotOptimize(cka::detail::row_relation<double>("bench", s, t, opts, false).alignment);
}
void BM_sample_value_and_grad(benchmark::State& state) {
  const auto s = data(state.range(0), state.range(1), 1), t = data(state.range(0), state.range(1), 2);
  for (auto _ : state) benchmark::DoNotOptimize(cka::rcka::sample_relation_loss(s, t, products(state.range(2))).grad.data());
}
void BM_class_forward(benchmark::State& state) {
  const auto s = data(state.range(0), state.range(1), 1), t = data(state.range(0), state.range(1), 2);
  for (auto _ : state)
    benchmark::DoNotOptimize(
        cka::detail::row_relation<double>("bench", s.transpose(), t.transpose(), opts, false).alignment);
}
void BM_class_value_and_grad(benchmark::State& state) {
  const auto s = data(state.range(0), state.range(1), 1), t = data(state.range(0), state.range(1), 2);
  for (auto _ : state) benchmark::DoNotOptimize(cka::rcka::class_relation_loss(s, t, products(state.range(2))).grad.data());
}
void BM_rcka_value_and_grad(benchmark::State& state) {
  const auto s = data(state.range(0), state.range(1), 1), t = data(state.range(0), state.range(1), 2);
  for (auto _ : state) benchmark::DoNotOptimize(cka::rcka::rcka_loss(s, t, {}, products(state.range(2))).grad.data());
}
void BM_patch_forward(benchmark::State& state) {
  const cka::rcka::map_shape shape{4, 256, 64, 64};
  const auto s = data(4 * 256 * 64 * 64, 1, 3), t = data(4 * 256 * 64 * 64, 1, 4);
  cka::rcka::detail::value_only forward;
  for (auto _ : state)
    benchmark::DoNotOptimize(cka::rcka::detail::patch_relation(s, t, forward, shape, 16, 16, cka::rcka::relation_options{}).value);
}
void BM_patch_value_and_grad(benchmark::State& state) {
  const cka::rcka::map_shape shape{4, 256, 64, 64};
  const auto s = data(4 * 256 * 64 * 64, 1, 3), t = data(4 * 256 * 64 * 64, 1, 4);
  for (auto _ : state) benchmark::DoNotOptimize(cka::rcka::patch_loss(s, t, shape, 16, 16, products(state.range(0))).grad.data());
}

}  // namespace

BENCHMARK(BM_sample_forward)->Args({128, 100})->Args({256, 1000})->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK(BM_sample_value_and_grad)->Args({128, 100, 0})->Args({256, 1000, 0})->Args({256, 1000, 1})->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK(BM_class_forward)->Args({128, 100})->Args({256, 1000})->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK(BM_class_value_and_grad)->Args({128, 100, 0})->Args({256, 1000, 0})->Args({256, 1000, 1})->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK(BM_rcka_value_and_grad)->Args({128, 100, 0})->Args({256, 1000, 0})->Args({256, 1000, 1})->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK(BM_patch_forward)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_patch_value_and_grad)->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond)->UseRealTime();

BENCHMARK_MAIN();
