// The .npy reader: round trips, hand-built files in every supported layout, and every malformed case.
#include "support.hpp"

#include <cka/npy.hpp>
#include <cka/npy_map.hpp>

#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

using Catch::Matchers::Contains;

namespace {

// Bytes of a .npy file with the given header dict and raw data (version 1 or 2).
std::vector<unsigned char> npy_bytes(const std::string& dict, const std::vector<unsigned char>& data, int version = 1) {
  std::string header = dict;
  const std::size_t prefix = version == 1 ? 10 : 12;
  header.append((64 - (prefix + header.size() + 1) % 64) % 64, ' ');
  header.push_back('\n');
  std::vector<unsigned char> out = {0x93, 'N', 'U', 'M', 'P', 'Y', static_cast<unsigned char>(version), 0};
  const std::size_t n = header.size();
  out.push_back(static_cast<unsigned char>(n & 0xff));
  out.push_back(static_cast<unsigned char>((n >> 8) & 0xff));
  if (version != 1) {
    out.push_back(static_cast<unsigned char>((n >> 16) & 0xff));
    out.push_back(static_cast<unsigned char>((n >> 24) & 0xff));
  }
  out.insert(out.end(), header.begin(), header.end());
  out.insert(out.end(), data.begin(), data.end());
  return out;
}

template <class F>
std::vector<unsigned char> raw(const std::vector<F>& values, bool big_endian = false) {
  std::vector<unsigned char> out;
  for (F v : values) {
    unsigned char b[sizeof(F)];
    std::memcpy(b, &v, sizeof(F));
    for (std::size_t k = 0; k < sizeof(F); ++k) out.push_back(big_endian ? b[sizeof(F) - 1 - k] : b[k]);
  }
  return out;
}

void put(std::vector<unsigned char>& out, std::uint64_t v, int bytes) {
  for (int k = 0; k < bytes; ++k) out.push_back(static_cast<unsigned char>((v >> (8 * k)) & 0xff));
}

// A ZIP archive of stored (uncompressed) members, as np.savez writes it (CRCs left zero: the reader does not
// check them).
std::vector<unsigned char> zip_bytes(const std::vector<std::pair<std::string, std::vector<unsigned char>>>& members) {
  std::vector<unsigned char> out, dir;
  for (const auto& [name, data] : members) {
    const std::size_t local = out.size();
    put(out, 0x04034b50, 4);
    put(out, 20, 2), put(out, 0, 2), put(out, 0, 2), put(out, 0, 4), put(out, 0, 4);
    put(out, data.size(), 4), put(out, data.size(), 4), put(out, name.size(), 2), put(out, 0, 2);
    out.insert(out.end(), name.begin(), name.end());
    out.insert(out.end(), data.begin(), data.end());
    put(dir, 0x02014b50, 4);
    put(dir, 20, 2), put(dir, 20, 2), put(dir, 0, 2), put(dir, 0, 2), put(dir, 0, 4), put(dir, 0, 4);
    put(dir, data.size(), 4), put(dir, data.size(), 4), put(dir, name.size(), 2), put(dir, 0, 2), put(dir, 0, 2);
    put(dir, 0, 2), put(dir, 0, 2), put(dir, 0, 4), put(dir, local, 4);
    dir.insert(dir.end(), name.begin(), name.end());
  }
  const std::size_t at = out.size();
  out.insert(out.end(), dir.begin(), dir.end());
  put(out, 0x06054b50, 4);
  put(out, 0, 2), put(out, 0, 2), put(out, members.size(), 2), put(out, members.size(), 2);
  put(out, dir.size(), 4), put(out, at, 4), put(out, 0, 2);
  return out;
}

cka::npy::array parse(const std::vector<unsigned char>& b) { return cka::npy::parse(b.data(), b.size()); }

}  // namespace

TEST_CASE("npy round trip through save and load", "[npy]") {
  const auto m = test::normal<double>(7, 5, 1);
  const std::string path = "cka_test_roundtrip.npy";
  cka::npy::save(path, m);
  const auto a = cka::npy::load(path);
  CHECK(a.shape == std::vector<std::int64_t>{7, 5});
  CHECK(a.values == m);
  CHECK_FALSE(a.float32);
  cka::npy::save(path, m, true);
  const auto f = cka::npy::load(path);
  CHECK(f.float32);
  CHECK(f.values == m.cast<float>().cast<double>());
  std::remove(path.c_str());
}

TEST_CASE("npy layouts: endianness, Fortran order, 3-D, version 2", "[npy]") {
  // A (2, 3, 2) array with values 0..11 in C order; Fortran order stores the same array transposed in memory.
  std::vector<double> c_order(12), f_order(12);
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 3; ++j)
      for (int k = 0; k < 2; ++k) {
        const double v = i * 6 + j * 2 + k;
        c_order[i * 6 + j * 2 + k] = v;
        f_order[i + 2 * (j + 3 * k)] = v;
      }
  test::mat<double> expected(2, 6);
  for (int i = 0; i < 12; ++i) expected(i / 6, i % 6) = i;
  const std::string shape = "'shape': (2, 3, 2), }";
  CHECK(parse(npy_bytes("{'descr': '<f8', 'fortran_order': False, " + shape, raw(c_order))).values == expected);
  CHECK(parse(npy_bytes("{'descr': '<f8', 'fortran_order': True, " + shape, raw(f_order))).values == expected);
  CHECK(parse(npy_bytes("{'descr': '>f8', 'fortran_order': False, " + shape, raw(c_order, true))).values == expected);
  std::vector<float> c32(c_order.begin(), c_order.end());
  CHECK(parse(npy_bytes("{'descr': '>f4', 'fortran_order': False, " + shape, raw(c32, true))).values == expected);
  CHECK(parse(npy_bytes("{'descr': '<f8', 'fortran_order': False, " + shape, raw(c_order), 2)).values == expected);
  // 1-D (n,) is n samples of one feature; keys in another order and double quotes are fine.
  const auto one = parse(npy_bytes("{\"shape\": (4,), \"fortran_order\": False, \"descr\": \"<f8\"}", raw(std::vector<double>{1, 2, 3, 4})));
  CHECK(one.values.rows() == 4);
  CHECK(one.values.cols() == 1);
}

TEST_CASE("npy malformed and unsupported files", "[npy][errors]") {
  const auto data = raw(std::vector<double>(6, 1.0));
  const std::string ok = "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), }";
  CHECK_NOTHROW(parse(npy_bytes(ok, data)));
  CHECK_THROWS_WITH(parse({'P', 'K', 3, 4, 0, 0, 0, 0, 0, 0, 0}), Contains("not an .npy file"));
  auto v9 = npy_bytes(ok, data);
  v9[6] = 9;
  CHECK_THROWS_WITH(parse(v9), Contains("version 9"));
  auto cut_header = npy_bytes(ok, data);
  cut_header.resize(30);
  CHECK_THROWS_WITH(parse(cut_header), Contains("truncated header"));
  auto cut_data = npy_bytes(ok, data);
  cut_data.resize(cut_data.size() - 5);
  CHECK_THROWS_WITH(parse(cut_data), Contains("truncated data"));
  for (const char* bad : {"{'descr': '<f8', 'fortran_order': Maybe, 'shape': (2, 3), }",
                          "{'descr': '<f8', 'fortran_order': False, 'shape': [2, 3], }",
                          "{'descr': '<f8', 'fortran_order': False, 'shape': (2, x), }",
                          "{'descr': '<f8', 'fortran_order': False }", "not a dict at all",
                          "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), 'extra': 1}",
                          "{'descr: '<f8'"}) {
    CAPTURE(bad);
    CHECK_THROWS_WITH(parse(npy_bytes(bad, data)), Contains("corrupt header"));
  }
  for (const char* dtype : {"<c16", "|O", "<i4", "|u1", "|f8", "<f16", "<f1"}) {
    CAPTURE(dtype);
    CHECK_THROWS_WITH(parse(npy_bytes(std::string("{'descr': '") + dtype + "', 'fortran_order': False, 'shape': (2, 3), }", data)),
                      Contains("unsupported dtype"));
  }
  CHECK_THROWS_WITH(parse(npy_bytes("{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (2,), }", data)),
                    Contains("unsupported dtype"));
  // A shape that would need petabytes is rejected from the header alone, before any allocation.
  CHECK_THROWS_WITH(parse(npy_bytes("{'descr': '<f8', 'fortran_order': False, 'shape': (1000000000, 1000000), }", data)),
                    Contains("truncated data"));
  CHECK_THROWS_WITH(parse(npy_bytes("{'descr': '<f8', 'fortran_order': False, 'shape': (99999999999, 99999999999, 99999), }", data)),
                    Contains("overflows"));
  CHECK_THROWS_WITH(parse(npy_bytes("{'descr': '<f8', 'fortran_order': False, 'shape': (), }", data)),
                    Contains("0-dimensional"));
  CHECK_THROWS_WITH(cka::npy::load("no/such/file.npy"), Contains("no/such/file.npy") && Contains("cannot open"));
  // Zero features with a huge claimed row count, in every layout: an empty result at once, no loop over
  // the claimed rows (the value-by-value path once looped 1e8 times here; found by the fuzzer).
  for (const char* descr : {"<f8", ">f8", "<f4"})
    for (const char* fortran : {"False", "True"}) {
      const auto empty = parse(npy_bytes(std::string("{'descr': '") + descr + "', 'fortran_order': " + fortran +
                                             ", 'shape': (100000000, 0), }",
                                         {}));
      CHECK(empty.values.rows() == 100000000);
      CHECK(empty.values.cols() == 0);
    }
}

TEST_CASE("npy float16: every class of binary16 value, both byte orders", "[npy][float16]") {
  // Bit patterns with their exact values: ±1, 0.5, the largest finite half, the smallest subnormal, a
  // subnormal with several bits, negative zero.
  const std::vector<std::uint16_t> bits = {0x3C00, 0xC000, 0x3800, 0x7BFF, 0x0001, 0x03FF, 0x8000, 0x3555};
  const std::vector<double> exact = {1.0, -2.0, 0.5, 65504.0, std::ldexp(1.0, -24), 1023 * std::ldexp(1.0, -24), -0.0,
                                     1365.0 / 4096.0};  // 0x3555: (1 + 341/1024) · 2^(13 − 15)
  // Infinity and NaN come through as such (the functions that read the values refuse them, by name).
  const auto special = parse(npy_bytes("{'descr': '<f2', 'fortran_order': False, 'shape': (1, 2), }",
                                       raw(std::vector<std::uint16_t>{0x7C00, 0x7E00}, false)));
  CHECK(std::isinf(special.values(0, 0)));
  CHECK(std::isnan(special.values(0, 1)));
  for (bool big : {false, true}) {
    const auto a = parse(npy_bytes(std::string("{'descr': '") + (big ? ">" : "<") + "f2', 'fortran_order': False, 'shape': (4, 2), }",
                                   raw(bits, big)));
    REQUIRE(a.values.rows() == 4);
    for (std::size_t k = 0; k < bits.size(); ++k) CHECK(a.values(Eigen::Index(k / 2), Eigen::Index(k % 2)) == exact[k]);
  }
}

TEST_CASE("npy index arrays: every integer width and order, floats, 2-D and out-of-range refused", "[npy][indices]") {
  auto write = [](const std::string& path, const std::vector<unsigned char>& bytes) {
    std::FILE* f = std::fopen(path.c_str(), "wb");
    REQUIRE(f != nullptr);
    std::fwrite(bytes.data(), 1, bytes.size(), f);
    std::fclose(f);
    return path;
  };
  const std::string p = "cka_test_indices.npy";
  const std::string one_d = "', 'fortran_order': False, 'shape': (3,), }";
  write(p, npy_bytes("{'descr': '<i8" + one_d, raw(std::vector<std::int64_t>{4, 0, 7})));
  CHECK(cka::npy::load_indices(p) == std::vector<std::int64_t>{4, 0, 7});
  write(p, npy_bytes("{'descr': '>i4" + one_d, raw(std::vector<std::int32_t>{-2, 65536, 3}, true)));
  CHECK(cka::npy::load_indices(p) == std::vector<std::int64_t>{-2, 65536, 3});
  write(p, npy_bytes("{'descr': '|i1" + one_d, raw(std::vector<std::int8_t>{-1, 127, 5})));
  CHECK(cka::npy::load_indices(p) == std::vector<std::int64_t>{-1, 127, 5});
  write(p, npy_bytes("{'descr': '<u2" + one_d, raw(std::vector<std::uint16_t>{65535, 1, 2})));
  CHECK(cka::npy::load_indices(p) == std::vector<std::int64_t>{65535, 1, 2});
  write(p, npy_bytes("{'descr': '<u8" + one_d, raw(std::vector<std::uint64_t>{1, ~std::uint64_t(0), 2})));
  CHECK_THROWS_WITH(cka::npy::load_indices(p), Contains("cka_test_indices.npy") && Contains("int64 range"));
  write(p, npy_bytes("{'descr': '<f8" + one_d, raw(std::vector<double>{1, 2, 3})));
  CHECK_THROWS_WITH(cka::npy::load_indices(p), Contains("must be integers"));
  write(p, npy_bytes("{'descr': '<i8', 'fortran_order': False, 'shape': (3, 1), }", raw(std::vector<std::int64_t>{1, 2, 3})));
  CHECK_THROWS_WITH(cka::npy::load_indices(p), Contains("1-D"));
  // The value readers still refuse integers.
  CHECK_THROWS_WITH(cka::npy::load(p), Contains("unsupported dtype"));
  std::remove(p.c_str());
}

TEST_CASE("npz directories: members in range, short archives, duplicate names", "[npy][npz]") {
  const std::string dict = "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), }";
  const auto a = npy_bytes(dict, raw(std::vector<double>(6, 1.0)));
  const auto archive = zip_bytes({{"first.npy", a}, {"second.npy", a}});
  const auto members = cka::npy::npz_members(archive.data(), archive.size());
  REQUIRE(members.size() == 2);
  CHECK(members[1].name == "second");
  CHECK(parse(std::vector<unsigned char>(archive.begin() + std::ptrdiff_t(members[1].offset),
                                         archive.begin() + std::ptrdiff_t(members[1].offset + members[1].size)))
            .values.isOnes());
  auto refused = [](const std::vector<unsigned char>& b) { return cka::npy::npz_members(b.data(), b.size()); };
  // Issue 25, item 8: two members of one name (np.savez cannot write it; zipfile can) are refused.
  CHECK_THROWS_WITH(refused(zip_bytes({{"first.npy", a}, {"first.npy", a}})), Contains("two arrays are named 'first'"));
  // Issue 25, item 1: an archive shorter than a ZIP64 record whose locator points at offset 0 (the reader
  // computed size − 56 unsigned and read past the end; under ASan a heap overflow).
  std::vector<unsigned char> tiny;
  put(tiny, 0x07064b50, 4), put(tiny, 0, 4), put(tiny, 0, 8), put(tiny, 1, 4);
  put(tiny, 0x06054b50, 4), put(tiny, 0, 2), put(tiny, 0, 2), put(tiny, 0xFFFF, 2), put(tiny, 0xFFFF, 2);
  put(tiny, 0xFFFFFFFF, 4), put(tiny, 0xFFFFFFFF, 4), put(tiny, 0, 2);
  REQUIRE(tiny.size() < 56);
  CHECK_THROWS_WITH(refused(tiny), Contains("bad ZIP64 record"));
  // Every truncation of a valid archive is refused or read within its bytes (ASan checks the latter).
  for (std::size_t cut = 0; cut < archive.size(); ++cut) {
    CAPTURE(cut);
    const std::vector<unsigned char> head(archive.begin(), archive.begin() + std::ptrdiff_t(cut));
    CHECK_THROWS_AS(refused(head), cka::npy::error);
  }
}
