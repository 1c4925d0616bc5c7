# model/repack.cmake: tests of the weights' layout where they are held (model/repack.c is part of
# mp_model: fwd_state_new and eb_local_new call it). Included from model/CMakeLists.txt.
add_executable(repack_test repack_test.c)
target_link_libraries(repack_test PRIVATE mp_model)
set(MP_REPACK_MODELS ${CMAKE_SOURCE_DIR}/../shared/conformance/models)

# Layouts, every row against the file, the mapping untouched, nothing repacked twice. The small
# LFM2 has a 4110-row head (not a multiple of 16): once its type has x16 kernels it must be kept
# row-major while the rest is repacked.
foreach(m lfm2moe-small-q4_k_m qwen3moe-tiny-q4_k_m lfm2moe-tiny-q6_k lfm2moe-tiny-q8_0)
  add_test(NAME repack_test_${m} COMMAND repack_test ${MP_REPACK_MODELS}/${m}.gguf)
endforeach()
add_test(NAME repack_test_rows COMMAND repack_test ${MP_REPACK_MODELS}/lfm2moe-small-q4_k_m.gguf)
set_tests_properties(repack_test_rows PROPERTIES ENVIRONMENT MOEPOOL_LAYOUT=rows)

# The same logits (within rounding) in both layouts, on a conformance model and on a synthetic
# one whose vocabulary (2056 rows of Q8_0) is not a multiple of 16.
set(MP_REPACK_DIR ${CMAKE_BINARY_DIR}/repack)
file(MAKE_DIRECTORY ${MP_REPACK_DIR})
add_test(NAME repack_synth_odd_vocab
  COMMAND moepool synth --quiet --preset tiny --type q8_0 --n-vocab 2056
          -o ${MP_REPACK_DIR}/odd-vocab-q8_0.gguf)
set_tests_properties(repack_synth_odd_vocab PROPERTIES FIXTURES_SETUP repack_odd)
set(MP_REPACK_CASES ${CMAKE_SOURCE_DIR}/../shared/conformance/cases)
# Its tolerance: the conformance case of the same preset family and type (lfm2moe-tiny-q8_0).
add_test(NAME repack_layout_odd_vocab
  COMMAND /usr/bin/python3 ${CMAKE_SOURCE_DIR}/tests/repack_layout.py $<TARGET_FILE:moepool>
          ${MP_REPACK_DIR}/odd-vocab-q8_0.gguf ${MP_REPACK_CASES}/lfm2moe-tiny-q8_0.json)
add_test(NAME repack_test_odd_vocab COMMAND repack_test ${MP_REPACK_DIR}/odd-vocab-q8_0.gguf)
add_test(NAME forward_batch_invariance_odd_vocab
  COMMAND forward_test ${MP_REPACK_DIR}/odd-vocab-q8_0.gguf 2)
set_tests_properties(repack_layout_odd_vocab repack_test_odd_vocab
  forward_batch_invariance_odd_vocab PROPERTIES FIXTURES_REQUIRED repack_odd)
foreach(m lfm2moe-small-q4_k_m qwen3moe-tiny-q4_k_m lfm2moe-tiny-q6_k lfm2moe-tiny-q8_0)
  add_test(NAME repack_layout_${m}
    COMMAND /usr/bin/python3 ${CMAKE_SOURCE_DIR}/tests/repack_layout.py $<TARGET_FILE:moepool>
            ${MP_REPACK_MODELS}/${m}.gguf ${MP_REPACK_CASES}/${m}.json)
endforeach()
add_test(NAME forward_batch_invariance_qwen3moe-tiny-q4_k_m
  COMMAND forward_test ${MP_REPACK_MODELS}/qwen3moe-tiny-q4_k_m.gguf 2)

# Conformance against llama.cpp with every weight row-major (the default layout runs in
# tests/CMakeLists.txt's conformance_* tests).
add_test(NAME conformance_rows_lfm2moe-small-q4_k_m
  COMMAND /usr/bin/python3 ${CMAKE_SOURCE_DIR}/../shared/conformance/compare.py
          $<TARGET_FILE:moepool> --only logits --cases lfm2moe-small-q4_k_m/ -v)
set_tests_properties(conformance_rows_lfm2moe-small-q4_k_m PROPERTIES
  ENVIRONMENT MOEPOOL_LAYOUT=rows PASS_REGULAR_EXPRESSION "logits: [1-9][0-9]* passed, 0 failed"
  TIMEOUT 1500)
