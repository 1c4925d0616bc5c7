# model/sampler.cmake: the sampler's unit test (sampler.c itself is in mp_model). Included from
# model/CMakeLists.txt.
add_executable(sampler_test sampler_test.c sampler.c)
target_link_libraries(sampler_test PRIVATE mp_base m)
add_test(NAME sampler_unit COMMAND sampler_test)
