# worker/shard.cmake: expert shards in NUMA-local memory: topology and binding (hwloc), loading
# with io_uring (liburing), the shard's expert backend and the cache for workers without the file.
find_package(PkgConfig REQUIRED)
if(NOT TARGET PkgConfig::HWLOC)
  pkg_check_modules(HWLOC REQUIRED IMPORTED_TARGET hwloc)
endif()
if(NOT TARGET PkgConfig::URING)
  pkg_check_modules(URING REQUIRED IMPORTED_TARGET liburing)
endif()

add_library(mp_shard STATIC numa.c shard_read.c shard_load.c shard_backend.c shard_cache.c)
target_link_libraries(mp_shard PUBLIC mp_model mp_kernels mp_base PkgConfig::HWLOC PkgConfig::URING
  Threads::Threads)
set_property(GLOBAL APPEND PROPERTY MOEPOOL_LIBS mp_shard)

add_executable(numa_test numa_test.c)
target_link_libraries(numa_test PRIVATE mp_shard)
add_test(NAME numa_test COMMAND numa_test)

add_executable(shard_test shard_test.c)
target_link_libraries(shard_test PRIVATE mp_shard m)
set(MP_SHARED_MODELS ${CMAKE_SOURCE_DIR}/../shared/conformance/models)
foreach(m lfm2moe-small-q4_k_m qwen3moe-tiny-q8_0 lfm2moe-tiny-bf16)
  add_test(NAME shard_test_${m} COMMAND shard_test ${MP_SHARED_MODELS}/${m}.gguf)
endforeach()

add_executable(shard_cache_test shard_cache_test.c)
target_link_libraries(shard_cache_test PRIVATE mp_shard)
foreach(m lfm2moe-small-q4_k_m qwen3moe-tiny-q8_0)
  add_test(NAME shard_cache_test_${m} COMMAND shard_cache_test ${MP_SHARED_MODELS}/${m}.gguf)
endforeach()

# The fingerprint lives in model/ (the coordinator needs it too); its test is registered here.
add_executable(fingerprint_test ${CMAKE_SOURCE_DIR}/model/fingerprint_test.c)
target_link_libraries(fingerprint_test PRIVATE mp_model)
file(GLOB MP_SHARED_GGUFS ${MP_SHARED_MODELS}/*.gguf)
add_test(NAME fingerprint_test COMMAND fingerprint_test ${MP_SHARED_GGUFS})

# Load speed (not a test): build/worker/shard_bench MODEL.gguf [--buffered] [--evict] ...
add_executable(shard_bench shard_bench.c)
target_link_libraries(shard_bench PRIVATE mp_shard)

# `HWLOC_SYNTHETIC=... moepool worker --print-topology` for manual runs: numa_open honours it.
add_test(NAME numa_test_env COMMAND numa_test --env-nodes 4)
set_tests_properties(numa_test_env PROPERTIES ENVIRONMENT "HWLOC_SYNTHETIC=pack:4 numa:1 core:2 pu:1")
