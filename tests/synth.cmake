# tests/synth.cmake: `moepool synth` end to end (included from tests/CMakeLists.txt). Each tiny
# preset in each type is written, then read by `moepool inspect`, run by `moepool logits` (logits
# must be finite, whole rows) and tokenized. Unit tests (GGUF writer round trip, Q4_K_M rules
# against the conformance models, tokenizer round trips, determinism): model/synth_test.c.
# The comparison with llama.cpp needs npm and is not a ctest: see tools/llama/README.md.
set(SYNTH_DIR ${CMAKE_CURRENT_BINARY_DIR}/synth)
file(MAKE_DIRECTORY ${SYNTH_DIR})

add_test(NAME synth_unit COMMAND synth_test ${SHARED_DIR}/conformance)

# synth_logits.cmake: tokenize TEXT with MODEL, run `moepool logits -t 1` on the ids, check them.
file(WRITE ${CMAKE_CURRENT_BINARY_DIR}/synth_logits.cmake [=[
execute_process(COMMAND ${MOEPOOL} tokenize -m ${MODEL} -- "The user asked: what is 42?"
                RESULT_VARIABLE rc OUTPUT_VARIABLE ids ERROR_VARIABLE err)
string(STRIP "${ids}" ids)
if(NOT rc EQUAL 0 OR ids STREQUAL "")
  message(FATAL_ERROR "tokenize failed (${rc}): ${err}")
endif()
execute_process(COMMAND ${MOEPOOL} logits -t 1 -m ${MODEL} --tokens "${ids}" -o ${OUT}
                RESULT_VARIABLE rc ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "logits failed (${rc}): ${err}")
endif()
execute_process(COMMAND ${CHECK} --finite ${OUT} ${N_VOCAB} RESULT_VARIABLE rc OUTPUT_VARIABLE out)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "bad logits: ${out}")
endif()
message(STATUS "${ids}: ${out}")
]=])

foreach(preset tiny qwen3-tiny)
  foreach(type f32 q8_0 q4_k_m)
    set(name ${preset}_${type})
    set(file ${SYNTH_DIR}/${preset}-${type}.gguf)
    add_test(NAME synth_write_${name}
      COMMAND moepool synth --quiet --preset ${preset} --type ${type} -o ${file})
    set_tests_properties(synth_write_${name} PROPERTIES FIXTURES_SETUP synth_${name})
    add_test(NAME synth_inspect_${name} COMMAND moepool inspect ${file})
    set_tests_properties(synth_inspect_${name} PROPERTIES FIXTURES_REQUIRED synth_${name}
      PASS_REGULAR_EXPRESSION "parameters: 0\\.00[0-9]B total")
    add_test(NAME synth_logits_${name}
      COMMAND ${CMAKE_COMMAND} -DMOEPOOL=$<TARGET_FILE:moepool> -DMODEL=${file}
              -DOUT=${SYNTH_DIR}/${name}.f32 -DCHECK=$<TARGET_FILE:synth_test> -DN_VOCAB=2048
              -P ${CMAKE_CURRENT_BINARY_DIR}/synth_logits.cmake)
    set_tests_properties(synth_logits_${name} PROPERTIES FIXTURES_REQUIRED synth_${name})
  endforeach()
endforeach()

# Usage errors exit 2 with a message; a failed write exits 1 and leaves no file.
# synth_expect_exit.cmake runs CMD (arguments separated by '|') and checks the exit status and a
# stderr pattern.
file(WRITE ${CMAKE_CURRENT_BINARY_DIR}/synth_expect_exit.cmake [=[
string(REPLACE "|" ";" CMD "${CMD}")
execute_process(COMMAND ${CMD} RESULT_VARIABLE rc ERROR_VARIABLE err OUTPUT_QUIET)
if(NOT rc STREQUAL "${WANT_RC}" OR NOT err MATCHES "${WANT_ERR}")
  message(FATAL_ERROR "exit status ${rc} (want ${WANT_RC}), stderr '${err}' (want ${WANT_ERR})")
endif()
]=])

function(synth_cli_test name want_rc want_err)
  string(REPLACE ";" "|" cmd "$<TARGET_FILE:moepool>;synth;${ARGN}")
  add_test(NAME synth_cli_${name}
    COMMAND ${CMAKE_COMMAND} "-DCMD=${cmd}" -DWANT_RC=${want_rc} "-DWANT_ERR=${want_err}"
            -P ${CMAKE_CURRENT_BINARY_DIR}/synth_expect_exit.cmake)
endfunction()

synth_cli_test(bad_preset 2 "unknown preset 'nope'" --preset nope -o ${SYNTH_DIR}/x.gguf)
synth_cli_test(bad_type 2 "unknown type 'q3_k'" --preset tiny --type q3_k -o ${SYNTH_DIR}/x.gguf)
synth_cli_test(bad_shape 2 "n_embd = 100" --preset tiny --n-embd 100 -o ${SYNTH_DIR}/x.gguf)
synth_cli_test(bad_layers 2 "attention layers" --preset tiny --attn-layers 1,7
               -o ${SYNTH_DIR}/x.gguf)
synth_cli_test(no_output 2 "usage" --preset tiny)
synth_cli_test(unwritable 1 "nonexistent-dir/x.gguf: cannot create"
               --preset tiny -o /nonexistent-dir/x.gguf)
# A full disk: /dev/full fails every write with ENOSPC (and, not being a regular file, is not
# deleted).
if(EXISTS /dev/full)
  synth_cli_test(disk_full 1 "/dev/full: write failed: No space left on device"
                 --preset tiny -o /dev/full)
endif()

# The full-size LFM2-8B-A1B Q4_K_M (4.7 GiB, ~15 s on 2 cores): -DMOEPOOL_SLOW_TESTS=ON.
option(MOEPOOL_SLOW_TESTS "Run tests that write multi-GiB files" OFF)
if(MOEPOOL_SLOW_TESTS)
  add_test(NAME synth_write_lfm2_8b
    COMMAND moepool synth --quiet --preset lfm2-8b-a1b -o ${SYNTH_DIR}/lfm2-8b-a1b-q4_k_m.gguf)
  set_tests_properties(synth_write_lfm2_8b PROPERTIES FIXTURES_SETUP synth_lfm2_8b)
  add_test(NAME synth_inspect_lfm2_8b
    COMMAND moepool inspect ${SYNTH_DIR}/lfm2-8b-a1b-q4_k_m.gguf)
  set_tests_properties(synth_inspect_lfm2_8b PROPERTIES FIXTURES_REQUIRED synth_lfm2_8b
    PASS_REGULAR_EXPRESSION "parameters: 8\\.3[0-9]*B total, 1\\.5[0-9]*B active")
  add_test(NAME synth_cleanup_lfm2_8b
    COMMAND ${CMAKE_COMMAND} -E rm -f ${SYNTH_DIR}/lfm2-8b-a1b-q4_k_m.gguf)
  set_tests_properties(synth_cleanup_lfm2_8b PROPERTIES FIXTURES_CLEANUP synth_lfm2_8b)
endif()
