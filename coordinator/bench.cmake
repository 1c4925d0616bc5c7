# coordinator/bench.cmake: `moepool bench` (docs/bench.md): prompt, decode and batched-decode
# speeds, peak RSS and the decode memory roofline, for tools/bench_report.sh.
add_library(mp_bench STATIC bench_probe.c bench_model.c bench_run.c cmd_bench.c)
target_link_libraries(mp_bench PUBLIC mp_model mp_kernels mp_base Threads::Threads m)
set_property(GLOBAL APPEND PROPERTY MOEPOOL_LIBS mp_bench)

# The command end to end on tiny conformance models (both architectures), tiny sizes: the JSON
# lines parse, their fields agree with each other and with bytes per token computed from the file
# independently. Timing is never asserted (the machine is shared).
foreach(m lfm2moe-tiny-q4_k_m qwen3moe-tiny-q8_0)
  add_test(NAME bench_json_${m}
    COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/bench_test.py $<TARGET_FILE:moepool>
            ${CMAKE_SOURCE_DIR}/../shared/conformance/models/${m}.gguf)
endforeach()
