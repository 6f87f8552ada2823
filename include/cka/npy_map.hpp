#pragma once
/// \file npy_map.hpp
/// A memory-mapped .npy file read in row chunks (POSIX: mmap), so that a layer of any size can be fed to
/// an accumulation state (state.hpp) in memory independent of its number of rows: the pages of rows
/// already read are released (madvise MADV_DONTNEED), so the resident set stays at about one chunk.

#include <cka/npy.hpp>

#include <Eigen/Core>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

namespace cka::npy {

/// A read-only mapping of one .npy file; see the file comment. Not copyable.
class mapped_file {
 public:
  /// Opens and maps `path` and reads its header. Throws cka::npy::error (message starting with the path)
  /// if it cannot be opened, is not a regular file, or is not a valid float16/32/64 .npy file.
  explicit mapped_file(const std::string& path) : path_(path) {
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
    try {
      layout_ = describe(bytes_, size_);
    } catch (const error& e) {
      close();
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
