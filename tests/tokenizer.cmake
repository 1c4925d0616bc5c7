# tests/tokenizer.cmake: the tokenizer's cross-process tests (included from tests/CMakeLists.txt).
# Unit tests: model/tokenizer_test.c. Conformance: ../shared/conformance/compare.py (needs Debian's
# /usr/bin/python3 with python3-numpy). CLI error paths: each bad file must give exit status 2 and
# a one-line message naming the file.
set(TOK_VOCAB_DIR ${SHARED_DIR}/conformance/vocab)
set(TOK_FIXTURES ${CMAKE_CURRENT_BINARY_DIR}/tokenizer_fixtures)

add_test(NAME tokenizer_unit COMMAND tokenizer_test ${TOK_VOCAB_DIR})

add_test(NAME tokenizer_conformance
  COMMAND /usr/bin/python3 ${SHARED_DIR}/conformance/compare.py $<TARGET_FILE:moepool>
          --only tokenize)
set_tests_properties(tokenizer_conformance PROPERTIES
  PASS_REGULAR_EXPRESSION "tokenize: [0-9]+ passed, 0 failed")

add_test(NAME tokenizer_fixtures_setup COMMAND tokenizer_test --write-fixtures ${TOK_FIXTURES})
set_tests_properties(tokenizer_fixtures_setup PROPERTIES FIXTURES_SETUP tok_fixtures)

# tok_expect_exit.cmake runs CMD (arguments separated by '|') and checks the exit status and a
# stderr pattern.
file(WRITE ${CMAKE_CURRENT_BINARY_DIR}/tok_expect_exit.cmake [=[
string(REPLACE "|" ";" CMD "${CMD}")
execute_process(COMMAND ${CMD} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT rc STREQUAL "${WANT_RC}")
  message(FATAL_ERROR "exit status ${rc}, want ${WANT_RC}; stderr: ${err}")
endif()
if(NOT err MATCHES "${WANT_ERR}")
  message(FATAL_ERROR "stderr does not match '${WANT_ERR}': ${err}")
endif()
if(DEFINED WANT_OUT AND NOT out STREQUAL "${WANT_OUT}")
  message(FATAL_ERROR "stdout '${out}', want '${WANT_OUT}'")
endif()
]=])

function(tok_cli_test name want_rc want_err)
  string(REPLACE ";" "|" cmd "$<TARGET_FILE:moepool>;tokenize;${ARGN}")
  add_test(NAME tokenize_cli_${name}
    COMMAND ${CMAKE_COMMAND} "-DCMD=${cmd}" -DWANT_RC=${want_rc} "-DWANT_ERR=${want_err}"
            -P ${CMAKE_CURRENT_BINARY_DIR}/tok_expect_exit.cmake)
  set_tests_properties(tokenize_cli_${name} PROPERTIES FIXTURES_REQUIRED tok_fixtures)
endfunction()

tok_cli_test(missing_file 2 "nonexistent.gguf" -m ${TOK_FIXTURES}/nonexistent.gguf -- x)
tok_cli_test(not_gguf 2 "notgguf.gguf" -m ${TOK_FIXTURES}/notgguf.gguf -- x)
tok_cli_test(no_tokenizer 2 "novocab.gguf.*no tokenizer" -m ${TOK_FIXTURES}/novocab.gguf -- x)
tok_cli_test(bad_model 2 "badmodel.gguf.*'llama' is not supported"
             -m ${TOK_FIXTURES}/badmodel.gguf -- x)
tok_cli_test(bad_pre 2 "badpre.gguf.*unknown pre-tokenizer" -m ${TOK_FIXTURES}/badpre.gguf -- x)
tok_cli_test(no_merges 2 "badmerges.gguf.*merges" -m ${TOK_FIXTURES}/badmerges.gguf -- x)
tok_cli_test(usage 2 "usage" -m ${TOK_VOCAB_DIR}/qwen3.gguf)
tok_cli_test(bad_option 2 "unknown or incomplete option" --frobnicate -m x -- y)

# Texts may start with '-' after '--'; qwen2 splits digits: "-", "4", "2".
add_test(NAME tokenize_cli_dash_text
  COMMAND moepool tokenize -m ${TOK_VOCAB_DIR}/qwen3.gguf --no-bos -- -42)
set_tests_properties(tokenize_cli_dash_text PROPERTIES
  PASS_REGULAR_EXPRESSION "^[0-9]+ [0-9]+ [0-9]+\n$")

# `moepool run` and `moepool tokenize` on bad input (invalid UTF-8, a prompt longer than the
# context, a GGUF without a tokenizer, unknown or missing chat templates, missing files, -n 0,
# bad numbers) with models written by `moepool synth`: exit status and one clear stderr line.
add_test(NAME run_cli
  COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/run_cli.py $<TARGET_FILE:moepool>
          ${CMAKE_CURRENT_BINARY_DIR}/run_cli)
set_tests_properties(run_cli PROPERTIES PASS_REGULAR_EXPRESSION "run cli: [0-9]+ passed, 0 failed")
