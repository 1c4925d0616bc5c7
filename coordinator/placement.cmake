# coordinator/placement.cmake: expert placement (which workers hold which experts), the planners
# and `moepool placement`, routing statistics and the expert backend that records them.
# cJSON (libcjson-dev) reads the placement and statistics files: small, strict, in Debian.
find_package(PkgConfig REQUIRED)
if(NOT TARGET PkgConfig::CJSON)
  pkg_check_modules(CJSON REQUIRED IMPORTED_TARGET libcjson)
endif()

add_library(mp_placement STATIC
  placement.c placement_json.c placement_plan.c routing_stats.c eb_stats.c cmd_placement.c)
target_link_libraries(mp_placement PUBLIC mp_model PkgConfig::CJSON Threads::Threads)
set_property(GLOBAL APPEND PROPERTY MOEPOOL_LIBS mp_placement)

# Tests: tests/placement/ (unit test on the conformance models, CLI and dump-routing checks).
set(PLACEMENT_SHARED ${CMAKE_SOURCE_DIR}/../shared/conformance/models)
set(PLACEMENT_TEST_DIR ${CMAKE_BINARY_DIR}/tests/placement)
file(MAKE_DIRECTORY ${PLACEMENT_TEST_DIR})
add_executable(placement_test ${CMAKE_SOURCE_DIR}/tests/placement/placement_test.c)
target_link_libraries(placement_test PRIVATE mp_placement)
add_test(NAME placement_unit COMMAND placement_test ${PLACEMENT_SHARED} ${PLACEMENT_TEST_DIR})
foreach(mode record cli)
  add_test(NAME placement_${mode}
    COMMAND /usr/bin/python3 ${CMAKE_SOURCE_DIR}/tests/placement/cli_test.py
            $<TARGET_FILE:moepool> ${PLACEMENT_SHARED} ${PLACEMENT_TEST_DIR} ${mode})
endforeach()

# deploy/netns.sh: emulated hosts in network namespaces (root only; skips with 77 otherwise).
# The tag comes from the build tree, so a release and an ASan tree can run it at the same time.
string(MD5 netns_hash ${CMAKE_BINARY_DIR})
string(SUBSTRING ${netns_hash} 0 8 netns_tag)
add_test(NAME netns
  COMMAND sh ${CMAKE_SOURCE_DIR}/tests/netns/netns_test.sh ${CMAKE_SOURCE_DIR}/deploy/netns.sh
          $<TARGET_FILE:moepool> ${PLACEMENT_SHARED}/lfm2moe-small-q4_k_m.gguf t${netns_tag})
set_tests_properties(netns PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 300
  ENVIRONMENT MP_LAN_DELAY=$<$<TARGET_EXISTS:lan_delay>:$<TARGET_FILE:lan_delay>>) # the delay where the kernel has no netem
