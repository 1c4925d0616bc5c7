# model/chat.cmake: chat templates (chat_template.c), its unit test and its comparison with the
# Jinja templates stored in the conformance GGUFs (tests/chat_template.py, python3-jinja2).
# Included from model/CMakeLists.txt.
target_sources(mp_model PRIVATE chat_template.c chat_template_json.c chat_template_parse.c)

add_executable(chat_template_test chat_template_test.c chat_template.c chat_template_json.c
  chat_template_parse.c)
target_link_libraries(chat_template_test PRIVATE mp_base)

set(CHAT_CASES ${CMAKE_CURRENT_BINARY_DIR}/chat_cases.json)
add_test(NAME chat_template_unit COMMAND chat_template_test ${CHAT_CASES})
set_tests_properties(chat_template_unit PROPERTIES FIXTURES_SETUP chat_cases)
set(CHAT_MODELS ${CMAKE_SOURCE_DIR}/../shared/conformance/models)
add_test(NAME chat_template_jinja
  COMMAND /usr/bin/python3 ${CMAKE_SOURCE_DIR}/tests/chat_template.py ${CHAT_CASES}
          ${CHAT_MODELS}/lfm2moe-small-q4_k_m.gguf ${CHAT_MODELS}/qwen3moe-tiny-q8_0.gguf
          ${CMAKE_SOURCE_DIR}/tests/data/LFM2.5-8B-A1B.jinja)
set_tests_properties(chat_template_jinja PROPERTIES FIXTURES_REQUIRED chat_cases
  PASS_REGULAR_EXPRESSION "chat templates: [1-9][0-9]* passed, 0 failed")
