# The OpenAI-compatible server: continuous batching engine, HTTP API, `moepool serve`.
find_package(PkgConfig REQUIRED)
if(NOT TARGET PkgConfig::MHD)
  pkg_check_modules(MHD REQUIRED IMPORTED_TARGET libmicrohttpd)
endif()
if(NOT TARGET PkgConfig::CJSON)
  pkg_check_modules(CJSON REQUIRED IMPORTED_TARGET libcjson)
endif()

add_library(mp_engine STATIC ${CMAKE_CURRENT_LIST_DIR}/engine.c)
target_link_libraries(mp_engine PUBLIC mp_placement mp_model Threads::Threads)

add_executable(engine_test ${CMAKE_CURRENT_LIST_DIR}/engine_test.c)
target_link_libraries(engine_test PRIVATE mp_engine)
# lfm2moe-tiny: its 1038-token vocabulary keeps the head and sampling cheap under ASan
add_test(NAME engine_test
  COMMAND engine_test ${CMAKE_SOURCE_DIR}/../shared/conformance/models/lfm2moe-tiny-q4_k_m.gguf)

add_library(mp_server STATIC
  ${CMAKE_CURRENT_LIST_DIR}/http.c ${CMAKE_CURRENT_LIST_DIR}/openai.c
  ${CMAKE_CURRENT_LIST_DIR}/openai_parse.c ${CMAKE_CURRENT_LIST_DIR}/openai_reply.c
  ${CMAKE_CURRENT_LIST_DIR}/metrics.c
  ${CMAKE_CURRENT_LIST_DIR}/cmd_serve.c)
# The chat page's bytes come from the web concern (web.cmake: coordinator/web/ built in).
target_link_libraries(mp_server PUBLIC mp_engine mp_cluster mp_model PkgConfig::MHD PkgConfig::CJSON)
set_property(GLOBAL APPEND PROPERTY MOEPOOL_LIBS mp_server mp_engine)

add_test(NAME server_http
  COMMAND /usr/bin/python3 ${CMAKE_SOURCE_DIR}/tests/server/server_test.py $<TARGET_FILE:moepool>
          ${CMAKE_SOURCE_DIR}/../shared/conformance/models/lfm2moe-tiny-q4_k_m.gguf)
set_tests_properties(server_http PROPERTIES TIMEOUT 300)

add_executable(openai_reply_test ${CMAKE_CURRENT_LIST_DIR}/openai_reply_test.c)
target_link_libraries(openai_reply_test PRIVATE mp_server)
add_test(NAME openai_reply_test COMMAND openai_reply_test)

add_test(NAME server_cluster
  COMMAND /usr/bin/python3 ${CMAKE_SOURCE_DIR}/tests/server/cluster_serve_test.py
          $<TARGET_FILE:moepool>
          ${CMAKE_SOURCE_DIR}/../shared/conformance/models/lfm2moe-tiny-q4_k_m.gguf)
set_tests_properties(server_cluster PROPERTIES TIMEOUT 300)
