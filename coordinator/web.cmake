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

add_executable(web_assets_test ${CMAKE_CURRENT_LIST_DIR}/web_assets_test.c)
target_link_libraries(web_assets_test PRIVATE mp_web)
add_test(NAME web_assets_test COMMAND web_assets_test ${WEB_DIR})
