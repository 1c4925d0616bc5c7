# coordinator/cluster.cmake: the coordinator's side of the cluster (ROUTER socket, joins,
# heartbeats, CURVE admission), the remote expert backend, and `moepool keygen`.
add_library(mp_cluster STATIC cluster.c cluster_zap.c eb_remote.c cmd_keygen.c cmd_logits.c)
target_link_libraries(mp_cluster PUBLIC mp_proto mp_placement mp_model mp_kernels mp_base Threads::Threads)
set_property(GLOBAL APPEND PROPERTY MOEPOOL_LIBS mp_cluster)

# Real processes on loopback: coordinator in the test, workers as `moepool worker` processes.
add_executable(cluster_test ${CMAKE_SOURCE_DIR}/tests/cluster/cluster_test.c)
target_link_libraries(cluster_test PRIVATE mp_cluster)
set(MP_MODELS ${CMAKE_SOURCE_DIR}/../shared/conformance/models)
add_test(NAME cluster_test COMMAND cluster_test $<TARGET_FILE:moepool> ${MP_MODELS})
set_tests_properties(cluster_test PROPERTIES TIMEOUT 600)
