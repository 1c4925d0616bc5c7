# model/synth.cmake: the GGUF writer and the synthetic model generator (`moepool synth`), and
# their unit test. Included from model/CMakeLists.txt; the cross-process tests are in
# tests/synth.cmake.
target_sources(mp_model PRIVATE gguf_write.c synth.c synth_vocab.c synth_keys.c cmd_synth.c)

add_executable(synth_test synth_test.c)
target_link_libraries(synth_test PRIVATE mp_model Threads::Threads)
