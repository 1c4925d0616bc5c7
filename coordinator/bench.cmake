# coordinator/bench.cmake: `moepool bench` (docs/bench.md): prompt, decode and batched-decode
# speeds, peak RSS and the decode memory roofline, for tools/bench_report.sh.
add_library(mp_bench STATIC bench_plan.c bench_probe.c bench_model.c bench_run.c bench_backend.c cmd_bench.c)
target_link_libraries(mp_bench PUBLIC mp_cluster mp_model mp_kernels mp_base Threads::Threads m)
set_property(GLOBAL APPEND PROPERTY MOEPOOL_LIBS mp_bench)

# The command end to end on tiny conformance models (both architectures), tiny sizes: the JSON
# lines parse, their fields agree with each other and with bytes per token computed from the file
# independently; then with the experts on two worker processes over loopback (--cluster). Timing
# is never asserted (the machine is shared).
foreach(m lfm2moe-tiny-q4_k_m qwen3moe-tiny-q8_0)
  add_test(NAME bench_json_${m}
    COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/bench_test.py $<TARGET_FILE:moepool>
            ${CMAKE_SOURCE_DIR}/../shared/conformance/models/${m}.gguf --cluster)
endforeach()

# The report script end to end (moepool's side, and the cluster over loopback when built; not
# llama.cpp, whose npm package is not part of CI, nor the emulated LAN, which needs root),
# quick sizes, one round: it must write the tables with a row per test and the targets.
add_test(NAME bench_report_quick
  COMMAND sh -c "rm -f \"$1\" && \"$0\" --quick -R 1 --no-llama --no-lan --moepool \"$2\" -m \"$3\" -o \"$1\" -- --probe-mib 64 && grep -q '^| tg16 | [0-9]' \"$1\" && grep -q '^| batch4 | [0-9]' \"$1\" && grep -q '^| peak RSS, in-process experts |' \"$1\""
          ${CMAKE_SOURCE_DIR}/tools/bench_report.sh
          ${CMAKE_CURRENT_BINARY_DIR}/bench_report_quick/bench.md $<TARGET_FILE:moepool>
          ${CMAKE_SOURCE_DIR}/../shared/conformance/models/lfm2moe-tiny-q4_k_m.gguf)
