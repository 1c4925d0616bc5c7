# worker/worker.cmake: the worker process (`moepool worker`): joins a coordinator over ZeroMQ,
# holds its assigned experts and computes expert jobs.
add_library(mp_worker STATIC worker.c worker_compute.c worker_stream.c cmd_worker.c)
target_link_libraries(mp_worker PUBLIC mp_proto mp_shard mp_model mp_kernels mp_base Threads::Threads)
set_property(GLOBAL APPEND PROPERTY MOEPOOL_LIBS mp_worker)
target_compile_definitions(mp_worker PRIVATE MOEPOOL_VERSION="${PROJECT_VERSION}")
