# proto/proto.cmake: the cluster's messages (cluster.proto, compiled by protoc-c at build time),
# their ZeroMQ framing and the activation wire formats; shared by coordinator and worker.
find_package(PkgConfig REQUIRED)
if(NOT TARGET PkgConfig::PROTOBUFC)
  pkg_check_modules(PROTOBUFC REQUIRED IMPORTED_TARGET libprotobuf-c)
endif()
if(NOT TARGET PkgConfig::ZMQ)
  pkg_check_modules(ZMQ REQUIRED IMPORTED_TARGET libzmq)
endif()
find_program(PROTOC_C protoc-c REQUIRED)

set(MP_PROTO_GEN ${CMAKE_CURRENT_BINARY_DIR}/gen)
add_custom_command(
  OUTPUT ${MP_PROTO_GEN}/proto/cluster.pb-c.c ${MP_PROTO_GEN}/proto/cluster.pb-c.h
  COMMAND ${CMAKE_COMMAND} -E make_directory ${MP_PROTO_GEN}
  COMMAND ${PROTOC_C} --c_out=${MP_PROTO_GEN} -I${CMAKE_SOURCE_DIR} ${CMAKE_SOURCE_DIR}/proto/cluster.proto
  DEPENDS ${CMAKE_SOURCE_DIR}/proto/cluster.proto
  COMMENT "protoc-c proto/cluster.proto")

add_library(mp_proto STATIC ${MP_PROTO_GEN}/proto/cluster.pb-c.c msg.c wire.c keyfile.c hoptrace.c)
target_include_directories(mp_proto PUBLIC ${MP_PROTO_GEN})
# Generated code: protoc-c's output is not ours to fix warnings in.
set_source_files_properties(${MP_PROTO_GEN}/proto/cluster.pb-c.c PROPERTIES COMPILE_OPTIONS "-Wno-unused-parameter")
target_link_libraries(mp_proto PUBLIC mp_kernels mp_base PkgConfig::PROTOBUFC PkgConfig::ZMQ)
set_property(GLOBAL APPEND PROPERTY MOEPOOL_LIBS mp_proto)

add_executable(wire_test wire_test.c)
target_link_libraries(wire_test PRIVATE mp_proto)
add_test(NAME wire_test COMMAND wire_test)
