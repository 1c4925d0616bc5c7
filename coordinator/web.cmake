# coordinator/web.cmake: the chat page (coordinator/web/), embedded into the binary at build time.
# web/embed.cmake turns the files into a generated C file of byte arrays; web_assets.c looks
# them up by URL path for `moepool serve` (GET /). Tests: web_assets_test (the table) and
# tests/web/ (the page in headless Chromium, the openai npm client), included from tests/.
set(WEB_DIR ${CMAKE_CURRENT_LIST_DIR}/web)
set(WEB_FILES index.html app.css app.js)
list(TRANSFORM WEB_FILES PREPEND ${WEB_DIR}/ OUTPUT_VARIABLE web_file_paths)
set(WEB_EMBED_C ${CMAKE_CURRENT_BINARY_DIR}/web_embed.c)
string(REPLACE ";" "," web_files_arg "${WEB_FILES}") # a ; would split the shell command
add_custom_command(OUTPUT ${WEB_EMBED_C}
  COMMAND ${CMAKE_COMMAND} -DDIR=${WEB_DIR} -DOUT=${WEB_EMBED_C} -DFILES=${web_files_arg}
          -P ${WEB_DIR}/embed.cmake
  DEPENDS ${web_file_paths} ${WEB_DIR}/embed.cmake
  COMMENT "Embedding the chat page" VERBATIM)

add_library(mp_web STATIC ${CMAKE_CURRENT_LIST_DIR}/web_assets.c ${WEB_EMBED_C})
set_property(GLOBAL APPEND PROPERTY MOEPOOL_LIBS mp_web)
# The server (server.cmake, included before this file) serves the page: say so, so anything
# linking mp_server links the page too.
if(TARGET mp_server)
  target_link_libraries(mp_server PUBLIC mp_web)
endif()

add_executable(web_assets_test ${CMAKE_CURRENT_LIST_DIR}/web_assets_test.c)
target_link_libraries(web_assets_test PRIVATE mp_web)
add_test(NAME web_assets_test COMMAND web_assets_test ${WEB_DIR})

# End-to-end tests of the page and the API through real clients, against a real `moepool serve`
# with the tiny conformance model (a real tokenizer and chat template; random weights). They
# need the serve command, so they are registered once commands.h declares it.
file(READ ${CMAKE_SOURCE_DIR}/commands.h web_commands_h)
string(FIND "${web_commands_h}" "cmd_serve" web_has_serve)
if(web_has_serve EQUAL -1)
  message(STATUS "web: no `moepool serve` yet: browser and openai client tests not registered")
else()
  set(WEB_TESTS_DIR ${CMAKE_SOURCE_DIR}/tests/web)
  set(WEB_MODEL ${CMAKE_SOURCE_DIR}/../shared/conformance/models/qwen3moe-tiny-q4_k_m.gguf)
  set(WEB_NPM_DIR ${CMAKE_BINARY_DIR}/web-npm)
  # A tiny model whose greedy reply is always a tool call (tests/web/tool_model.py says how).
  set(WEB_TOOL_MODEL ${CMAKE_BINARY_DIR}/web-tool-model.gguf)
  set(web_env MOEPOOL=$<TARGET_FILE:moepool> MOEPOOL_MODEL=${WEB_MODEL}
      MOEPOOL_TOOL_MODEL=${WEB_TOOL_MODEL})
  add_test(NAME web_tool_model
    COMMAND /usr/bin/python3 ${WEB_TESTS_DIR}/tool_model.py $<TARGET_FILE:moepool> ${WEB_TOOL_MODEL})
  set_tests_properties(web_tool_model PROPERTIES FIXTURES_SETUP web_tool_model)

  add_test(NAME web_browser
    COMMAND /usr/bin/python3 ${WEB_TESTS_DIR}/browser_test.py $<TARGET_FILE:moepool> ${WEB_MODEL}
            ${WEB_TOOL_MODEL} ${CMAKE_BINARY_DIR}/web-browser)
  set_tests_properties(web_browser PROPERTIES FIXTURES_REQUIRED web_tool_model)
  # npm ci once (a fixture), then each test file on its own server.
  add_test(NAME web_npm_ci COMMAND ${WEB_TESTS_DIR}/run_node_tests.sh ${WEB_NPM_DIR})
  set_tests_properties(web_npm_ci PROPERTIES FIXTURES_SETUP web_npm SKIP_RETURN_CODE 77)
  foreach(name openai concurrency tools apikey loadtest)
    add_test(NAME web_${name}
      COMMAND ${WEB_TESTS_DIR}/run_node_tests.sh ${WEB_NPM_DIR} ${name}.test.mjs)
    set_tests_properties(web_${name} PROPERTIES FIXTURES_REQUIRED web_npm)
  endforeach()
  set_tests_properties(web_tools PROPERTIES FIXTURES_REQUIRED "web_npm;web_tool_model")
  set_tests_properties(web_browser web_openai web_concurrency web_tools web_apikey web_loadtest
    PROPERTIES ENVIRONMENT "${web_env}" SKIP_RETURN_CODE 77 TIMEOUT 900)
endif()
