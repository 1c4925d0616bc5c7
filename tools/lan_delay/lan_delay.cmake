# tools/lan_delay: the one-way delay of an emulated LAN link without sch_netem (docs/netns.md).
# Its own executable (build/lan_delay), used by deploy/netns.sh; NFQUEUE through libnetfilter_queue.
set(LAN_DELAY_DIR ${CMAKE_CURRENT_LIST_DIR})
# A test tool, so optional: without libnetfilter-queue-dev moepool still builds, and
# deploy/netns.sh falls back to links with the rate but no delay (it says so).
if(NOT TARGET PkgConfig::NFQUEUE)
  find_package(PkgConfig REQUIRED)
  pkg_check_modules(NFQUEUE IMPORTED_TARGET libnetfilter_queue)
endif()
if(NOT TARGET PkgConfig::NFQUEUE)
  message(STATUS "libnetfilter_queue not found: no lan_delay (emulated LANs without netem get no delay)")
  return()
endif()
add_library(mp_delay_line STATIC ${LAN_DELAY_DIR}/delay_line.c)
add_library(mp_lan_delay STATIC ${LAN_DELAY_DIR}/nfqueue.c)
target_link_libraries(mp_lan_delay PUBLIC mp_delay_line PkgConfig::NFQUEUE)
add_executable(lan_delay ${LAN_DELAY_DIR}/lan_delay.c)
target_link_libraries(lan_delay PRIVATE mp_lan_delay)
set_target_properties(lan_delay PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR})

# The delay line's order and release times, without root.
add_executable(delay_line_test ${LAN_DELAY_DIR}/delay_line_test.c)
target_link_libraries(delay_line_test PRIVATE mp_delay_line)
add_test(NAME delay_line COMMAND delay_line_test)

# Packets through real namespaces (root; skips with 77 otherwise), tagged per build tree so release
# and ASan may test at once: bytes intact both ways, round trips at least twice the delay.
string(MD5 lan_delay_hash ${CMAKE_BINARY_DIR})
string(SUBSTRING ${lan_delay_hash} 0 8 lan_delay_tag)
add_test(NAME lan_delay
  COMMAND sh ${LAN_DELAY_DIR}/lan_delay_test.sh ${CMAKE_SOURCE_DIR}/deploy/netns.sh
          $<TARGET_FILE:lan_delay> d${lan_delay_tag})
set_tests_properties(lan_delay PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 300)
