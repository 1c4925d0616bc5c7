# The OpenAI-compatible server: continuous batching engine, HTTP API, `moepool serve`.
find_package(PkgConfig REQUIRED)
if(NOT TARGET PkgConfig::MHD)
  pkg_check_modules(MHD REQUIRED IMPORTED_TARGET libmicrohttpd)
endif()
if(NOT TARGET PkgConfig::CJSON)
  pkg_check_modules(CJSON REQUIRED IMPORTED_TARGET libcjson)
endif()

add_library(mp_engine STATIC ${CMAKE_CURRENT_LIST_DIR}/engine.c)
target_link_libraries(mp_engine PUBLIC mp_model Threads::Threads)

add_executable(engine_test ${CMAKE_CURRENT_LIST_DIR}/engine_test.c)
target_link_libraries(engine_test PRIVATE mp_engine)
add_test(NAME engine_test
  COMMAND engine_test ${CMAKE_SOURCE_DIR}/../shared/conformance/models/qwen3moe-tiny-q4_k_m.gguf)
