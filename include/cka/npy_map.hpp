#pragma once
/// \file npy_map.hpp
/// A memory-mapped .npy file read in row chunks (POSIX: mmap), so that a layer of any size can be fed to
/// an accumulation state (state.hpp) in memory independent of its number of rows: the pages of rows
/// already read are released (madvise MADV_DONTNEED), so the resident set stays at about one chunk.

#include <cka/npy.hpp>

#include <Eigen/Core>

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
  /// if it cannot be opened, is not a regular file, or is not a valid float32/float64 .npy file.
  explicit mapped_file(const std::string& path) : path_(path) {
    fd_ = ::open(path.c_str(), O_RDONLY);
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
    read_rows(bytes_, layout_, r0, h, dest);
    if (layout_.fortran) return;  // a Fortran-order chunk touches every page: nothing to release early
    const std::size_t page = std::size_t(::sysconf(_SC_PAGESIZE));
    const std::size_t end = layout_.data_offset + std::size_t(r0 + h) * std::size_t(layout_.cols) * layout_.item;
    const std::size_t upto = end / page * page;
    if (upto > released_) {
      ::madvise(const_cast<unsigned char*>(bytes_) + released_, upto - released_, MADV_DONTNEED);
      released_ = upto;
    }
  }

 private:
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
};

}  // namespace cka::npy
