// Times cka on inputs written by bench/numpy_reference.py, so the NumPy and C++ timings see the same data.
// Usage: cka_time_inputs DIR N D1 D2 REPEATS
//   reads DIR/x.bin (N×D1) and DIR/y.bin (N×D2), raw little-endian float64 in C order, viewed in place
//   through a row-major Eigen::Map; prints "linear SECONDS VALUE" and "rbf SECONDS VALUE" (best of REPEATS).
#include <cka/cka.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

namespace {

std::vector<double> read_raw(const std::string& path, std::size_t count) {
  std::vector<double> v(count);
  std::ifstream in(path, std::ios::binary);
  if (!in.read(reinterpret_cast<char*>(v.data()), static_cast<std::streamsize>(count * sizeof(double)))) {
    std::fprintf(stderr, "cka_time_inputs: cannot read %zu doubles from %s\n", count, path.c_str());
    std::exit(2);
  }
  return v;
}

template <class F>
void time_best(const char* name, int repeats, F f) {
  double best = 1e300, value = 0;
  for (int r = 0; r < repeats; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    value = f();
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    best = s < best ? s : best;
  }
  std::printf("%s %.6f %.15f\n", name, best, value);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 6) {
    std::fprintf(stderr, "usage: cka_time_inputs DIR N D1 D2 REPEATS\n");
    return 2;
  }
  const std::string dir = argv[1];
  const long n = std::atol(argv[2]), d1 = std::atol(argv[3]), d2 = std::atol(argv[4]);
  const int repeats = std::atoi(argv[5]);
  using row_major = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  const std::vector<double> xs = read_raw(dir + "/x.bin", std::size_t(n * d1));
  const std::vector<double> ys = read_raw(dir + "/y.bin", std::size_t(n * d2));
  const Eigen::Map<const row_major> x(xs.data(), n, d1), y(ys.data(), n, d2);
  time_best("linear", repeats, [&] { return cka::linear_cka(x, y); });
  time_best("rbf", repeats, [&] { return cka::kernel_cka(x, y, cka::rbf_kernel::median(0.5)); });
  return 0;
}
