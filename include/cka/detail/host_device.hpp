#pragma once
// Private: CKA_HD marks a function that nvcc compiles for the host and the device (the device backend's
// functors, and the few public value types they call); other compilers see nothing.

#if !defined(CKA_HD)
#if defined(__CUDACC__)
#define CKA_HD __host__ __device__
#else
#define CKA_HD
#endif
#endif
