#pragma once
/// \file npy_map.hpp
/// A memory-mapped .npy file (or an uncompressed member of an .npz archive) read in row chunks (POSIX: mmap), so that a layer of any size can be fed to
/// an accumulation state (state.hpp) in memory independent of its number of rows: the pages of rows
/// already read are released (madvise MADV_DONTNEED), so the resident set stays at about one chunk.

#include <cka/npy.hpp>

#include <Eigen/Core>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

namespace cka::npy {

/// One array of an .npz archive (a ZIP file, as np.savez writes it): its name without ".npy", where its
/// .npy bytes start in the archive and how many there are, and whether they are stored uncompressed.
struct npz_member {
  std::string name;
  std::size_t offset = 0, size = 0;
  bool stored = true;  ///< false for a compressed member (np.savez_compressed)
};

namespace detail {
inline std::uint64_t little(const unsigned char* p, int bytes) {
  std::uint64_t v = 0;
  for (int k = bytes - 1; k >= 0; --k) v = (v << 8) | p[k];
  return v;
}
/// Whether `length` bytes from `offset` lie inside an archive of `size` bytes (no unsigned wrap-around).
inline bool fits(std::uint64_t offset, std::uint64_t length, std::uint64_t size) {
  return length <= size && offset <= size - length;
}
}  // namespace detail

/// The members of the ZIP archive in bytes[0, size) (ZIP64 included), from its central directory, every
/// offset and size checked against `size`. Throws cka::npy::error for anything that is not a well-formed
/// archive, and for two members of one name (which of them a reader meant is unknowable).
inline std::vector<npz_member> npz_members(const unsigned char* bytes, std::size_t size) {
  using detail::fits;
  using detail::little;
  auto bad = [](const std::string& what) { detail::fail("not a valid .npz archive (" + what + ")"); };
  if (size < 22) bad("too short");
  // The end-of-central-directory record: the last 22 bytes, or earlier by a comment of up to 65535 bytes.
  std::size_t eocd = std::string::npos;
  for (std::size_t k = size - 22 + 1; k-- > 0 && size - k <= 22 + 65535;) {
    if (little(bytes + k, 4) == 0x06054b50) {
      eocd = k;
      break;
    }
  }
  if (eocd == std::string::npos) bad("no end of central directory");
  std::uint64_t count = little(bytes + eocd + 10, 2), dir_size = little(bytes + eocd + 12, 4), dir = little(bytes + eocd + 16, 4);
  if ((count == 0xFFFF || dir == 0xFFFFFFFF || dir_size == 0xFFFFFFFF) && eocd >= 20 &&
      little(bytes + eocd - 20, 4) == 0x07064b50) {  // ZIP64: the locator points at the ZIP64 record
    const std::uint64_t at = little(bytes + eocd - 20 + 8, 8);
    if (!fits(at, 56, size) || little(bytes + at, 4) != 0x06064b50) bad("bad ZIP64 record");
    count = little(bytes + at + 32, 8);
    dir_size = little(bytes + at + 40, 8);
    dir = little(bytes + at + 48, 8);
  }
  if (!fits(dir, dir_size, size)) bad("central directory out of range");
  std::vector<npz_member> out;
  std::set<std::string> names;
  std::size_t at = std::size_t(dir);
  for (std::uint64_t e = 0; e < count; ++e) {
    if (!fits(at, 46, size) || little(bytes + at, 4) != 0x02014b50) bad("bad central directory entry");
    const unsigned method = unsigned(little(bytes + at + 10, 2));
    std::uint64_t csize = little(bytes + at + 20, 4), usize = little(bytes + at + 24, 4), local = little(bytes + at + 42, 4);
    const std::size_t name_len = std::size_t(little(bytes + at + 28, 2)), extra_len = std::size_t(little(bytes + at + 30, 2)),
                      comment_len = std::size_t(little(bytes + at + 32, 2));
    if (!fits(at, 46 + name_len + extra_len + comment_len, size)) bad("central directory entry out of range");
    std::string name(reinterpret_cast<const char*>(bytes + at + 46), name_len);
    // ZIP64 sizes and offset, in that order, for the fields that hold 0xFFFFFFFF.
    for (std::size_t x = at + 46 + name_len; x + 4 <= at + 46 + name_len + extra_len;) {
      const std::uint64_t id = little(bytes + x, 2), len = little(bytes + x + 2, 2);
      if (len > at + 46 + name_len + extra_len - x - 4) bad("bad extra field");
      if (id == 0x0001) {
        std::size_t y = x + 4;
        auto take = [&](std::uint64_t& field) {
          if (field != 0xFFFFFFFF) return;
          if (y + 8 > x + 4 + len) bad("short ZIP64 field");
          field = little(bytes + y, 8);
          y += 8;
        };
        take(usize);
        take(csize);
        take(local);
      }
      x += 4 + std::size_t(len);
    }
    if (!fits(local, 30, size) || little(bytes + local, 4) != 0x04034b50) bad("bad local header for " + name);
    const std::uint64_t data = local + 30 + little(bytes + local + 26, 2) + little(bytes + local + 28, 2);
    if (!fits(data, csize, size)) bad(name + " out of range");
    if (name.size() > 4 && name.compare(name.size() - 4, 4, ".npy") == 0) name.resize(name.size() - 4);
    if (!names.insert(name).second) bad("two arrays are named '" + name + "'");
    out.push_back({name, std::size_t(data), std::size_t(csize), method == 0 && csize == usize});
    at += 46 + name_len + extra_len + comment_len;
  }
  return out;
}

/// A read-only mapping of one .npy file; see the file comment. Not copyable.
class mapped_file {
 public:
  /// Opens and maps `path` and reads its header. Throws cka::npy::error (message starting with the path)
  /// if it cannot be opened, is not a regular file, or is not a valid float16/32/64 .npy file.
  /// With `member`, `path` is an .npz archive and the array of that name (without ".npy") is read in
  /// place; it must be stored uncompressed (np.savez; np.savez_compressed archives are refused).
  explicit mapped_file(const std::string& path, const std::string& member = "") : path_(path) {
    map();
    try {
      if (member.empty()) {
        layout_ = describe(bytes_, size_);
      } else {
        const npz_member* found = nullptr;
        const std::vector<npz_member> members = npz_members(bytes_, size_);
        for (const auto& m : members)
          if (m.name == member) found = &m;
        if (!found) detail::fail("the archive has no array '" + member + "'");
        if (!found->stored) {
          detail::fail("'" + member + "' is compressed (np.savez_compressed); save with np.savez, or as .npy files");
        }
        layout_ = describe(bytes_ + found->offset, found->size);
        layout_.data_offset += found->offset;
      }
    } catch (const error& e) {
      close();
      throw error(path + (member.empty() ? "" : "/" + member) + ": " + e.what());
    }
  }

  /// The names of the arrays in the .npz archive at `path`, in archive order.
  static std::vector<std::string> archive_members(const std::string& path) {
    mapped_file probe;
    probe.path_ = path;
    probe.map();
    try {
      std::vector<std::string> names;
      for (const auto& m : npz_members(probe.bytes_, probe.size_)) names.push_back(m.name);
      return names;
    } catch (const error& e) {
      throw error(path + ": " + e.what());
    }
  }
  mapped_file(const mapped_file&) = delete;
  mapped_file& operator=(const mapped_file&) = delete;
  ~mapped_file() { close(); }

  const std::string& path() const { return path_; }
  /// Samples (shape[0]) and features (the product of the other dimensions).
  Eigen::Index rows() const { return Eigen::Index(layout_.rows); }
  Eigen::Index cols() const { return Eigen::Index(layout_.cols); }
  const npy::layout& layout() const { return layout_; }

  /// Rows r0 … r0+h−1 converted into dest (h × cols(), any floating Eigen matrix or block); then the pages
  /// holding rows before r0+h are released (C order). Reading is sequential by design: a row released
  /// is read again from the file if asked for.
  template <class Dest>
  void read(Eigen::Index r0, Eigen::Index h, Dest&& dest) {
    populate(r0, h);
    read_rows(bytes_, layout_, r0, h, dest);
    release(r0 + h);
  }

  /// Calls f with a read-only row-major Eigen view of rows r0 … r0+h−1: an Eigen::Map over the mapped
  /// bytes themselves (float or double, no copy) for native-endian C-order data, else a converted double
  /// copy. Then releases the pages of the rows read, as `read` does. This is how a file feeds a state
  /// without an intermediate buffer: `f.visit_rows(r0, h, [&](const auto& x) { state.add(x, …); })`.
  template <class F>
  void visit_rows(Eigen::Index r0, Eigen::Index h, F&& f) {
    populate(r0, h);
    if (!visit_native_rows(bytes_, layout_, r0, h, f)) {
      copy_.resize(h, cols());
      read_rows(bytes_, layout_, r0, h, copy_);
      f(Eigen::Map<const Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>(copy_.data(), h, cols()));
    }
    release(r0 + h);
  }

 private:
  mapped_file() = default;

  /// Opens and maps path_ whole. Throws cka::npy::error naming it.
  void map() {
    const std::string& path = path_;
    fd_ = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);  // a FIFO must not block the open
    if (fd_ < 0) throw error(path + ": cannot open the file");
    struct stat st {};
    if (::fstat(fd_, &st) != 0 || !S_ISREG(st.st_mode)) {
      close();
      throw error(path + ": not a regular file");
    }
    size_ = std::size_t(st.st_size);
    if (size_ == 0) {
      close();
      throw error(path + ": not an .npy file (empty)");
    }
    void* p = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd_, 0);
    if (p == MAP_FAILED) {
      close();
      throw error(path + ": cannot map the file");
    }
    bytes_ = static_cast<const unsigned char*>(p);
    ::madvise(p, size_, MADV_SEQUENTIAL);
  }

  /// Maps the pages of rows r0 … r0+h−1 in one call (MADV_POPULATE_READ, Linux ≥ 5.14; elsewhere the
  /// pages fault in one by one as they are read), which costs far less than a fault per page.
  void populate(Eigen::Index r0, Eigen::Index h) {
#ifdef MADV_POPULATE_READ
    if (layout_.fortran || h <= 0) return;
    const std::size_t page = std::size_t(::sysconf(_SC_PAGESIZE));
    const std::size_t row_bytes = std::size_t(layout_.cols) * layout_.item;
    const std::size_t begin = (layout_.data_offset + std::size_t(r0) * row_bytes) / page * page;
    const std::size_t end = std::min(size_, layout_.data_offset + std::size_t(r0 + h) * row_bytes);
    if (end > begin) ::madvise(const_cast<unsigned char*>(bytes_) + begin, end - begin, MADV_POPULATE_READ);
#else
    (void)r0;
    (void)h;
#endif
  }

  /// Releases the pages that hold only rows before `end_row` (C order; a Fortran-order chunk touches
  /// every page, so nothing is released early there).
  void release(Eigen::Index end_row) {
    if (layout_.fortran) return;
    const std::size_t page = std::size_t(::sysconf(_SC_PAGESIZE));
    const std::size_t end = layout_.data_offset + std::size_t(end_row) * std::size_t(layout_.cols) * layout_.item;
    const std::size_t upto = end / page * page;
    if (upto > released_) {
      ::madvise(const_cast<unsigned char*>(bytes_) + released_, upto - released_, MADV_DONTNEED);
      released_ = upto;
    }
  }

  void close() {
    if (bytes_) ::munmap(const_cast<unsigned char*>(bytes_), size_);
    if (fd_ >= 0) ::close(fd_);
    bytes_ = nullptr;
    fd_ = -1;
  }
  std::string path_;
  int fd_ = -1;
  const unsigned char* bytes_ = nullptr;
  std::size_t size_ = 0, released_ = 0;
  npy::layout layout_;
  Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor> copy_;
};

}  // namespace cka::npy
