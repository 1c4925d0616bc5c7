# worker/shard.cmake: expert shards in NUMA-local memory: topology and binding (hwloc), loading
# with io_uring (liburing), the shard's expert backend and the cache for workers without the file.
find_package(PkgConfig REQUIRED)
if(NOT TARGET PkgConfig::HWLOC)
  pkg_check_modules(HWLOC REQUIRED IMPORTED_TARGET hwloc)
endif()
if(NOT TARGET PkgConfig::URING)
  pkg_check_modules(URING REQUIRED IMPORTED_TARGET liburing)
endif()

add_library(mp_shard STATIC numa.c)
target_link_libraries(mp_shard PUBLIC mp_model mp_kernels mp_base PkgConfig::HWLOC PkgConfig::URING
  Threads::Threads)
set_property(GLOBAL APPEND PROPERTY MOEPOOL_LIBS mp_shard)

add_executable(numa_test numa_test.c)
target_link_libraries(numa_test PRIVATE mp_shard)
add_test(NAME numa_test COMMAND numa_test)
