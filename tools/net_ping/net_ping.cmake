# tools/net_ping: loopback round trip, raw TCP against ZeroMQ, the floor under the cluster's
# per-job transport cost (docs/cluster.md, "Hand-offs"). Its own executable (build/net_ping).
if(NOT TARGET PkgConfig::ZMQ)
  find_package(PkgConfig REQUIRED)
  pkg_check_modules(ZMQ REQUIRED IMPORTED_TARGET libzmq)
endif()
add_executable(net_ping ${CMAKE_CURRENT_LIST_DIR}/net_ping.c)
target_link_libraries(net_ping PRIVATE PkgConfig::ZMQ)
set_target_properties(net_ping PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR})
