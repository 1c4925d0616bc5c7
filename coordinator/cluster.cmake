# coordinator/cluster.cmake: the coordinator's side of the cluster (ROUTER socket, joins,
# heartbeats, CURVE admission, placement), the remote expert backend, `moepool keygen` and
# `moepool logits` (which takes --cluster).
add_library(mp_cluster STATIC cluster.c cluster_args.c cluster_join.c cluster_plan.c cluster_zap.c eb_remote.c
  cmd_keygen.c cmd_logits.c)
target_link_libraries(mp_cluster PUBLIC mp_proto mp_placement mp_model mp_kernels mp_base
  Threads::Threads)
# Hellos and welcomes carry the version.
target_compile_definitions(mp_cluster PRIVATE MOEPOOL_VERSION="${PROJECT_VERSION}")
set_property(GLOBAL APPEND PROPERTY MOEPOOL_LIBS mp_cluster)

# Real processes on loopback: the coordinator in the test, workers as `moepool worker`
# processes; one ctest test per scenario group.
add_executable(cluster_test ${CMAKE_SOURCE_DIR}/tests/cluster/cluster_test.c)
target_link_libraries(cluster_test PRIVATE mp_cluster)
set(MP_MODELS ${CMAKE_SOURCE_DIR}/../shared/conformance/models)
foreach(group wire:lfm2moe-tiny-q8_0 wire:qwen3moe-tiny-q8_0 wire:lfm2moe-small-q4_k_m
              local exact split placement lost restart stream refuse garbage curve relayed)
  string(REPLACE ":" "_" name ${group})
  add_test(NAME cluster_${name} COMMAND cluster_test $<TARGET_FILE:moepool> ${MP_MODELS} ${group})
  set_tests_properties(cluster_${name} PROPERTIES TIMEOUT 300)
endforeach()

# Bad input to the cluster commands: one line, status 2.
add_test(NAME cluster_cli COMMAND sh ${CMAKE_SOURCE_DIR}/tests/cluster/cli_test.sh
         $<TARGET_FILE:moepool> ${MP_MODELS}/lfm2moe-tiny-q8_0.gguf)
